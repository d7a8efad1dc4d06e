"""Test doubles shared by the unit and integration tests."""

from __future__ import annotations


class FakeClock:
    """A monotonic clock that moves only when a test advances it or something sleeps on it."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
