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
