"""What a change source tells a cycle: per table, which rows changed since the saved position."""

from __future__ import annotations

from dataclasses import dataclass, field

from jobs.sync.state import Position
from transforms.errors import SourceError


class FullLoadNeededError(SourceError):
    """The saved state cannot lead to the table a full load would give: run one."""


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
