"""Shared fixtures: one SparkSession for the whole test session."""

from __future__ import annotations

import pytest

from jobs.spark import build_local_spark


@pytest.fixture(scope="session")
def spark():
    session = build_local_spark(app_name="carve-tests", master="local[2]", shuffle_partitions=4)
    yield session
    session.stop()
