"""Where a full load leaves the sync: each table's position read before the load reads the table,
saved once the load is proven, under the mapping's lease so that no sync runs meanwhile."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pyspark.sql import SparkSession

from jobs.sinks.table import TableAddress
from jobs.sources.connections import Connection
from jobs.sync import sources
from jobs.sync.state import ControlTable, Lease, Position
from transforms.mapping import Mapping


def control_table(mapping: Mapping, target: TableAddress) -> ControlTable:
    """The mapping's control table, beside its target (same endpoint and region)."""
    return ControlTable(TableAddress(mapping.sync.control_table, target.endpoint_url, target.region))


@dataclass
class FullLoadPositions:
    control: ControlTable
    lease: Lease
    positions: list[Position]
    read_at: float
    say: Callable[[str], None]
    spark: SparkSession
    conn: Connection

    def save(self) -> None:
        self.control.restart(self.lease, self.positions, self.read_at)
        sources.committed(self.spark, self.conn, self.positions)
        self.say(f"sync positions saved in {self.control.address.table} for {len(self.positions)} tables: "
                 "`carve sync` applies the changes from here")


@contextmanager
def full_load_positions(spark: SparkSession, conn: Connection, mapping: Mapping, target: TableAddress,
                        say: Callable[[str], None]) -> Iterator[FullLoadPositions]:
    """Entered before the full load reads its tables: the lease, and each table's position now."""
    control = control_table(mapping, target)
    control.ensure()
    with control.held(mapping.name, mapping.sync.lease_seconds) as lease:
        read_at = time.time()
        yield FullLoadPositions(control, lease, sources.marks(spark, conn, mapping), read_at, say, spark, conn)
