"""The sync's control table on dynalite: one lease per mapping, positions that move only for the
lease's holder and only from where they were, and a mapping change refused with what to do."""

from __future__ import annotations

import time
import uuid

import pytest

from jobs.cli import DEMO_MAPPINGS, packaged_mapping
from jobs.sinks.table import TableAddress
from jobs.sync.state import (
    ControlTable,
    LeaseHeldError,
    LeaseLostError,
    MappingChangedError,
    Position,
    fingerprint,
)
from transforms.mapping import load_mapping

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def control(dynamodb_endpoint):
    clock = Clock()
    table = ControlTable(TableAddress(f"carve-state-{uuid.uuid4().hex[:8]}", dynamodb_endpoint, "us-east-1"), clock)
    table.ensure()
    table.ensure()  # a second time finds it
    return table, clock


def position(value: int, mark: str = "f1") -> Position:
    return Position("public.orders", "watermark", {"column": "updated_at", "value": value}, mark, "2026-12-06T00:00:00+00:00")


def test_one_sync_holds_a_mapping_and_the_other_is_told_by_whom(control):
    table, _ = control
    first = table.acquire("store", 60, owner="host-a pid 1")
    with pytest.raises(LeaseHeldError, match=r"leased by host-a pid 1 until .* another sync is running"):
        table.acquire("store", 60, owner="host-b pid 2")
    assert table.acquire("other-mapping", 60, owner="host-b pid 2").owner == "host-b pid 2"
    table.release(first)
    assert table.lease("store") is None
    assert table.acquire("store", 60, owner="host-b pid 2").owner == "host-b pid 2"


def test_a_stale_lease_is_taken_over_and_its_old_holder_can_move_nothing(control):
    table, clock = control
    died = table.acquire("store", 30, owner="host-a pid 1")
    table.advance(died, [(None, position(100))])
    clock.now += 31  # host-a stopped renewing
    taker = table.acquire("store", 30, owner="host-b pid 2")
    with pytest.raises(LeaseLostError, match="no longer holds the lease"):
        table.renew(died, 30)
    with pytest.raises(LeaseLostError):
        table.advance(died, [(position(100), position(200))])
    with pytest.raises(LeaseLostError):
        table.release(died)
    assert table.positions("store")["public.orders"].value["value"] == 100
    table.advance(taker, [(position(100), position(200))])
    assert table.positions("store")["public.orders"].value["value"] == 200


def test_an_expired_lease_moves_nothing_even_before_anyone_takes_it_over(control):
    table, clock = control
    lease = table.acquire("store", 30)
    clock.now += 31
    with pytest.raises(LeaseLostError):
        table.advance(lease, [(None, position(100))])
    assert table.positions("store") == {}


def test_a_position_moves_once_from_where_it_was(control):
    table, clock = control
    lease = table.acquire("store", 60)
    table.advance(lease, [(None, position(100))])
    with pytest.raises(LeaseLostError, match="another sync moved them first"):
        table.advance(lease, [(None, position(150))])  # a replayed first cycle
    with pytest.raises(LeaseLostError):
        table.advance(lease, [(position(50), position(150))])  # not where it is
    clock.now += 50
    renewed = table.renew(lease, 60)
    clock.now += 40  # past the first expiry, within the renewed one
    table.advance(renewed, [(position(100), position(150))])
    assert table.positions("store") == {"public.orders": position(150)}


def test_a_mapping_that_changes_its_items_is_refused_with_what_to_do(control):
    table, _ = control
    mapping = load_mapping(packaged_mapping(DEMO_MAPPINGS["postgres"]))
    lease = table.acquire(mapping.name, 60)
    table.advance(lease, [(None, position(1, fingerprint(mapping)))])
    table.check_fingerprint(mapping, table.positions(mapping.name))  # the same mapping: nothing to say
    patterns_only = mapping.model_copy(update={"patterns": {}})
    table.check_fingerprint(patterns_only, table.positions(mapping.name))  # no item changes
    entity = mapping.entities["customer"]
    rekeyed = mapping.model_copy(update={"entities": {**mapping.entities, "customer": entity.model_copy(
        update={"key": {**entity.key, "PK": "C#{customer_id}"}})}})
    with pytest.raises(MappingChangedError, match=r"changes its items since the positions of public.orders.*carve run"):
        table.check_fingerprint(rekeyed, table.positions(mapping.name))


def test_a_full_load_restarts_every_position_and_a_cycle_records_its_figures(control):
    table, clock = control
    lease = table.acquire("store", 60)
    table.advance(lease, [(None, position(100))])
    table.record_cycle(lease, {"status": "ok", "items_rewritten": 3}, in_step_at=clock.now - 5)
    load = [position(40), Position("public.product", "watermark", {"upto": "7"}, "f1", "2026-12-06T01:00:00+00:00")]
    table.restart(lease, load, read_at=clock.now - 1)
    assert table.positions("store") == {p.table: p for p in load}  # whatever was saved before
    assert table.last_cycle("store") is None  # the cycles before the load say nothing of the table now
    assert table.in_step_at("store") == clock.now - 1
    table.record_cycle(lease, {"status": "failed", "error": "x"})
    assert table.last_cycle("store") == {"status": "failed", "error": "x"}
    assert table.in_step_at("store") == clock.now - 1  # a failed cycle moves nothing
    clock.now += 61
    with pytest.raises(LeaseLostError, match="full load were not saved"):
        table.restart(lease, load, read_at=clock.now)


def test_the_lease_is_renewed_while_held_and_released_after(dynamodb_endpoint):
    table = ControlTable(TableAddress(f"carve-state-{uuid.uuid4().hex[:8]}", dynamodb_endpoint, "us-east-1"))
    table.ensure()
    with table.held("store", 1.5) as lease:
        first = table.lease("store").expires_at
        time.sleep(1.2)  # past two heartbeats (every 0.5 s)
        assert table.lease("store").expires_at > first
        assert table.lease("store").token == lease.token
    assert table.lease("store") is None


def test_no_control_table_means_nothing_saved(dynamodb_endpoint):
    table = ControlTable(TableAddress(f"carve-state-{uuid.uuid4().hex[:8]}", dynamodb_endpoint, "us-east-1"))
    assert table.positions("store") == {} and table.lease("store") is None and table.last_cycle("store") is None


def test_positions_move_together_or_not_at_all(control):
    """The tables of one slot or binlog share a position: a write that cannot move one moves none."""
    table, _ = control
    lease = table.acquire("store", 60)
    lines = lambda value: Position("public.order_line", "watermark", {"value": value}, "f1", "2026-12-06T00:00:00+00:00")  # noqa: E731
    table.advance(lease, [(None, position(100)), (None, lines(100))])
    with pytest.raises(LeaseLostError, match="positions of public.orders, public.order_line were not saved"):
        table.advance(lease, [(position(100), position(200)), (lines(50), lines(200))])  # the second is stale
    saved = table.positions("store")
    assert (saved["public.orders"].value["value"], saved["public.order_line"].value["value"]) == (100, 100)
    table.advance(lease, [(position(100), position(200)), (lines(100), lines(200))])
    saved = table.positions("store")
    assert (saved["public.orders"].value["value"], saved["public.order_line"].value["value"]) == (200, 200)


def test_the_state_is_removed_only_by_the_lease_s_holder(control):
    table, clock = control
    stale = table.acquire("store", 30, owner="host-a pid 1")
    table.advance(stale, [(None, position(5))])
    clock.now += 31
    taken = table.acquire("store", 30, owner="host-b pid 2")
    with pytest.raises(LeaseLostError, match="it expired and a sync took it over, so its state was not removed"):
        table.forget(stale)
    assert table.positions("store")["public.orders"].value["value"] == 5
    table.forget(taken)
    assert table.positions("store") == {} and table.lease("store") is None
