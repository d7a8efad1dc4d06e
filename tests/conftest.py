"""Shared fixtures: one SparkSession for the whole test session."""

from __future__ import annotations

import os

import pytest

from jobs.devtools.local_stack import LOCAL_AWS_ENV
from jobs.runtimes.local import build_local_spark

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


@pytest.fixture(scope="session")
def moto_endpoint():
    """A moto server (S3, Secrets Manager, Glue, ...) on a free loopback port for the session."""
    import logging

    from moto.server import ThreadedMotoServer

    from jobs.devtools.local_stack import free_port

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one INFO line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws_client(moto_endpoint):
    """boto3 clients bound to the moto server: aws_client("s3")."""
    import boto3

    def make(service: str):
        return boto3.client(service, endpoint_url=moto_endpoint, region_name="us-east-1")

    return make
