"""Changed rows as a change carried them (the row after, and the row before an update or a
delete), written back as SQL for the source to run: the condition on the table's current rows
that rebuilds them, and a derived table of the images for the rows that are not in the table any
more (the walk up the join graph reads their join values, the cycle their old item keys)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jobs.sources.connections import Connection
from jobs.sources.subset import in_list
from transforms.mapping import Mapping, embeds
from transforms.templates import template_columns

OLD = "carve_old"  # the images' column telling an image before a change from one after it


@dataclass(frozen=True)
class Image:
    old: bool  # the row before an update or a delete
    values: dict[str, str]  # column -> its value as an SQL expression of the column's type


def needed(mapping: Mapping, table: str) -> set[str]:
    """Columns of `table` that the walk and the old item keys read from an image: the entities'
    key templates (to delete an old item) and the embeds' child join columns (to find a parent)."""
    columns: set[str] = set()
    for entity in mapping.entities.values():
        if entity.from_ == table:
            for template in entity.key.values():
                columns.update(template_columns(template))
    for site in embeds(mapping):
        if site.spec.from_ == table:
            columns.update(site.spec.join.values())
    return columns


def key_list(conn: Connection, key: tuple[str, ...], images: Iterable[Image]) -> str | None:
    """`key IN (...)`: the table's current rows that any image names (None: no key to name them by)."""
    if not key:
        return None
    keys = sorted({tuple(i.values[c] for c in key) for i in images if all(i.values.get(c, "NULL") != "NULL" for c in key)})
    return in_list(conn, list(key), keys)


def relation(conn: Connection, columns: list[str], images: list[Image]) -> str:
    """The images as a derived table with `columns` and carve_old; a value an image lacks is NULL."""
    quote = conn.dialect.quote
    rows = [[i.values.get(c, "NULL") for c in columns] + ["TRUE" if i.old else "FALSE"] for i in images]
    if conn.dialect.name == "postgres":
        values = ", ".join("(" + ", ".join(row) + ")" for row in rows)
        return f"(VALUES {values}) AS carve_images({', '.join([quote(c) for c in columns] + [OLD])})"
    # MariaDB and MySQL cannot name a VALUES list's columns: a union of selects names them.
    names = [quote(c) for c in columns] + [OLD]
    first = "SELECT " + ", ".join(f"{v} AS {n}" for v, n in zip(rows[0], names, strict=True))
    rest = "".join(" UNION ALL SELECT " + ", ".join(row) for row in rows[1:])
    return f"({first}{rest}) carve_images"
