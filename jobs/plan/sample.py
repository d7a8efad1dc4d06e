"""A sample of a mapping's items that is still made of whole items, for `carve plan`.

Each entity keeps the source rows whose partition-key columns hash into the first `buckets` of
BUCKETS buckets, chosen from the entity's row count so that about the asked number of rows is
read. Every embed keeps only the child rows of kept parents, by a semi-join the database runs
(`(child columns) IN (SELECT parent columns FROM parent WHERE <the parent's own condition>)`).
So each sampled item is exactly the item a full run builds, and a sampled partition key comes
with all of its items in every entity that hashes the same columns (item collections stay whole).

Both conditions are filters added to a copy of the mapping: the reader pushes them down to the
database like any filter, so a sample reads a sample, never the whole table.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from typing import Any

from jobs.sources.connections import Connection
from jobs.sources.jdbc import qualified
from transforms.mapping import EmbedMany, EmbedOne, Entity, Mapping
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


def entity_source(conn: Connection, entity: Entity) -> str:
    """The FROM of an entity's rows: its table, or its query as a derived table."""
    return qualified(conn, entity.from_) if entity.from_ else f"({entity.query}) carve_rows"


def count_rows(query: Callable[[str], list[tuple]], conn: Connection, entity: Entity) -> int:
    where = f" WHERE ({entity.filter})" if entity.filter else ""
    [(count,)] = query(f"SELECT count(*) FROM {entity_source(conn, entity)}{where}")
    return int(count)


def sample_columns(mapping: Mapping, entity: Entity) -> tuple[str, ...]:
    """The columns a sample hashes: the partition key's (a mapping never has a constant one)."""
    return tuple(dict.fromkeys(template_columns(entity.key[mapping.target.key.partition])))


def sampled_mapping(mapping: Mapping, conn: Connection, samples: MappingABC[str, EntitySample]) -> Mapping:
    """The mapping with each sampled entity's condition and its embeds' semi-joins as filters."""
    quote = conn.dialect.quote
    entities = {}
    for name, entity in mapping.entities.items():
        sample = samples[name]
        columns = sample_columns(mapping, entity)
        if sample.whole:
            entities[name] = entity
            continue
        condition = f"{conn.dialect.bucket([quote(c) for c in columns], BUCKETS)} < {sample.buckets}"
        where = _both(entity.filter, condition)
        attributes = _restrict(conn, entity.attributes, entity_source(conn, entity), where)
        entities[name] = entity.model_copy(update={"filter": where, "attributes": attributes})
    return mapping.model_copy(update={"entities": entities})


def _restrict(conn: Connection, attributes: MappingABC[str, Any], parent: str, parent_where: str) -> dict[str, Any]:
    """Every embed below `attributes` limited to the child rows of the parent rows `parent_where` keeps."""
    quote = conn.dialect.quote
    out = {}
    for attr, spec in attributes.items():
        if isinstance(spec, (EmbedOne, EmbedMany)):
            parents = ", ".join(quote(c) for c in spec.join)
            children = ", ".join(quote(c) for c in spec.join.values())
            if len(spec.join) > 1:
                children = f"({children})"
            condition = f"{children} IN (SELECT {parents} FROM {parent} WHERE {parent_where})"
            where = _both(spec.filter, condition)
            body = _restrict(conn, spec.body, qualified(conn, spec.from_), where)
            spec = spec.model_copy(update={"filter": where, spec.body_key: body})
        out[attr] = spec
    return out


def _both(first: str | None, second: str) -> str:
    return f"({first}) AND ({second})" if first else second
