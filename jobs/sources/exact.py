"""Values a database hands over as text, turned into Spark values exactly, or into a reason.

Dates and timestamps do not travel as JDBC dates: the drivers build java.sql.Date values on the
hybrid Julian calendar (PostgreSQL's 1582-10-10 arrives as 1582-10-20), cannot carry 'infinity'
or years past 9999, and MariaDB's zero dates ('0000-00-00', '2024-02-00') come through shifted
or as NULL. The dialects read them as the database prints them, and this module parses that
text on the proleptic Gregorian calendar that both the databases and Spark use. Text it cannot
parse exactly is not guessed at: the row gets a reason, and every item built from the row is
quarantined with it.

The parse uses regexp_extract and make_date/make_timestamp, never to_date: Spark's datetime
parser raises for text its pre-3.0 parser would have read ('0000-00-00'), instead of NULL.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column
from pyspark.sql import functions as F

from jobs.sources.dialect import BOOL_INTEGER, DATE_TEXT, INSTANT_TEXT, LOCAL_TIMESTAMP_TEXT
from transforms.values import INSTANT, LOCAL_TIMESTAMP

# Year 0001 to 9999 (what ISO-8601 text and Spark's dates hold), month, day; then an optional
# time with up to microseconds; then PostgreSQL's UTC offset ('+00') for timestamptz.
DATE_PATTERN = r"^((?!0000)[0-9]{4})-([0-9]{2})-([0-9]{2})$"
TIMESTAMP_PATTERN = (r"^((?!0000)[0-9]{4})-([0-9]{2})-([0-9]{2})[ T]([0-9]{2}):([0-9]{2}):([0-9]{2}(?:\.[0-9]{1,6})?)"
                     r"(?:\+00(?::?00)?|Z)?$")


@dataclass(frozen=True)
class Parsed:
    column: Column
    kind: str | None  # the kind the transforms see (transforms.values)
    problem: Column | None  # why the value cannot be read exactly, NULL when it can


def parse(column: Column, kind: str | None, what: str) -> Parsed:
    """The column as the transforms want it; `what` ('orders.placed_on') names it in reasons."""
    if kind == DATE_TEXT:
        return _date(column, what)
    if kind in (INSTANT_TEXT, LOCAL_TIMESTAMP_TEXT):
        return _timestamp(column, what, INSTANT if kind == INSTANT_TEXT else LOCAL_TIMESTAMP)
    if kind == BOOL_INTEGER:
        return _bool(column, what)
    return Parsed(column, kind, None)


def _part(text: Column, pattern: str, group: int) -> Column:
    return F.regexp_extract(text, pattern, group)


def _reason(text: Column, what: str, noun: str) -> Column:
    return F.concat(F.lit(f"{what}: '"), F.substring(text, 1, 40),
                    F.lit(f"' is not a {noun} carve can write exactly (years 0001-9999 of the Gregorian calendar)"))


def _date(text: Column, what: str) -> Parsed:
    y, m, d = (_part(text, DATE_PATTERN, i).cast("int") for i in (1, 2, 3))
    value = F.when(text.rlike(DATE_PATTERN), F.make_date(y, m, d))  # NULL for 2024-02-30, 2024-02-00
    return Parsed(value, None, F.when(text.isNotNull() & value.isNull(), _reason(text, what, "date")))


def _timestamp(text: Column, what: str, kind: str) -> Parsed:
    y, mo, d, h, mi = (_part(text, TIMESTAMP_PATTERN, i).cast("int") for i in (1, 2, 3, 4, 5))
    seconds = _part(text, TIMESTAMP_PATTERN, 6).cast("decimal(8,6)")
    # The session is in UTC (the runtime sets it), so a wall-clock time keeps its digits too.
    value = F.when(text.rlike(TIMESTAMP_PATTERN) & (seconds < 60), F.make_timestamp(y, mo, d, h, mi, seconds, F.lit("UTC")))
    return Parsed(value, kind, F.when(text.isNotNull() & value.isNull(), _reason(text, what, "timestamp")))


def _bool(number: Column, what: str) -> Parsed:
    """MySQL's BOOLEAN is TINYINT(1), which holds -128..127: only 0 and 1 are booleans."""
    value = F.when(number == 1, F.lit(True)).when(number == 0, F.lit(False))
    reason = F.concat(F.lit(f"{what}: "), number.cast("string"),
                      F.lit(" in a TINYINT(1) column is not a boolean (0 or 1)"))
    return Parsed(value, None, F.when(number.isNotNull() & value.isNull(), reason))
