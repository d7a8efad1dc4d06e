"""Some of a mapping's items, whole: each entity's rows limited by a condition, every embed by a
semi-join to the rows it hangs off.

Both are filters on a copy of the mapping, which the reader pushes down to the database like
any filter: a subset reads only its rows and their children, never a whole table. `carve plan`
takes a hash sample of each entity this way; `carve sync` the items a change touches.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from typing import Any

from jobs.sources.connections import Connection
from jobs.sources.jdbc import qualified
from transforms.mapping import EmbedMany, EmbedOne, Entity, Mapping


def entity_source(conn: Connection, entity: Entity) -> str:
    """The FROM of an entity's rows: its table, or its query as a derived table."""
    return qualified(conn, entity.from_) if entity.from_ else f"({entity.query}) carve_rows"


def subset_mapping(mapping: Mapping, conn: Connection, conditions: MappingABC[str, str | None]) -> Mapping:
    """The mapping with only the entities in `conditions`, each limited to the rows its condition
    (SQL of the source, None for every row) holds, its embeds to those rows' children."""
    entities = {}
    for name, condition in conditions.items():
        entity = mapping.entities[name]
        if condition is None:
            entities[name] = entity
            continue
        where = both(entity.filter, condition)
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
            where = both(spec.filter, condition)
            body = _restrict(conn, spec.body, qualified(conn, spec.from_), where)
            spec = spec.model_copy(update={"filter": where, spec.body_key: body})
        out[attr] = spec
    return out


def both(first: str | None, second: str) -> str:
    return f"({first}) AND ({second})" if first else second
