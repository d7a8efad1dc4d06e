"""The runtime a command runs in: its Spark session, its source credentials, and Glue's services.

The caller installs one explicitly (jobs.runtimes.glue installs the Glue runtime before it calls
the CLI); nothing is guessed from `__main__` or from the environment. Without one, commands run
on local PySpark (jobs.runtimes.local).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

from pyspark.sql import DataFrame, SparkSession

from jobs.sources.connections import Connection


class Runtime(Protocol):
    name: str

    def start(self, app_name: str, short: bool = False) -> None:
        """Begin building the session in the background, if the runtime builds one: the caller
        goes on with work that needs no JVM until it asks for `spark()`."""

    def spark(self, app_name: str, short: bool = False) -> SparkSession:
        """The session to run on (built on first use); `short` for seconds of work on little
        data, where a runtime that starts the JVM may tune it for warm-up."""

    def connection(self, name: str) -> Connection:
        """The source connection a mapping names, with its credentials."""

    def write_dynamodb(self, frame: DataFrame, connection_options: Mapping[str, str],
                       endpoint_url: str | None = None) -> None:
        """Hand `frame` to the Glue DynamoDB connector (write_dynamic_frame_from_options).

        A runtime that cannot honour `endpoint_url` raises before writing anything.
        """

    def commit(self) -> None:
        """Mark the job run done (Glue's Job.commit); nothing elsewhere."""


def _default() -> Runtime:
    from jobs.runtimes.local import LocalRuntime

    return LocalRuntime()


_current: Runtime | None = None


def current() -> Runtime:
    global _current
    if _current is None:
        _current = _default()
    return _current


@contextmanager
def installed(runtime: Runtime) -> Iterator[Runtime]:
    """Run the block with `runtime` as the current runtime."""
    global _current
    previous, _current = _current, runtime
    try:
        yield runtime
    finally:
        _current = previous
