"""Shared fixtures: one SparkSession for the whole test session."""

from __future__ import annotations

import os

import pytest

from jobs.local_stack import LOCAL_AWS_ENV
from jobs.spark import build_local_spark

# Before any SparkSession starts: Python workers inherit the environment they start with,
# and boto3 on the executors needs (dummy) credentials for dynalite. Tests never reach AWS.
for _name, _value in LOCAL_AWS_ENV.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture(scope="session")
def spark():
    # local[2,4]: two task slots, and a failed task is retried up to 4 times, as on a cluster.
    session = build_local_spark(app_name="carve-tests", master="local[2,4]", shuffle_partitions=4)
    yield session
    session.stop()
