"""Where `carve sync` keeps what it has applied: a DynamoDB control table, on AWS or beside it.

One item per mapping holds its lease (who is syncing it and until when) and, per source table,
the position reached in that table's changes (a watermark value, an LSN, a binlog file and offset,
the last DMS file) with the fingerprint of the mapping that reached it. Every write is one
conditional write of that item, atomic on DynamoDB and on the emulators alike (dynalite has no
transactions, which a record per table would need to check the lease and move a position at once):

- a lease is taken only when there is none or the one there has expired (a sync that died leaves
  a stale lease that the next one takes over after the timeout), and renewed or released only
  with the token of whoever took it;
- a position moves only while its writer holds an unexpired lease, and only from the value it
  read, so a sync that lost its lease (paused past the timeout, or taken over) can never move
  one, and a position never moves twice from the same start.

Glue job bookmarks are not used: they do not run in the Glue Docker image and know nothing of
deletes or of the items a change rewrites.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import ClientError

from jobs.aws import aws_errors, error_code
from jobs.sinks.table import TableAddress, TableSpec, dynamodb_client, ensure_table
from transforms.errors import CarveError
from transforms.mapping import Mapping

KEY = ("mapping", "record")
STATE = "state"  # the record of a mapping's lease and positions
NAMES = {"#o": "owner", "#t": "token", "#p": "positions"}


class LeaseHeldError(CarveError):
    """Another sync holds the mapping's lease."""


class LeaseLostError(CarveError):
    """This sync's lease expired and was taken over: it must stop without moving a position."""


class MappingChangedError(CarveError):
    """The mapping's keys or entities differ from the ones the saved positions were reached with."""


@dataclass(frozen=True)
class Lease:
    mapping: str
    owner: str  # who, for people: host and process
    token: str  # which sync, for the conditions
    expires_at: float  # epoch seconds


@dataclass(frozen=True)
class Position:
    table: str
    kind: str  # watermark, postgres_logical, mysql_binlog, dms_s3
    value: dict[str, Any]  # the source's own position, as JSON
    fingerprint: str
    updated_at: str


def fingerprint(mapping: Mapping) -> str:
    """What a saved position depends on: everything that shapes the items (target keys and
    indexes, the value policy, every entity with its keys, filters, attributes and embeds).
    Left out: the description, the write budget, the rejected share and the access patterns,
    which change no item."""
    shape = mapping.model_dump(mode="json", by_alias=True, warnings=False, exclude={
        "description": True, "patterns": True, "sync": True, "target": {"write_rate"}, "policy": {"max_rejected_share"}})
    return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]


def this_process() -> str:
    return f"{socket.gethostname()} pid {os.getpid()}"


class ControlTable:
    """The control table at `address` (created on first use, on-demand billing)."""

    def __init__(self, address: TableAddress, clock: Callable[[], float] = time.time) -> None:
        self.address = address
        self.clock = clock
        self.client = dynamodb_client(address)

    def ensure(self) -> None:
        with aws_errors(f"cannot reach the control table {self.address.table}"):
            ensure_table(self.client, TableSpec(self.address.table, KEY[0], KEY[1]))

    # --- the lease ----------------------------------------------------------------------------

    def acquire(self, mapping: str, seconds: float, owner: str | None = None) -> Lease:
        """The mapping's lease for `seconds`, or LeaseHeldError saying whose it is and until when."""
        now = self.clock()
        lease = Lease(mapping, owner or this_process(), uuid.uuid4().hex, now + seconds)
        try:
            self._update(mapping, f"take the lease of mapping '{mapping}'",
                         "SET #o = :owner, #t = :token, expires_at = :expires, taken_at = :taken, "
                         "#p = if_not_exists(#p, :none)",
                         "attribute_not_exists(#t) OR expires_at < :now",
                         {":owner": {"S": lease.owner}, ":token": {"S": lease.token},
                          ":expires": {"N": _number(lease.expires_at)}, ":taken": {"S": _clock(now)},
                          ":none": {"M": {}}, ":now": {"N": _number(now)}})
        except _ConditionFailed:
            held = self.lease(mapping)
            if held is None:  # released between the write and the read: try once more
                return self.acquire(mapping, seconds, owner)
            raise LeaseHeldError(
                f"mapping '{mapping}' is leased by {held.owner} until {_clock(held.expires_at)} "
                f"({held.expires_at - now:,.0f} s from now): another sync is running. Wait for it; a lease "
                "left by a sync that died is taken over once it expires") from None
        return lease

    @contextmanager
    def held(self, mapping: str, seconds: float) -> Iterator[Lease]:
        """The mapping's lease while the block runs, renewed every third of `seconds` (a full load
        or a long cycle outlasts any timeout a dead sync should be kept waiting), then released."""
        lease = self.acquire(mapping, seconds)
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(seconds / 3):
                try:
                    self.renew(lease, seconds)
                except CarveError:
                    return  # lost or unreachable: the holder's next conditional write says so

        beating = threading.Thread(target=heartbeat, name="carve-lease", daemon=True)
        beating.start()
        try:
            yield lease
        finally:
            stop.set()
            beating.join()
            self.release(lease)

    def renew(self, lease: Lease, seconds: float) -> Lease:
        renewed = Lease(lease.mapping, lease.owner, lease.token, self.clock() + seconds)
        self._as_holder(lease, "SET expires_at = :expires", {":expires": {"N": _number(renewed.expires_at)}})
        return renewed

    def release(self, lease: Lease) -> None:
        self._as_holder(lease, "REMOVE #o, #t, expires_at, taken_at", {})

    def forget(self, lease: Lease) -> None:
        """The mapping's whole record (positions, last cycle, the lease itself) deleted, as the
        lease's holder."""
        with aws_errors(f"cannot remove the sync state of mapping '{lease.mapping}'"):
            try:
                self.client.delete_item(TableName=self.address.table, Key=_key(lease.mapping),
                                        ConditionExpression="#t = :token", ExpressionAttributeNames={"#t": NAMES["#t"]},
                                        ExpressionAttributeValues={":token": {"S": lease.token}})
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    raise LeaseLostError(f"this process no longer holds the lease of mapping '{lease.mapping}': "
                                         "it expired and a sync took it over, so its state was not removed") from None
                raise

    def lease(self, mapping: str) -> Lease | None:
        item = self._item(mapping)
        if item is None or "token" not in item:
            return None
        return Lease(mapping, item["owner"]["S"], item["token"]["S"], float(item["expires_at"]["N"]))

    # --- positions ----------------------------------------------------------------------------

    def positions(self, mapping: str) -> dict[str, Position]:
        """Every source table's saved position for the mapping."""
        item = self._item(mapping) or {}
        out = {}
        for table, saved in item.get("positions", {}).get("M", {}).items():
            fields = saved["M"]
            out[table] = Position(table, fields["kind"]["S"], json.loads(fields["value"]["S"]),
                                  fields["fingerprint"]["S"], fields["updated_at"]["S"])
        return out

    def check_fingerprint(self, mapping: Mapping, positions: dict[str, Position]) -> None:
        """Refuse a sync whose mapping changes its items since the positions were saved."""
        now = fingerprint(mapping)
        changed = sorted(t for t, p in positions.items() if p.fingerprint != now)
        if changed:
            raise MappingChangedError(
                f"mapping '{mapping.name}' changes its items since the positions of "
                f"{', '.join(changed)} were saved: the table may hold items the new mapping would not "
                "write. Run a full load (`carve run`), which starts the sync afresh")

    def advance(self, lease: Lease, moves: list[tuple[Position | None, Position]]) -> None:
        """Move tables' positions, each from `before` (None: the first) to `after`, as the lease's
        holder: all in one conditional write, so that a crash never leaves some moved and some not
        (the tables of one slot or binlog must stay at one position)."""
        if not moves:
            return
        now = self.clock()
        values = {":token": {"S": lease.token}, ":now": {"N": _number(now)}}
        names = {"#v": "value"}
        sets, wheres = [], []
        for n, (before, after) in enumerate(moves):
            names[f"#t{n}"] = after.table
            values[f":s{n}"] = _saved(after)
            sets.append(f"#p.#t{n} = :s{n}")
            if before is None:
                wheres.append(f"attribute_not_exists(#p.#t{n})")
            else:
                wheres.append(f"#p.#t{n}.#v = :b{n}")
                values[f":b{n}"] = {"S": _value(before)}
        tables = ", ".join(after.table for _, after in moves)
        try:
            self._update(lease.mapping, f"save the positions of {tables}", "SET " + ", ".join(sets),
                         " AND ".join(["#t = :token", "expires_at >= :now", *wheres]), values, names)
        except _ConditionFailed:
            held = self.lease(lease.mapping)
            if held is None or held.token != lease.token or held.expires_at < now:
                raise LeaseLostError(
                    f"the positions of {tables} were not saved: this sync no longer holds the lease of "
                    f"mapping '{lease.mapping}'. Nothing after the saved positions is lost: the next sync "
                    "applies it again") from None
            raise LeaseLostError(
                f"the positions of {tables} were not saved: they are no longer where this sync read them "
                "(another sync moved them first). Nothing after the saved positions is lost") from None

    def restart(self, lease: Lease, positions: list[Position], read_at: float) -> None:
        """Every position at once, whatever was saved: a full load has just made the table afresh
        from the source as it was at `read_at`."""
        saved = {"M": {p.table: _saved(p) for p in positions}}
        try:
            self._update(lease.mapping, "save the positions of the full load",
                         "SET #p = :saved, in_step_at = :read REMOVE last_cycle", "#t = :token AND expires_at >= :now",
                         {":token": {"S": lease.token}, ":now": {"N": _number(self.clock())}, ":saved": saved,
                          ":read": {"N": _number(read_at)}})
        except _ConditionFailed:
            raise LeaseLostError(
                f"the positions of the full load were not saved: this run no longer holds the lease of mapping "
                f"'{lease.mapping}'. The table is complete; run the full load again before syncing") from None

    def record_cycle(self, lease: Lease, figures: dict[str, Any], in_step_at: float | None = None) -> None:
        """The last cycle's figures, for `carve sync --status`; an ok cycle also says when the source
        was read that the table now matches (`in_step_at`)."""
        values = {":figures": {"S": json.dumps(figures, default=str)}}
        update = "SET last_cycle = :figures"
        if in_step_at is not None:
            update += ", in_step_at = :read"
            values[":read"] = {"N": _number(in_step_at)}
        self._as_holder(lease, update, values)

    def last_cycle(self, mapping: str) -> dict[str, Any] | None:
        item = self._item(mapping) or {}
        return json.loads(item["last_cycle"]["S"]) if "last_cycle" in item else None

    def in_step_at(self, mapping: str) -> float | None:
        """When the source was read that the table matches: by the last ok cycle or full load."""
        item = self._item(mapping) or {}
        return float(item["in_step_at"]["N"]) if "in_step_at" in item else None

    # --- helpers ------------------------------------------------------------------------------

    def _item(self, mapping: str) -> dict[str, Any] | None:
        with aws_errors(f"cannot read the sync state of mapping '{mapping}'"):
            try:
                return self.client.get_item(TableName=self.address.table, Key=_key(mapping),
                                            ConsistentRead=True).get("Item")
            except ClientError as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    return None  # no control table yet: nothing saved
                raise

    def _update(self, mapping: str, what: str, update: str, condition: str, values: dict[str, Any],
                names: dict[str, str] | None = None) -> None:
        """One conditional UpdateItem of the mapping's state; _ConditionFailed when the condition is false."""
        named = set(re.findall(r"#\w+", f"{update} {condition}"))
        used = {k: v for k, v in (NAMES | (names or {})).items() if k in named}
        with aws_errors(f"cannot {what}"):
            try:
                self.client.update_item(TableName=self.address.table, Key=_key(mapping), UpdateExpression=update,
                                        ConditionExpression=condition, ExpressionAttributeNames=used,
                                        ExpressionAttributeValues=values)
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    raise _ConditionFailed from None
                raise

    def _as_holder(self, lease: Lease, update: str, values: dict[str, Any]) -> None:
        try:
            self._update(lease.mapping, f"update the lease of mapping '{lease.mapping}'", update, "#t = :token",
                         {":token": {"S": lease.token}, **values})
        except _ConditionFailed:
            raise LeaseLostError(f"this sync no longer holds the lease of mapping '{lease.mapping}': "
                                 "it expired and another sync took it over") from None


class _ConditionFailed(Exception):
    pass


def _key(mapping: str) -> dict[str, Any]:
    return {KEY[0]: {"S": mapping}, KEY[1]: {"S": STATE}}


def _saved(position: Position) -> dict[str, Any]:
    return {"M": {"kind": {"S": position.kind}, "value": {"S": _value(position)},
                  "fingerprint": {"S": position.fingerprint}, "updated_at": {"S": position.updated_at}}}


def _value(position: Position) -> str:
    return json.dumps(position.value, sort_keys=True)


def _number(value: float) -> str:
    return f"{value:.3f}"


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="seconds")
