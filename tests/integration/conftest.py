"""Fixtures for integration tests: the real databases on loopback and dynalite."""

from __future__ import annotations

import os

import pytest

from jobs.devtools.local_stack import LOCAL_AWS_ENV, start_dynalite


@pytest.fixture(scope="session")
def dynamodb_endpoint():
    """A fresh dynalite on a free loopback port for the whole session."""
    for name, value in LOCAL_AWS_ENV.items():
        os.environ.setdefault(name, value)
    server = start_dynalite()
    yield server.url
    server.stop()


@pytest.fixture
def aws_spark(dynamodb_endpoint, spark):
    """The session Spark, with dynalite's dummy AWS credentials forwarded to its Python workers.

    dynamodb_endpoint puts them in os.environ, but when another test started Spark first its
    workers inherited the environment from before that, and boto3 on the executors finds no
    credentials. SparkContext.environment is what PySpark hands to every worker it starts for a
    job submitted from here on.
    """
    spark.sparkContext.environment.update({name: os.environ[name] for name in LOCAL_AWS_ENV})
    return spark
