"""The runtime a command runs in: where its Spark session and Glue services come from.

The caller installs one explicitly (jobs.glue installs the Glue runtime before it calls the
CLI); nothing is guessed from `__main__` or from the environment. Without one, commands run
on local PySpark.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Protocol

from pyspark.sql import DataFrame, SparkSession

from transforms.errors import CarveError


class Runtime(Protocol):
    name: str

    def spark(self, app_name: str) -> SparkSession:
        """The session to run on (built on first use)."""

    def write_dynamodb(self, frame: DataFrame, connection_options: Mapping[str, str],
                       endpoint_url: str | None = None) -> None:
        """Hand `frame` to the Glue DynamoDB connector (write_dynamic_frame_from_options).

        A runtime that cannot honour `endpoint_url` raises before writing anything.
        """

    def commit(self) -> None:
        """Mark the job run done (Glue's Job.commit); nothing elsewhere."""


class LocalRuntime:
    """local[*] PySpark with the JDBC jars (jobs.spark); no Glue services."""

    name = "local PySpark"

    def spark(self, app_name: str) -> SparkSession:
        from jobs.spark import build_local_spark

        return build_local_spark(app_name)

    def write_dynamodb(self, frame: DataFrame, connection_options: Mapping[str, str],
                       endpoint_url: str | None = None) -> None:
        raise CarveError(
            "the glue-connector sink needs AWS Glue's GlueContext (the Glue jars), which plain PySpark does not "
            "have: run the job on AWS Glue, or use the carve sink (the default)"
        )

    def commit(self) -> None:
        pass


_current: Runtime = LocalRuntime()


def current() -> Runtime:
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
