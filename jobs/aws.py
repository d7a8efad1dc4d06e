"""boto3 at carve's edge: clients, and botocore's failures turned into carve's errors in one place.

Every AWS call carve makes on the driver runs inside `aws_errors(...)`, which turns botocore's
ClientError (and its connection, credential and transfer errors) into the carve error the
caller names, saying what failed and AWS's error code. The message never quotes a request or a
response: they may hold a secret.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from transforms.errors import CarveError


def error_code(exc: BaseException) -> str:
    """AWS's error code of a ClientError ('ResourceNotFoundException'), else the exception's class name."""
    code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
    return code or type(exc).__name__


def _botocore_errors() -> tuple[type[BaseException], ...]:
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    return ClientError, BotoCoreError, Boto3Error


@contextmanager
def aws_errors(what: str, error: type[CarveError] = CarveError) -> Iterator[None]:
    """Raise `error("<what>: <AWS error code>")` for any botocore failure inside the block."""
    try:
        yield
    except _botocore_errors() as exc:
        raise error(f"{what}: {error_code(exc)}") from None


@contextmanager
def quiet_botocore() -> Iterator[None]:
    """botocore logs response bodies at DEBUG: a secret's value must not reach any log."""
    logger = logging.getLogger("botocore")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)


def client(service: str, region: str | None = None, endpoint_url: str | None = None) -> Any:
    """A boto3 client; AWS_ENDPOINT_URL_<SERVICE> (read by botocore itself) points it at a local stand-in."""
    import boto3

    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint_url)
