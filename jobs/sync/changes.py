"""What a change source tells a cycle: per table, which rows changed since the saved position."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from jobs.sync.state import Position
from transforms.errors import SourceError

# At most this many changes in one cycle, ended where the source can end it (a whole transaction,
# a whole DMS file, every row of one watermark value, so a little more may come): their images
# are SQL the source runs, and the items they touch are rebuilt and written in one go. A cycle that stops there says so (`more`); the next one goes on
# (at once under --follow).
MAX_CHANGES = 50_000


class FullLoadNeededError(SourceError):
    """The saved state cannot lead to the table a full load would give: run one."""


def truncated(table: str, where: str) -> FullLoadNeededError:
    """A followed table was truncated: not a list of rows, so no cycle can tell which items go."""
    return FullLoadNeededError(f"{table} was truncated ({where}): a truncate is not a list of rows, so the sync "
                               "cannot tell which items it removes. Run a full load (`carve run`); it rewrites every "
                               "item and removes none, so if an entity is read from this table, load into a new "
                               "table or delete that entity's items first")


@dataclass(frozen=True)
class TableChanges:
    """One table's changes in a cycle (condition and images None: no change).

    condition: SQL on the table's current rows, the changed ones (a watermark range, a key list).
    images: a derived table of the changed rows as the changes carried them, for rows that are no
    longer in the table (deleted, or with other values now): its columns are those the join graph
    and the item keys read, plus carve_old (true for the image before an update or a delete)."""

    table: str
    before: Position
    after: Position
    condition: str | None
    rows: int  # changes read
    operations: dict[str, int] = field(default_factory=dict)  # insert/update/delete, or upsert for a watermark
    images: str | None = None
    more: bool = False  # the source stopped at its limit: later changes wait for the next cycle


def saved_positions(kind: str, tables: Iterable[str], saved: dict[str, Position], shared: bool = False) -> dict[str, Position]:
    """Each table's saved position, which must be a `kind` position; `shared`: the tables read one
    stream (a slot, a binlog), so their positions must be one."""
    out = {}
    for table in tables:
        position = saved.get(table)
        if position is None:
            raise FullLoadNeededError(
                f"no saved position for {table}: the sync starts where a full load ended. Run `carve run` "
                "with this mapping first (it saves where each table's changes start)")
        if position.kind != kind:
            raise FullLoadNeededError(
                f"the saved position of {table} is a {position.kind} position and the mapping now follows "
                f"{kind}: run a full load (`carve run`), which starts the sync afresh")
        out[table] = position
    if shared and len({json.dumps(p.value, sort_keys=True) for p in out.values()}) > 1:
        raise FullLoadNeededError(f"the tables that {kind} follows were saved at different positions: run a full load")
    return out
