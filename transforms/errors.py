"""carve's error types: one root, subclasses named for what the caller should do."""

from __future__ import annotations

from dataclasses import dataclass


class CarveError(Exception):
    """Root of every error carve raises on purpose; the CLI prints these without a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a mapping file, located well enough to fix it."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class MappingError(CarveError):
    """The mapping file is wrong: fix the file. Carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class SourceError(CarveError):
    """The source database could not be read as the mapping asks: check the connection or the table."""


class SinkError(CarveError):
    """The target cannot be written as asked: check the table, the endpoint, the budget or the sink."""


class ValidationFailedError(CarveError):
    """The items failed a critical expectation or the quarantine threshold: nothing (more) was written."""


class WriteFailedError(CarveError):
    """Items could not be written after the retry budget ran out; they are in the dead letter."""

    def __init__(self, failed: int, dead_letter: str):
        self.failed = failed
        self.dead_letter = dead_letter
        super().__init__(f"{failed} item(s) could not be written after retries; see {dead_letter}")


class WriteInterrupted(KeyboardInterrupt):
    """Ctrl-C while writing, with how many items DynamoDB had acknowledged (None: unknown)."""

    def __init__(self, items_acknowledged: int | None) -> None:
        self.items_acknowledged = items_acknowledged
        super().__init__()


class SetupError(CarveError):
    """carve itself is not fully installed where it runs (its Java functions, say): set it up."""
