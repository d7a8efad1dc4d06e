"""Which items a change touches: the mapping's join graph walked up from a changed table.

A changed row of table T feeds every item whose entity reads T (the row is the item's root) and
every item that embeds T at any depth (the row is in the item's list or map). Per entity, the
affected roots are the rows a condition holds, evaluated by the database: the change itself
where the entity reads T, else `(the embed's parent columns) IN (SELECT its child columns FROM T
WHERE change)`, nested once per level up to the root. Embed filters are left out on purpose: a
row that a change moves out of an embed's filter changes its item too.

The change is a condition on T (a watermark range, a list of keys) and, from a source that sees
deletes, the changed rows' images as literal rows (a deleted row is no longer in T to be
found); rebuilding the affected items reads only those roots and their children
(jobs.sources.subset), never a whole table.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from typing import Any

from jobs.sources.connections import Connection
from jobs.sources.dialect import sql_literal
from jobs.sources.jdbc import qualified
from transforms.mapping import EmbedMany, EmbedOne, Mapping


def affected_roots(conn: Connection, mapping: Mapping, table: str, change: str | None,
                   images: str | None = None) -> dict[str, str]:
    """Per entity whose items the changed rows of `table` feed: the condition on its rows.

    change: SQL on the table's rows, the changed ones as they are now. images: a derived table of
    the changed rows as the change carried them (a deleted row, a row before its update), whose
    parents are found from the image's own join values; its rows matter to embeds only, since an
    entity's own rows are rebuilt by `change` and their old keys come from the images directly."""
    out = {}
    for name, entity in mapping.entities.items():
        conditions = [change] if entity.from_ == table and change else []
        conditions += _through(conn, entity.attributes, table, None if images else change, images)
        if conditions:
            out[name] = any_of(conditions)
    return out


def _through(conn: Connection, attributes: MappingABC[str, Any], table: str, change: str | None,
             images: str | None) -> list[str]:
    """Conditions on the rows holding `attributes`, one per embed below them that reads `table`."""
    quote = conn.dialect.quote
    out = []
    for spec in attributes.values():
        if not isinstance(spec, (EmbedOne, EmbedMany)):
            continue
        parents = ", ".join(quote(c) for c in spec.join)
        children = ", ".join(quote(c) for c in spec.join.values())
        if len(spec.join) > 1:
            parents = f"({parents})"
        inner = ([change] if spec.from_ == table and change else []) + _through(conn, spec.body, table, change, images)
        if inner:
            out.append(f"{parents} IN (SELECT {children} FROM {qualified(conn, spec.from_)} WHERE {any_of(inner)})")
        if spec.from_ == table and images:
            out.append(f"{parents} IN (SELECT {children} FROM {images})")
    return out


def any_of(conditions: list[str]) -> str:
    unique = list(dict.fromkeys(conditions))
    return unique[0] if len(unique) == 1 else " OR ".join(f"({c})" for c in unique)


def literal(value: str) -> str:
    """A value the database returned as text, back in SQL: a string literal, which both engines
    compare with a number or a timestamp column by converting it. A backslash means one thing in
    a PostgreSQL literal and another in MariaDB's; no number or timestamp has one."""
    if "\\" in value:
        raise ValueError(f"watermark value {value!r} has a backslash: a watermark column holds numbers or timestamps")
    return sql_literal(value)


def watermark_change(conn: Connection, column: str, after: str | None, upto: str) -> str:
    """The rows a watermark sync applies: above the saved value (all of them the first time) and
    up to the one read when the cycle started, so that a row committed meanwhile waits for the
    next cycle instead of being skipped by it."""
    quoted = conn.dialect.quote(column)
    upper = f"{quoted} <= {literal(upto)}"
    return upper if after is None else f"{quoted} > {literal(after)} AND {upper}"
