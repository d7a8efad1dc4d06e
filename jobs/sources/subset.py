"""Some of a mapping's items, whole: each entity's rows limited by a condition, every embed by a
semi-join to the rows it hangs off.

Both are filters on a copy of the mapping, which the reader pushes down to the database like
any filter: a subset reads only its rows and their children, never a whole table. `carve plan`
takes a hash sample of each entity this way; `carve sync` the items a change touches.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from typing import Any

from jobs.sources.connections import Connection
from jobs.sources.dialect import sql_literal
from jobs.sources.jdbc import qualified
from transforms.mapping import EmbedMany, EmbedOne, Entity, Mapping

# Runs a SELECT on the source, returns its rows as text: given, conditions become key lists.
Resolve = Callable[[str], list[tuple]]
# Beyond this many keys a level keeps its semi-join: SQL of megabytes helps no planner.
MAX_LISTED_KEYS = 20_000


def entity_source(conn: Connection, entity: Entity) -> str:
    """The FROM of an entity's rows: its table, or its query as a derived table."""
    return qualified(conn, entity.from_) if entity.from_ else f"({entity.query}) carve_rows"


def subset_mapping(mapping: Mapping, conn: Connection, conditions: MappingABC[str, str | None],
                   resolve: Resolve | None = None) -> Mapping:
    """The mapping with only the entities in `conditions`, each limited to the rows its condition
    (SQL of the source, None for every row) holds, its embeds to those rows' children.

    With `resolve`, each embed's condition is the list of its parents' join values, read level by
    level: a semi-join nested three deep under an OR of two readers is a plan PostgreSQL cannot
    hash (seconds for a few thousand rows), a list of values is an index lookup."""
    entities = {}
    for name, condition in conditions.items():
        entity = mapping.entities[name]
        if condition is None:
            entities[name] = entity
            continue
        where = both(entity.filter, condition)
        attributes = _restrict(conn, entity.attributes, entity_source(conn, entity), where, resolve)
        entities[name] = entity.model_copy(update={"filter": where, "attributes": attributes})
    return mapping.model_copy(update={"entities": entities})


def _restrict(conn: Connection, attributes: MappingABC[str, Any], parent: str, parent_where: str,
              resolve: Resolve | None) -> dict[str, Any]:
    """Every embed below `attributes` limited to the child rows of the parent rows `parent_where` keeps."""
    quote = conn.dialect.quote
    out = {}
    for attr, spec in attributes.items():
        if isinstance(spec, (EmbedOne, EmbedMany)):
            parents = ", ".join(quote(c) for c in spec.join)
            select = f"SELECT {parents} FROM {parent} WHERE {parent_where}"
            children = list(spec.join.values())
            condition = (resolve and listed(conn, children, resolve(keys_query(parents, parent, parent_where)))
                         or f"{_columns(conn, children)} IN ({select})")
            where = both(spec.filter, condition)
            body = _restrict(conn, spec.body, qualified(conn, spec.from_), where, resolve)
            spec = spec.model_copy(update={"filter": where, spec.body_key: body})
        out[attr] = spec
    return out


def keys_query(columns: str, source: str, where: str) -> str:
    """The distinct values of `columns` in the rows `where` holds, one more than a list may hold."""
    return f"SELECT DISTINCT {columns} FROM {source} WHERE {where} LIMIT {MAX_LISTED_KEYS + 1}"


def listed(conn: Connection, columns: list[str], rows: list[tuple]) -> str | None:
    """`columns IN (values)` for the rows' values; None when a list would not do (too many keys,
    or a backslash, which PostgreSQL and MariaDB literals read differently)."""
    rows = [r for r in rows if None not in r]
    if len(rows) > MAX_LISTED_KEYS or any("\\" in v for r in rows for v in r):
        return None
    return in_list(conn, columns, [tuple(sql_literal(v) for v in r) for r in rows])


def in_list(conn: Connection, columns: list[str], rows: list[tuple[str, ...]]) -> str:
    """`columns IN (...)` for rows of SQL expressions, one per column; `1 = 0` for no rows."""
    if not rows:
        return "1 = 0"
    values = (", ".join(r) for r in rows)
    if len(columns) == 1:
        return f"{_columns(conn, columns)} IN ({', '.join(values)})"
    return f"{_columns(conn, columns)} IN ({', '.join(f'({v})' for v in values)})"


def _columns(conn: Connection, columns: list[str]) -> str:
    quoted = ", ".join(conn.dialect.quote(c) for c in columns)
    return f"({quoted})" if len(columns) > 1 else quoted


def both(first: str | None, second: str) -> str:
    return f"({first}) AND ({second})" if first else second
