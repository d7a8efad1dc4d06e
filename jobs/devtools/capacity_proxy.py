"""A loopback DynamoDB endpoint that throttles and fails like DynamoDB: a proxy in front of dynalite.

Neither dynalite nor moto ever throttles. This proxy sits between a DynamoDB client and such an
emulator (HTTP, JSON protocol, `X-Amz-Target: DynamoDB_20120810.<Operation>`), forwards what the
table's write capacity allows, answers the rest as DynamoDB would, injects faults at configured
rates, and records per second what it let through. Tests, benchmarks and data engineers who want
to rehearse a migration against their table's capacity point their client's endpoint at it.

Writes (capacity rules in `jobs.devtools.capacity_model`):

- PutItem, UpdateItem, DeleteItem and each request of a BatchWriteItem draw their write units
  from the table's token bucket (refilled at the table's WCU per second, up to `burst_seconds`
  of unused capacity kept) and from their partition key's bucket (`partition_limit` WCU/s, one
  second deep). The capacity is `write_capacity` when set, else the table's provisioned
  WriteCapacityUnits from DescribeTable upstream (cached; CreateTable, UpdateTable and
  DeleteTable passing through the proxy drop the cache, so autoscaling mid-run is followed once
  the table is ACTIVE again), else unlimited (on-demand; the per-key limit still holds).
- Over budget, a single-item write gets HTTP 400 ProvisionedThroughputExceededException; a
  BatchWriteItem is forwarded with only the requests that fit, the others come back in
  UnprocessedItems exactly as sent (merged with any the upstream returns), or the whole call
  gets the exception when none fits.
- ConsumedCapacity (ReturnConsumedCapacity TOTAL or INDEXES) covers only what was forwarded.
  dynalite 4.0.0 reports the table's units only, counting strings in UTF-16 code units: the proxy
  reports the larger of dynalite's figure and its own for the table, adds its own figure for each
  global secondary index to CapacityUnits and, for INDEXES, a `GlobalSecondaryIndexes` entry.

Reads (GetItem, BatchGetItem, Query, Scan), transactions, PartiQL and table management pass
through without any capacity check: only faults apply to them. Not modelled: read capacity,
transactions' double cost, local secondary indexes' write units, a GSI's own provisioned
capacity (its writes draw from the table's bucket), adaptive capacity, warm throughput of
on-demand tables, and the 40,000 WCU table quota. A write the upstream refuses gets its units back,
except one whose condition failed (DynamoDB charges those; the record counts their WCU but no
item). Requests that cannot be costed (an unknown table, a malformed or invalid request, a batch
with duplicate keys or more than 25 requests) are forwarded unchanged and uncharged, for the
upstream to refuse as DynamoDB would.

Faults, drawn per request from a seeded RNG for the operations in `fault_operations` (default:
every data operation, never table management): a throttle (the exception above), HTTP 500
InternalServerError, HTTP 503 ServiceUnavailable (neither forwarded), a dropped connection
(closed without an answer; a `drop_after_share` of them after forwarding, so the write happened
but the client never hears of it), partial UnprocessedItems for a BatchWriteItem of two or more
requests (a random non-empty strict subset goes on, the rest comes back), and independently of
those a slow answer (`slow_seconds` late). A request gets at most one of the first five.

The record: per table and wall-clock second, requests (calls of data operations, and of any
operation faults are configured for; a BatchWriteItem counts once for each table it names),
accepted items and WCU, throttled requests (every throttling error the client got, injected ones
included), partial responses (UnprocessedItems not empty), and injected faults by kind.
`GET /_carve/stats[?since=EPOCH]` returns it as JSON, `POST /_carve/config` changes capacity and
fault settings (a JSON object of ProxyConfig fields), `POST /_carve/reset` clears the record.

The proxy binds 127.0.0.1 only. Requests it changes are no longer validly signed: the upstream
must be an emulator that does not check signatures (dynalite does not).
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterable, Mapping

from jobs.devtools.capacity_model import (
    Clock,
    TableBudget,
    TableInfo,
    WriteCost,
    delete_cost,
    put_cost,
    update_cost,
)
from jobs.devtools.local_stack import stop_process
from transforms.errors import CarveError

API = "DynamoDB_20120810"
ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"

WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem"})
DATA_OPERATIONS = WRITE_OPERATIONS | {
    "GetItem", "BatchGetItem", "Query", "Scan", "TransactGetItems", "TransactWriteItems",
    "ExecuteStatement", "BatchExecuteStatement", "ExecuteTransaction",
}
TABLE_CHANGES = frozenset({"CreateTable", "UpdateTable", "DeleteTable"})
MANAGEMENT_OPERATIONS = TABLE_CHANGES | {
    "DescribeTable", "ListTables", "DescribeTimeToLive", "UpdateTimeToLive", "TagResource",
    "UntagResource", "ListTagsOfResource", "DescribeLimits", "DescribeEndpoints",
    "DescribeContinuousBackups", "UpdateContinuousBackups", "CreateBackup", "DeleteBackup",
    "DescribeBackup", "ListBackups", "RestoreTableFromBackup", "RestoreTableToPointInTime",
    "CreateGlobalTable", "DescribeGlobalTable", "ListGlobalTables", "UpdateGlobalTable",
    "DescribeTableReplicaAutoScaling", "UpdateTableReplicaAutoScaling", "DescribeKinesisStreamingDestination",
    "ExportTableToPointInTime", "ImportTable", "DescribeImport", "ListImports", "DescribeExport", "ListExports",
}
KNOWN_OPERATIONS = DATA_OPERATIONS | MANAGEMENT_OPERATIONS

# The keys of a record's "faults".
FAULT_KINDS = ("throttle", "error_500", "error_503", "drop_before", "drop_after", "unprocessed", "slow")
MAX_BATCH = 25

THROUGHPUT_MESSAGE = (
    "The level of configured provisioned throughput for the table was exceeded. "
    "Consider increasing your provisioning level with the UpdateTable API."
)

# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the proxy sets itself.
_NOT_RELAYED = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
     "content-length", "expect"}
)

TABLE_INFO_TTL = 30.0  # seconds an ACTIVE table's description is trusted (changes made around the proxy)
TABLE_INFO_RETRY = 0.25  # seconds between descriptions while a table is CREATING/UPDATING or missing
STATS_RETENTION = 24 * 3600  # seconds of per-second rows kept; totals are kept whole


class ProxyConfigError(CarveError):
    """A capacity proxy setting is out of range or unknown: fix the option or the JSON."""


class UpstreamError(CarveError):
    """The upstream endpoint did not answer."""


# --- settings ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyConfig:
    """Capacity and fault settings; every rate is a probability per request, in [0, 1].

    write_capacity: WCU/s for every table, overriding what DescribeTable says (None: the table's).
    burst_seconds: unused capacity kept, in seconds of capacity (0: the bucket holds one second).
    partition_limit: WCU/s per partition key value (None: no per-key limit).
    throttle_rate, error_500_rate, error_503_rate, drop_rate, unprocessed_rate: each request gets
    at most one of these faults, so they add up to at most 1. slow_rate is drawn on its own.
    drop_after_share: the share of dropped connections closed after forwarding.
    """

    write_capacity: float | None = None
    burst_seconds: float = 300.0
    partition_limit: float | None = 1000.0
    throttle_rate: float = 0.0
    unprocessed_rate: float = 0.0
    error_500_rate: float = 0.0
    error_503_rate: float = 0.0
    drop_rate: float = 0.0
    drop_after_share: float = 0.5
    slow_rate: float = 0.0
    slow_seconds: float = 1.0
    fault_operations: frozenset[str] = DATA_OPERATIONS
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fault_operations", frozenset(self.fault_operations))
        problems = []
        for name in ("throttle_rate", "unprocessed_rate", "error_500_rate", "error_503_rate", "drop_rate",
                     "drop_after_share", "slow_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                problems.append(f"{name} must be between 0 and 1, not {value}")
        exclusive = sum(rate for _, rate in self.exclusive_rates())
        if exclusive > 1.0 + 1e-9:
            problems.append(
                f"throttle, unprocessed, error_500, error_503 and drop rates add up to {exclusive:g}; a request "
                "gets at most one of these faults, so they must add up to at most 1"
            )
        if self.write_capacity is not None and self.write_capacity <= 0:
            problems.append(
                f"write_capacity must be positive (or unset for the table's own), not {self.write_capacity}")
        if self.partition_limit is not None and self.partition_limit <= 0:
            problems.append(f"partition_limit must be positive (or unset for none), not {self.partition_limit}")
        if self.burst_seconds < 0:
            problems.append(f"burst_seconds must be 0 or more, not {self.burst_seconds}")
        if self.slow_seconds < 0:
            problems.append(f"slow_seconds must be 0 or more, not {self.slow_seconds}")
        unknown = sorted(self.fault_operations - KNOWN_OPERATIONS)
        if unknown:
            problems.append(f"unknown operation(s) in fault_operations: {', '.join(unknown)}; "
                            f"data operations are {', '.join(sorted(DATA_OPERATIONS))}")
        if problems:
            raise ProxyConfigError("; ".join(problems))

    def exclusive_rates(self) -> list[tuple[str, float]]:
        return [("throttle", self.throttle_rate), ("error_500", self.error_500_rate),
                ("error_503", self.error_503_rate), ("drop", self.drop_rate), ("unprocessed", self.unprocessed_rate)]

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["fault_operations"] = sorted(self.fault_operations)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any], base: "ProxyConfig | None" = None) -> "ProxyConfig":
        """base (default: the defaults) with the fields in data changed; unknown fields are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ProxyConfigError(f"unknown setting(s) {', '.join(unknown)}; settings are {', '.join(sorted(names))}")
        try:
            return dataclasses.replace(base or cls(), **data)
        except TypeError as exc:  # a string where a number belongs, and the like
            raise ProxyConfigError(f"invalid setting: {exc}") from exc


# --- the record --------------------------------------------------------------------------------

COUNTERS = ("requests", "accepted_items", "accepted_wcu", "throttled_requests", "partial_responses")


def _empty_row() -> dict[str, Any]:
    return {**{name: 0 for name in COUNTERS}, "faults": {}}


class StatsRecord:
    """Per table and wall-clock second (epoch seconds): what the proxy let through and refused."""

    def __init__(self, wall: Clock = time.time, retention: float = STATS_RETENTION):
        self._wall = wall
        self._retention = retention
        self._lock = threading.Lock()
        self._seconds: dict[str, dict[int, dict[str, Any]]] = {}
        self._totals: dict[str, dict[str, Any]] = {}
        self._last_prune = 0

    def add(self, table: str, fault: str | None = None, **counts: float) -> None:
        second = int(self._wall())
        with self._lock:
            rows = self._seconds.setdefault(table, {})
            row = rows.get(second)
            if row is None:
                row = rows[second] = _empty_row()
                self._prune(second)
            total = self._totals.setdefault(table, _empty_row())
            for target in (row, total):
                for name, value in counts.items():
                    target[name] += value
                if fault:
                    target["faults"][fault] = target["faults"].get(fault, 0) + 1

    def _prune(self, now: int) -> None:
        if now - self._last_prune < 60:
            return
        self._last_prune = now
        for rows in self._seconds.values():
            for second in [s for s in rows if s < now - self._retention]:
                del rows[second]

    def snapshot(self, since: float | None = None) -> dict[str, dict[str, Any]]:
        """{table: {"totals": row, "seconds": [row with "second", ...]}}; seconds >= since only, when given."""
        with self._lock:
            return {
                table: {
                    "totals": _copy_row(self._totals[table]),
                    "seconds": [{"second": s, **_copy_row(r)} for s, r in sorted(rows.items())
                                if since is None or s >= since],
                }
                for table, rows in self._seconds.items()
            }

    def reset(self) -> None:
        with self._lock:
            self._seconds.clear()
            self._totals.clear()


def _copy_row(row: Mapping[str, Any]) -> dict[str, Any]:
    return {**row, "faults": dict(row["faults"])}


# --- upstream ----------------------------------------------------------------------------------


class Upstream:
    """One persistent HTTP/1.1 connection to the upstream per proxy thread."""

    def __init__(self, url: str, timeout: float = 60.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ProxyConfigError(f"upstream must be an http://host:port URL, not {url!r}")
        self.url = f"http://{parts.hostname}:{parts.port or 80}"
        self._host, self._port = parts.hostname, parts.port or 80
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: set[http.client.HTTPConnection] = set()

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            with self._lock:
                self._connections.add(conn)
        return conn

    def request(self, method: str, path: str, headers: Mapping[str, str], body: bytes
                ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Status, headers and body of the upstream's answer; UpstreamError when there is none."""
        for attempt in (1, 2):
            conn = self._connection()
            reused = conn.sock is not None
            try:
                conn.request(method, path, body=body, headers=dict(headers))
                response = conn.getresponse()
                data = response.read()
                if response.will_close:
                    conn.close()
                return response.status, response.getheaders(), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                conn.close()
                # The upstream closes idle keep-alive connections (Node: after 5 s); a request sent
                # on one that was closed under it never arrived, so sending it once more is safe.
                if not reused or attempt == 2:
                    raise UpstreamError(f"upstream {self.url} closed the connection: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise UpstreamError(f"upstream {self.url} did not answer: {exc}") from exc
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            conn.close()


# --- replies -----------------------------------------------------------------------------------


@dataclass
class Reply:
    """What the handler sends: an HTTP answer, possibly late, or nothing at all (drop)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    delay: float = 0.0
    drop: bool = False


def _crc(body: bytes) -> str:
    return str(zlib.crc32(body) & 0xFFFFFFFF)


def _request_id() -> str:
    return uuid.uuid4().hex.upper() + uuid.uuid4().hex.upper()[:20]


def json_reply(status: int, data: Any) -> Reply:
    body = json.dumps(data, separators=(",", ":")).encode()
    return Reply(status, [("Content-Type", "application/x-amz-json-1.0"), ("x-amzn-RequestId", _request_id()),
                          ("x-amz-crc32", _crc(body))], body)


def error_reply(status: int, error_type: str, message: str) -> Reply:
    """A DynamoDB error answer; botocore reads the code from after the '#'."""
    return json_reply(status, {"__type": ERROR_PREFIX + error_type, "message": message})


def throttle_reply(message: str = THROUGHPUT_MESSAGE) -> Reply:
    return error_reply(400, "ProvisionedThroughputExceededException", message)


def with_body(reply: Reply, data: Any) -> Reply:
    """The upstream's reply with a new JSON body (and the checksum botocore verifies)."""
    body = json.dumps(data, separators=(",", ":")).encode()
    headers = [(k, _crc(body) if k.lower() == "x-amz-crc32" else v) for k, v in reply.headers]
    return Reply(reply.status, headers, body)


# --- consumed capacity -------------------------------------------------------------------------


def corrected_capacity(upstream: Mapping[str, Any] | None, table: str, costs: Iterable[WriteCost],
                       mode: str) -> dict[str, Any]:
    """ConsumedCapacity for the forwarded writes of one table (see the module docstring)."""
    table_units = 0.0
    indexes: dict[str, float] = {}
    for cost in costs:
        table_units += cost.table_units
        for name, units in cost.index_units.items():
            indexes[name] = indexes.get(name, 0.0) + units
    if upstream:
        reported = upstream.get("Table", {}).get("CapacityUnits", upstream.get("CapacityUnits", 0.0))
        table_units = max(table_units, float(reported))
    result: dict[str, Any] = {"TableName": table, "CapacityUnits": table_units + sum(indexes.values())}
    if mode == "INDEXES":
        result["Table"] = {"CapacityUnits": table_units}
        if indexes:
            result["GlobalSecondaryIndexes"] = {name: {"CapacityUnits": u} for name, u in indexes.items()}
    return result


# --- the proxy's core --------------------------------------------------------------------------


@dataclass
class _Described:
    info: TableInfo | None
    at: float


class _Uncostable(Exception):
    """The request cannot be costed (malformed, unknown table, duplicate keys): forward it as it is."""


class ProxyCore:
    """Everything but the HTTP plumbing: decide, forward, answer, record. Thread safe."""

    def __init__(self, upstream: Upstream, config: ProxyConfig, clock: Clock = time.monotonic,
                 wall: Clock = time.time):
        self.upstream = upstream
        self.config = config
        self.stats = StatsRecord(wall)
        self._clock = clock
        self._rng = random.Random(config.seed)
        self._rng_lock = threading.Lock()
        self._lock = threading.Lock()  # budgets and the table cache
        self._tables: dict[str, _Described] = {}
        self._describing: dict[str, threading.Lock] = {}
        self._budgets: dict[str, TableBudget] = {}

    # control ---------------------------------------------------------------------------------

    def configure(self, changes: Mapping[str, Any]) -> ProxyConfig:
        config = ProxyConfig.from_json(changes, base=self.config)
        if "seed" in changes:
            with self._rng_lock:
                self._rng = random.Random(config.seed)
        self.config = config
        return config

    def snapshot(self, since: float | None = None) -> dict[str, Any]:
        """The stats JSON: upstream, config, and per table its capacity, totals and seconds."""
        config = self.config
        tables = self.stats.snapshot(since)
        with self._lock:
            for name, record in tables.items():
                described = self._tables.get(name)
                info = described.info if described else None
                budget = self._budgets.get(name)
                capacity, source = self._capacity(info, config)
                record["capacity"] = {
                    "write_capacity": capacity,
                    "source": source,
                    "burst_seconds": config.burst_seconds,
                    "partition_limit": config.partition_limit,
                    "available_wcu": None if budget is None else budget.available,
                }
        return {"upstream": self.upstream.url, "config": config.to_json(), "tables": tables}

    @staticmethod
    def _capacity(info: TableInfo | None, config: ProxyConfig) -> tuple[float | None, str]:
        if config.write_capacity is not None:
            return config.write_capacity, "override"
        if info is None:
            return None, "unknown"
        return info.write_capacity, "provisioned" if info.write_capacity is not None else "on-demand"

    # requests --------------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        if path.startswith("/_carve/"):
            return self._control(method, path, body)
        lowered = {k.lower(): v for k, v in headers}
        api, _, operation = lowered.get("x-amz-target", "").partition(".")
        forward_headers = [(k, v) for k, v in headers if k.lower() not in _NOT_RELAYED]
        if method != "POST" or api != API or "content-encoding" in lowered:
            return self.forward(method, path, forward_headers, body)
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if not isinstance(request, dict):
            return self.forward(method, path, forward_headers, body)  # the upstream says what is wrong
        try:
            return _Call(self, operation, request, path, forward_headers, body).run()
        except UpstreamError as exc:  # a table description the proxy needed did not come
            return error_reply(502, "InternalServerError", f"carve proxy: {exc}")

    def forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> Reply:
        try:
            status, response_headers, data = self.upstream.request(method, path, dict(headers), body)
        except UpstreamError as exc:
            return error_reply(502, "InternalServerError", f"carve proxy: {exc}")
        return Reply(status, [(k, v) for k, v in response_headers if k.lower() not in _NOT_RELAYED], data)

    def _control(self, method: str, path: str, body: bytes) -> Reply:
        parts = urllib.parse.urlsplit(path)
        if method == "GET" and parts.path == "/_carve/stats":
            since = urllib.parse.parse_qs(parts.query).get("since")
            try:
                return json_reply(200, self.snapshot(float(since[0]) if since else None))
            except ValueError:
                return json_reply(400, {"error": "since must be epoch seconds"})
        if method == "POST" and parts.path == "/_carve/config":
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ProxyConfigError("the body must be a JSON object of settings")
                return json_reply(200, {"config": self.configure(changes).to_json()})
            except (ValueError, ProxyConfigError) as exc:
                return json_reply(400, {"error": str(exc)})
        if method == "POST" and parts.path == "/_carve/reset":
            self.stats.reset()
            return json_reply(200, {"reset": True})
        return json_reply(404, {"error": "GET /_carve/stats, POST /_carve/config, POST /_carve/reset"})

    # tables ----------------------------------------------------------------------------------

    def table_info(self, name: str) -> TableInfo | None:
        """The table's description, cached; None when the upstream does not know the table."""
        now = self._clock()
        with self._lock:
            described = self._tables.get(name)
            if described is not None and now - described.at < self._ttl(described):
                return described.info
            describing = self._describing.setdefault(name, threading.Lock())
        with describing:  # one description at a time per table, not one per waiting thread
            with self._lock:
                described = self._tables.get(name)
                if described is not None and self._clock() - described.at < self._ttl(described):
                    return described.info
            info = self._describe(name)
            with self._lock:
                self._tables[name] = _Described(info, self._clock())
            return info

    @staticmethod
    def _ttl(described: _Described) -> float:
        return TABLE_INFO_TTL if described.info is not None and described.info.active else TABLE_INFO_RETRY

    def _describe(self, name: str) -> TableInfo | None:
        body = json.dumps({"TableName": name}).encode()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers = {
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"{API}.DescribeTable",
            "X-Amz-Date": stamp,
            # The proxy's own call; emulators check the header's shape, not the signature.
            "Authorization": f"AWS4-HMAC-SHA256 Credential=carve-proxy/{stamp[:8]}/us-east-1/dynamodb/aws4_request, "
                             "SignedHeaders=host;x-amz-date, Signature=0",
        }
        status, _, data = self.upstream.request("POST", "/", headers, body)
        if status != 200:
            return None
        return TableInfo.from_description(json.loads(data)["Table"])

    def forget_table(self, name: str, budget_too: bool) -> None:
        with self._lock:
            self._tables.pop(name, None)
            if budget_too:
                self._budgets.pop(name, None)

    def admit(self, info: TableInfo, costs: list[WriteCost]) -> list[bool]:
        config = self.config
        with self._lock:
            capacity, _ = self._capacity(info, config)
            budget = self._budgets.get(info.name)
            if budget is None:
                budget = self._budgets[info.name] = TableBudget(
                    capacity, config.burst_seconds, config.partition_limit, self._clock)
            else:
                budget.configure(capacity, config.burst_seconds, config.partition_limit)
            return budget.admit(costs)

    def refund(self, table: str, costs: list[WriteCost]) -> None:
        with self._lock:
            budget = self._budgets.get(table)
            if budget is not None:
                budget.refund(costs)

    # faults ----------------------------------------------------------------------------------

    def draw_fault(self, operation: str, batch_requests: int) -> tuple[str | None, bool]:
        """(the fault for this request or None, whether it is slow)."""
        config = self.config
        if operation not in config.fault_operations:
            return None, False
        rates = config.exclusive_rates()
        if not config.slow_rate and not any(rate for _, rate in rates):
            return None, False
        with self._rng_lock:
            draw = self._rng.random()
            slow = self._rng.random() < config.slow_rate
            fault, bound = None, 0.0
            for kind, rate in rates:
                bound += rate
                if draw < bound:
                    fault = kind
                    break
            if fault == "drop":
                fault = "drop_after" if self._rng.random() < config.drop_after_share else "drop_before"
        if fault == "unprocessed" and (operation != "BatchWriteItem" or batch_requests < 2):
            fault = None  # no non-empty strict subset to forward
        return fault, slow

    def split(self, count: int) -> set[int]:
        """A random non-empty strict subset of range(count): the requests forwarded."""
        with self._rng_lock:
            return set(self._rng.sample(range(count), self._rng.randint(1, count - 1)))


class _Call:
    """One DynamoDB call through the proxy."""

    def __init__(self, core: ProxyCore, operation: str, request: dict[str, Any], path: str,
                 headers: list[tuple[str, str]], body: bytes):
        self.core = core
        self.operation = operation
        self.request = request
        self.path = path
        self.headers = headers
        self.body = body
        self.tables = self._tables_named()

    def _tables_named(self) -> list[str]:
        request = self.request
        if isinstance(request.get("TableName"), str):
            return [request["TableName"]]
        items = request.get("RequestItems")
        if isinstance(items, dict):
            return [t for t in items if isinstance(t, str)]
        transact = request.get("TransactItems")
        if isinstance(transact, list):
            named = (part.get("TableName") for entry in transact if isinstance(entry, dict)
                     for part in entry.values() if isinstance(part, dict))
            return list(dict.fromkeys(n for n in named if isinstance(n, str)))
        return []

    def record(self, fault: str | None = None, **counts: float) -> None:
        for table in self.tables or ["*"]:
            self.core.stats.add(table, fault, **counts)

    def run(self) -> Reply:
        core, operation = self.core, self.operation
        batch = self.request.get("RequestItems") if operation == "BatchWriteItem" else None
        size = sum(len(r) for r in batch.values() if isinstance(r, list)) if isinstance(batch, dict) else 0
        fault, slow = core.draw_fault(operation, size)
        if operation in DATA_OPERATIONS or operation in core.config.fault_operations:
            self.record(requests=1)
        if slow:
            self.record("slow")
        reply = self._faulted(fault)
        if reply is None:
            reply = self._served(fault)
        if fault == "drop_after":
            self.record("drop_after")
            reply = Reply(0, drop=True)
        if slow:
            reply.delay = core.config.slow_seconds
        return reply

    def _faulted(self, fault: str | None) -> Reply | None:
        """The answer of a fault that stops the request before the upstream, if it is one."""
        if fault == "throttle":
            self.record("throttle", throttled_requests=1)
            return throttle_reply()
        if fault == "error_500":
            self.record("error_500")
            return error_reply(500, "InternalServerError", "Internal server error (injected by carve proxy)")
        if fault == "error_503":
            self.record("error_503")
            return error_reply(503, "ServiceUnavailable", "Service unavailable (injected by carve proxy)")
        if fault == "drop_before":
            self.record("drop_before")
            return Reply(0, drop=True)
        return None

    def _served(self, fault: str | None) -> Reply:
        operation = self.operation
        if operation == "BatchWriteItem":
            return self._batch_write(split=fault == "unprocessed")
        if operation in WRITE_OPERATIONS:
            return self._single_write()
        reply = self.core.forward("POST", self.path, self.headers, self.body)
        if operation in TABLE_CHANGES and isinstance(self.request.get("TableName"), str):
            self.core.forget_table(self.request["TableName"], budget_too=operation != "UpdateTable")
        return reply

    def _forward(self, request: dict[str, Any] | None = None) -> Reply:
        body = self.body if request is None else json.dumps(request, separators=(",", ":")).encode()
        return self.core.forward("POST", self.path, self.headers, body)

    # single-item writes ----------------------------------------------------------------------

    def _single_write(self) -> Reply:
        try:
            info, cost = self._single_cost()
        except _Uncostable:
            return self._forward()
        if not self.core.admit(info, [cost])[0]:
            self.record(throttled_requests=1)
            return throttle_reply()
        reply = self._forward()
        if reply.status != 200:
            if b"ConditionalCheckFailedException" in reply.body:
                self.record(accepted_wcu=cost.total)  # DynamoDB charges a write whose condition fails
            else:
                self.core.refund(info.name, [cost])  # refused before writing: nothing consumed
            return reply
        self.record(accepted_items=1, accepted_wcu=cost.total)
        mode = self.request.get("ReturnConsumedCapacity")
        if mode in ("TOTAL", "INDEXES"):
            data = json.loads(reply.body)
            data["ConsumedCapacity"] = corrected_capacity(data.get("ConsumedCapacity"), info.name, [cost], mode)
            reply = with_body(reply, data)
        return reply

    def _single_cost(self) -> tuple[TableInfo, WriteCost]:
        request = self.request
        if not self.tables:
            raise _Uncostable()
        info = self.core.table_info(self.tables[0])
        if info is None:
            raise _Uncostable()
        # Malformed requests fail here in any of these ways; the upstream then answers with the
        # ValidationException DynamoDB would give.
        try:
            if self.operation == "PutItem":
                return info, put_cost(info, request["Item"])
            if self.operation == "DeleteItem":
                return info, delete_cost(info, request["Key"])
            return info, update_cost(info, request)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _Uncostable() from exc

    # batches ---------------------------------------------------------------------------------

    def _batch_write(self, split: bool) -> Reply:
        try:
            entries, infos = self._batch_entries()
        except _Uncostable:
            return self._forward()
        core = self.core
        forwarded = core.split(len(entries)) if split else set(range(len(entries)))
        if split:
            self.record("unprocessed")
        accepted: list[int] = []
        for table, info in infos.items():
            mine = [i for i, (t, _, _) in enumerate(entries) if t == table and i in forwarded]
            decisions = core.admit(info, [entries[i][2] for i in mine]) if mine else []
            accepted += [i for i, ok in zip(mine, decisions, strict=True) if ok]
        if not accepted:
            self.record(throttled_requests=1)
            return throttle_reply()
        taken = set(accepted)
        request = dict(self.request)
        request["RequestItems"] = {}
        left: dict[str, list[Any]] = {}
        for i, (table, entry, _) in enumerate(entries):
            (request["RequestItems"] if i in taken else left).setdefault(table, []).append(entry)
        reply = self._forward(request if left else None)  # all of it: the bytes as they came
        if reply.status != 200:
            for table in infos:
                core.refund(table, [entries[i][2] for i in accepted if entries[i][0] == table])
            return reply
        data = json.loads(reply.body)
        unprocessed = data.get("UnprocessedItems") or {}
        changed = bool(left)
        for table, requests in left.items():
            unprocessed.setdefault(table, []).extend(requests)
        data["UnprocessedItems"] = unprocessed
        for table in infos:
            costs = [entries[i][2] for i in accepted if entries[i][0] == table]
            returned = len(unprocessed.get(table, []))
            self.core.stats.add(table, accepted_items=len(costs) - (returned - len(left.get(table, []))),
                                accepted_wcu=sum(c.total for c in costs),
                                partial_responses=1 if returned else 0)
        mode = self.request.get("ReturnConsumedCapacity")
        if mode in ("TOTAL", "INDEXES"):
            reported = {c.get("TableName"): c for c in data.get("ConsumedCapacity") or []}
            data["ConsumedCapacity"] = [
                corrected_capacity(reported.get(table), table,
                                   [entries[i][2] for i in accepted if entries[i][0] == table], mode)
                for table in infos if any(entries[i][0] == table for i in accepted)
            ]
            changed = True
        return with_body(reply, data) if changed else reply

    def _batch_entries(self) -> tuple[list[tuple[str, Any, WriteCost]], dict[str, TableInfo]]:
        """(table, request entry, cost) per request, and each table's info; _Uncostable when the
        batch is one DynamoDB refuses as a whole (too many requests, duplicate keys, unknown table,
        malformed), so the upstream gets it unchanged and refuses it."""
        items = self.request.get("RequestItems")
        if not isinstance(items, dict) or not items:
            raise _Uncostable()
        entries: list[tuple[str, Any, WriteCost]] = []
        infos: dict[str, TableInfo] = {}
        for table, requests in items.items():
            info = self.core.table_info(table)
            if info is None or not isinstance(requests, list):
                raise _Uncostable()
            infos[table] = info
            keys = set()
            try:
                for entry in requests:
                    if "PutRequest" in entry:
                        item = entry["PutRequest"]["Item"]
                        cost = put_cost(info, item)
                    else:
                        item = entry["DeleteRequest"]["Key"]
                        cost = delete_cost(info, item)
                    key = info.key_of(item)
                    if key in keys:
                        raise _Uncostable()
                    keys.add(key)
                    entries.append((table, entry, cost))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise _Uncostable() from exc
        if len(entries) > MAX_BATCH or not entries:
            raise _Uncostable()
        return entries, infos


# --- HTTP --------------------------------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # an idle keep-alive connection's thread ends after this
    server: "_ProxyServer"

    def setup(self) -> None:
        super().setup()
        # One write per answer, but the client's next request should not wait on Nagle either.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        self._serve()

    def do_GET(self) -> None:  # noqa: N802
        self._serve()

    def _serve(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            self._send(json_reply(411, {"error": "carve proxy needs a Content-Length body"}))
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        reply = self.server.core.handle(self.command, self.path, list(self.headers.items()), body)
        if reply.delay:
            time.sleep(reply.delay)
        if reply.drop:
            self.close_connection = True  # closed without a word: the client sees the connection end
            return
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        try:
            reason = HTTPStatus(reply.status).phrase
        except ValueError:
            reason = ""
        lines = [f"HTTP/1.1 {reply.status} {reason}"]
        lines += [f"{k}: {v}" for k, v in reply.headers]
        lines.append(f"Content-Length: {len(reply.body)}")
        if self.close_connection:
            lines.append("Connection: close")
        # Head and body in one write: two small writes would meet Nagle and delayed ACKs.
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # one line per request would cost more than the proxying; the record says what happened


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port: int, core: ProxyCore):
        self.core = core
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return  # the client went away or idled out: nothing to answer, nothing to report
        super().handle_error(request, client_address)  # a bug: the traceback goes to stderr

    def track(self, sock: socket.socket, open_: bool) -> None:
        with self._open_lock:
            (self._open.add if open_ else self._open.discard)(sock)

    def close_connections(self) -> None:
        with self._open_lock:
            socks, self._open = list(self._open), set()
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by the client


# --- running it --------------------------------------------------------------------------------


def _read_json(url: str, data: Mapping[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
    body = None if data is None else json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = json.loads(exc.read() or b"{}").get("error", str(exc))
        if exc.code == 400:
            raise ProxyConfigError(detail) from exc
        raise CarveError(f"{url}: {detail}") from exc


class Proxy:
    """A capacity proxy serving from a background thread of this process."""

    def __init__(self, server: _ProxyServer):
        self._server = server
        self.port: int = server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, args=(0.1,), name=f"carve-proxy-{self.port}",
                                        daemon=True)
        self._thread.start()

    @property
    def core(self) -> ProxyCore:
        return self._server.core

    def stats(self, since: float | None = None) -> dict[str, Any]:
        return self.core.snapshot(since)

    def configure(self, **changes: Any) -> ProxyConfig:
        return self.core.configure(changes)

    def reset(self) -> None:
        self.core.stats.reset()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self.core.upstream.close()

    def __enter__(self) -> "Proxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_proxy(upstream_url: str, config: ProxyConfig | None = None, port: int = 0,
                clock: Clock = time.monotonic) -> Proxy:
    """Serve a capacity proxy for upstream_url on 127.0.0.1:port (0: a free port) from a thread.

    clock drives the buckets and the table cache; tests pass one they advance by hand, so the
    buckets refill only when the test says so.
    """
    core = ProxyCore(Upstream(upstream_url), config or ProxyConfig(), clock=clock)
    return Proxy(_ProxyServer(port, core))


class ProxyProcess:
    """A capacity proxy in a process of its own (so it does not share the client's GIL)."""

    def __init__(self, process: subprocess.Popen, port: int):
        self.process = process
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def stats(self, since: float | None = None) -> dict[str, Any]:
        query = "" if since is None else f"?since={since}"
        return _read_json(f"{self.url}/_carve/stats{query}")

    def configure(self, **changes: Any) -> ProxyConfig:
        data = json.loads(json.dumps(changes, default=sorted))  # frozensets as lists
        return ProxyConfig.from_json(_read_json(f"{self.url}/_carve/config", data)["config"])

    def reset(self) -> None:
        _read_json(f"{self.url}/_carve/reset", {})

    def stop(self) -> None:
        stop_process(self.process)
        if self.process.stdout:
            self.process.stdout.close()

    def __enter__(self) -> "ProxyProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


REPO = Path(__file__).resolve().parents[2]


def spawn_proxy(upstream_url: str, config: ProxyConfig | None = None, port: int = 0,
                timeout: float = 20.0) -> ProxyProcess:
    """Start `python -m jobs.devtools.capacity_proxy` and return once it answers on its (free, by default) port."""
    config = config or ProxyConfig()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.devtools.capacity_proxy", "--upstream", upstream_url, "--port", str(port),
         "--config", json.dumps(config.to_json())],
        stdout=subprocess.PIPE, env=env, start_new_session=True, text=True,  # stderr: the caller's
    )
    # The child binds first and then prints its address: no free-port race with other test runs.
    line = _first_line(process, timeout)
    if not line.startswith("carve proxy listening on http://127.0.0.1:"):
        ProxyProcess(process, 0).stop()
        raise CarveError(f"the capacity proxy did not start (exit status {process.poll()}): {line.strip()!r}")
    proxy = ProxyProcess(process, int(line.strip().rsplit(":", 1)[1]))
    deadline = time.monotonic() + timeout
    while True:
        try:
            proxy.stats()
            return proxy
        except (OSError, CarveError):
            if time.monotonic() > deadline:
                proxy.stop()
                raise CarveError(f"the capacity proxy on {proxy.url} did not answer within {timeout:.0f}s") from None
            time.sleep(0.05)


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else ""


def second_summary(snapshot: Mapping[str, Any], second: int) -> str | None:
    """One line for one second: per table, accepted WCU against capacity and what was refused."""
    parts = []
    for table, record in sorted(snapshot["tables"].items()):
        row = next((r for r in record["seconds"] if r["second"] == second), None)
        if row is None:
            continue
        capacity = record["capacity"]["write_capacity"]
        limit = "unlimited" if capacity is None else f"{capacity:g}"
        faults = ", ".join(f"{k} {v}" for k, v in sorted(row["faults"].items()))
        parts.append(
            f"{table}: {row['accepted_wcu']:g}/{limit} WCU, {row['accepted_items']} items, "
            f"{row['requests']} requests, {row['throttled_requests']} throttled, "
            f"{row['partial_responses']} partial" + (f", faults: {faults}" if faults else "")
        )
    if not parts:
        return None
    return time.strftime("%H:%M:%S", time.localtime(second)) + "  " + " | ".join(parts)


def main(argv: list[str] | None = None) -> int:
    """`python -m jobs.devtools.capacity_proxy --upstream URL [--port N] [--config JSON]`; serves until SIGTERM/SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m jobs.devtools.capacity_proxy", description=__doc__.split("\n")[0])
    parser.add_argument("--upstream", required=True, help="the emulator's URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--config", default="{}", help="ProxyConfig fields as a JSON object")
    args = parser.parse_args(argv)
    try:
        config = ProxyConfig.from_json(json.loads(args.config))
        server = _ProxyServer(args.port, ProxyCore(Upstream(args.upstream), config))
    except (ValueError, CarveError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def stop(_signum: int, _frame: Any) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(f"carve proxy listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except (SystemExit, KeyboardInterrupt):
        pass
    finally:
        server.close_connections()
        server.server_close()
        server.core.upstream.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
