"""DynamoDB's JSON protocol over HTTP, signed with SigV4 by carve: one kept-alive connection, no retries of its own.

The items are already DynamoDB wire JSON (built in Spark), so a request body is put together by
joining those strings: nothing is parsed, validated or re-serialized per item, which is where
boto3 spends most of its CPU. Credentials and the endpoint come from boto3's usual chain
(environment, profile, instance or Glue role; endpoint settings), refreshed as boto3 does.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import ssl
import time
import urllib.parse
from typing import Any, NamedTuple

import boto3

from jobs.sinks.table import TableAddress
from transforms.errors import SinkError


class Answer(NamedTuple):
    status: int
    code: str  # DynamoDB's error type ("ProvisionedThroughputExceededException"), "" on success
    message: str
    body: dict[str, Any]


class TransportError(Exception):
    """No answer: the connection failed, dropped or timed out. The request may have been applied."""


class HttpTransport:
    """Signed DynamoDB JSON-protocol calls over one kept-alive connection, with no retries of its own.

    HTTP(S) proxies from the environment are not used.
    """

    def __init__(self, address: TableAddress):
        session = boto3.session.Session()
        credentials = session.get_credentials()
        if credentials is None:
            raise SinkError("no AWS credentials found for DynamoDB (environment, profile or role)")
        self._credentials = credentials
        self._region = address.region
        endpoint = session.client("dynamodb", region_name=address.region, endpoint_url=address.endpoint_url).meta.endpoint_url
        url = urllib.parse.urlsplit(endpoint)
        self._secure = url.scheme == "https"
        self._host, self._port = url.hostname or "", url.port
        default_port = 443 if self._secure else 80
        self._host_header = self._host if self._port in (None, default_port) else f"{self._host}:{self._port}"
        self._path = url.path or "/"
        self._connection: http.client.HTTPConnection | None = None
        self._keys: dict[tuple[str, str], bytes] = {}

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._secure:
                self._connection = http.client.HTTPSConnection(self._host, self._port, timeout=60,
                                                               context=ssl.create_default_context())
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=60)
        return self._connection

    def post(self, operation: str, body: bytes) -> Answer:
        headers = sign_v4(self._credentials.get_frozen_credentials(), self._region, self._host_header, self._path,
                          f"DynamoDB_20120810.{operation}", body, time.gmtime(), self._keys)
        connection = self._connect()
        try:
            connection.request("POST", self._path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            self._connection = None
            raise TransportError(f"{type(exc).__name__}: {exc}") from None
        if response.will_close:
            connection.close()
            self._connection = None
        return parse_answer(response.status, data)


def sign_v4(credentials: Any, region: str, host: str, path: str, target: str, body: bytes, now: time.struct_time,
            keys: dict[tuple[str, str], bytes]) -> dict[str, str]:
    """The headers of a SigV4-signed DynamoDB JSON-protocol POST (AWS Signature Version 4).

    `keys` caches the day's signing key per secret. The result equals botocore's SigV4Auth for
    the same request (tests/unit/test_writer_unit.py checks it), at a tenth of the CPU.
    """
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", now)
    day = amz_date[:8]
    headers = {"content-type": "application/x-amz-json-1.0", "host": host, "x-amz-date": amz_date,
               "x-amz-target": target}
    if credentials.token:
        headers["x-amz-security-token"] = credentials.token
    names = sorted(headers)
    signed = ";".join(names)
    canonical = "\n".join(["POST", path, "", *(f"{n}:{headers[n]}" for n in names), "", signed,
                           hashlib.sha256(body).hexdigest()])
    scope = f"{day}/{region}/dynamodb/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = keys.get((day, credentials.secret_key))
    if key is None:
        key = ("AWS4" + credentials.secret_key).encode()
        for part in (day, region, "dynamodb", "aws4_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        keys.clear()
        keys[(day, credentials.secret_key)] = key
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                                f"SignedHeaders={signed}, Signature={signature}")
    return headers


def parse_answer(status: int, data: bytes) -> Answer:
    try:
        body = json.loads(data) if data else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if status == 200:
        return Answer(status, "", "", body)
    code = str(body.get("__type", "")).rpartition("#")[2]
    message = str(body.get("message") or body.get("Message") or "")
    return Answer(status, code, message, body)
