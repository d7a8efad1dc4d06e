"""A sample of a mapping's items that is still made of whole items, for `carve plan`.

Each entity keeps the source rows whose partition-key columns hash into the first `buckets` of
BUCKETS buckets, chosen from the entity's row count so that about the asked number of rows is
read. Every embed keeps only the child rows of kept parents, by a semi-join the database runs
(`(child columns) IN (SELECT parent columns FROM parent WHERE <the parent's own condition>)`).
So each sampled item is exactly the item a full run builds, and a sampled partition key comes
with all of its items in every entity that hashes the same columns (item collections stay whole).

Both conditions are filters added to a copy of the mapping (jobs.sources.subset): the reader
pushes them down to the database like any filter, so a sample reads a sample, never the whole
table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass

from jobs.sources.connections import Connection
from jobs.sources.subset import entity_source, subset_mapping
from transforms.mapping import Entity, Mapping
from transforms.templates import template_columns

BUCKETS = 10_000
DEFAULT_SAMPLE_ROWS = 2000  # per entity


@dataclass(frozen=True)
class EntitySample:
    rows: int  # rows the entity's filter lets through: the items a full run builds
    buckets: int  # buckets kept, of BUCKETS; BUCKETS reads every row

    @property
    def whole(self) -> bool:
        return self.buckets >= BUCKETS

    @property
    def fraction(self) -> float:
        return self.buckets / BUCKETS


def buckets_for(rows: int, wanted: int) -> int:
    """The buckets to keep so that about `wanted` of `rows` rows are read (all of them if fewer)."""
    if rows <= wanted:
        return BUCKETS
    return max(1, math.ceil(BUCKETS * wanted / rows))


def count_rows(query: Callable[[str], list[tuple]], conn: Connection, entity: Entity) -> int:
    where = f" WHERE ({entity.filter})" if entity.filter else ""
    [(count,)] = query(f"SELECT count(*) FROM {entity_source(conn, entity)}{where}")
    return int(count)


def sample_columns(mapping: Mapping, entity: Entity) -> tuple[str, ...]:
    """The columns a sample hashes: the partition key's (a mapping never has a constant one)."""
    return tuple(dict.fromkeys(template_columns(entity.key[mapping.target.key.partition])))


def sampled_mapping(mapping: Mapping, conn: Connection, samples: MappingABC[str, EntitySample]) -> Mapping:
    """The mapping with each sampled entity's hash condition and its embeds' semi-joins as filters."""
    quote = conn.dialect.quote
    conditions: dict[str, str | None] = {}
    for name, entity in mapping.entities.items():
        sample = samples[name]
        columns = [quote(c) for c in sample_columns(mapping, entity)]
        conditions[name] = None if sample.whole else f"{conn.dialect.bucket(columns, BUCKETS)} < {sample.buckets}"
    return subset_mapping(mapping, conn, conditions)
