"""Type fidelity, end to end: every trap in type_trap, read from the real database, written
to dynalite by `Pipeline`, read back with the low-level client and compared exactly.

The expected attribute values are computed here from `TYPE_TRAP_ROWS` (the exact Python
values the demo generator inserted) by the rules of README "Type mapping", written out
again in this file, never by calling carve's conversion code:

- numbers (integers, numeric, money, real, double) -> N, compared as `Decimal`, exactly;
  more than 38 significant digits -> the item is quarantined, the reason names the attribute;
- real / double -> N equal to the decimal text the database prints for it (no binary noise);
- json / jsonb -> M / L equal to `json.loads(text, parse_float=Decimal)`, with the
  DynamoDB types checked (a JSON `true` is BOOL, never N 1);
- arrays -> L (NULL elements as NULL); `string_set` / `number_set` -> SS / NS without NULLs
  and duplicates, an empty set omitted;
- bytea -> B; uuid -> S; interval -> S (ISO-8601); boolean -> BOOL; text -> S, '' kept;
- timestamp -> S 'YYYY-MM-DDTHH:MM:SS.ffffff', timestamptz -> the same in UTC with 'Z',
  date -> S 'YYYY-MM-DD'; `epoch_seconds` -> N, whole seconds (floor), wall-clock as UTC;
- NULL -> no attribute (policy omit), or {"NULL": true} with `nulls: null`.

Mappings: tests/data/mappings/fidelity/<engine>.yaml.
"""

from __future__ import annotations

import json
import os
import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from jobs.devtools.commands import demo_connection
from jobs.devtools.demo_data import TYPE_TRAP, TYPE_TRAP_ROWS, DemoDatabase, create_demo_database
from jobs.devtools.local_stack import LOCAL_AWS_ENV
from jobs.pipeline import Pipeline, RunOptions
from jobs.sinks.table import delete_table
from jobs.storage import read_json_lines
from tests.support.databases import drop_database
from tests.support.dynamodb import dynamodb_client
from transforms.mapping import ColumnAttr, Mapping, load_mapping

pytestmark = pytest.mark.integration

ENGINES = ("postgres", "mariadb")
MAPPINGS = Path(__file__).resolve().parent.parent / "data" / "mappings" / "fidelity"
MAX_DIGITS = 38
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TRAP_COLUMNS = TYPE_TRAP.column_names[1:]  # all but id
ROWS_BY_ID = {row["id"]: row for row in TYPE_TRAP_ROWS}
SORT_KEYS = {"trap": "ROW", "trap_fit": "FIT", "trap_json": "JSON", "trap_unbounded": "UNBOUNDED",
             "trap_numeric_40_2": "NUMERIC_40_2"}

ABSENT = ("<absent>",)


# --- the type table, as the README states it ---------------------------------------------------

NUMBER_COLUMNS = {"id", "numeric_unbounded", "numeric_38", "numeric_40_2", "money_value", "real_value", "double_value"}
ARRAY_COLUMNS = {"int_array", "text_array", "numeric_array"}


def default_conversion(engine: str, column: str) -> str:
    if column in NUMBER_COLUMNS:
        return "number"
    if column in ("jsonb_value", "json_value"):
        return "json"
    if column in ARRAY_COLUMNS:
        return "list" if engine == "postgres" else "json"  # MariaDB: JSON arrays
    if column == "bytea_value":
        return "binary"
    if column in ("timestamp_value", "timestamptz_value", "date_value"):
        return "iso8601"
    if column == "boolean_value":
        return "bool"
    return "string"  # uuid, interval (ISO-8601 text), text


# --- typed values: what DynamoDB holds, comparable across N text forms -----------------------


def tagged(value: Any) -> tuple:
    """A Python value (json.loads output, row values) as a typed DynamoDB value."""
    if value is None:
        return ("NULL", True)
    if isinstance(value, bool):  # before int: True must not compare equal to N 1
        return ("BOOL", value)
    if isinstance(value, (int, Decimal)):
        return ("N", Decimal(value))
    if isinstance(value, str):
        return ("S", value)
    if isinstance(value, bytes):
        return ("B", value)
    if isinstance(value, (list, tuple)):
        return ("L", tuple(tagged(v) for v in value))
    if isinstance(value, dict):
        return ("M", {k: tagged(v) for k, v in value.items()})
    raise TypeError(f"no DynamoDB form for {type(value).__name__}: {value!r}")


def decoded(attribute: dict[str, Any]) -> tuple:
    """A low-level client attribute value as a typed value; N as an exact Decimal."""
    [(kind, value)] = attribute.items()
    if kind == "N":
        return ("N", Decimal(value))
    if kind in ("S", "BOOL"):
        return (kind, value)
    if kind == "B":
        return ("B", bytes(value))
    if kind == "NULL":
        return ("NULL", True)
    if kind == "L":
        return ("L", tuple(decoded(v) for v in value))
    if kind == "M":
        return ("M", {k: decoded(v) for k, v in value.items()})
    if kind == "SS":
        return ("SS", frozenset(value))
    if kind == "NS":
        return ("NS", frozenset(Decimal(v) for v in value))
    if kind == "BS":
        return ("BS", frozenset(bytes(v) for v in value))
    raise AssertionError(f"unknown DynamoDB type {kind}")


def significant_digits(number: Decimal) -> int:
    # copy_abs, not abs(): abs() rounds to the context's 28 digits.
    digits = format(number.copy_abs(), "f").replace(".", "").lstrip("0").rstrip("0")
    return len(digits)


def float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def printed_float(engine: str, column: str, value: float) -> Decimal:
    """The decimal text the database prints for a real / double (what carve must keep)."""
    if column == "double_value":
        return Decimal(repr(value))  # both print the shortest text that reads back as the double
    stored = float32(value)
    if engine == "mariadb":
        return Decimal(f"{stored:.6g}")  # MariaDB prints FLOAT with 6 significant digits
    # PostgreSQL (extra_float_digits 1, the default): the shortest text that reads back as the float4
    for places in range(1, 10):
        text = f"{stored:.{places}g}"
        if float32(float(text)) == stored:
            return Decimal(text)
    raise AssertionError(value)


def iso_timestamp(moment: datetime) -> str:
    if moment.tzinfo is not None:
        return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


def epoch_seconds(value: date | datetime) -> int:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # wall clock read as UTC
        return (aware - EPOCH) // timedelta(seconds=1)  # floor: the second the instant falls in
    return (value - date(1970, 1, 1)).days * 86400


def expected_value(engine: str, column: str, conversion: str, value: Any) -> tuple:
    """The attribute a non-NULL source value must become."""
    if conversion == "number":
        if column in ("real_value", "double_value"):
            return ("N", printed_float(engine, column, value))
        return ("N", Decimal(value))
    if conversion == "json":
        if not isinstance(value, str):  # a MariaDB JSON column holding an array: the list inserted
            return tagged(list(value))
        return tagged(json.loads(value, parse_float=Decimal))
    if conversion == "list":
        return tagged(list(value))
    if conversion == "string_set":
        members = frozenset(v for v in value if v is not None)
        return ("SS", members) if members else ABSENT
    if conversion == "number_set":
        members = frozenset(Decimal(v) for v in value if v is not None)
        return ("NS", members) if members else ABSENT
    if conversion == "binary":
        return ("B", value)
    if conversion == "bool":
        return ("BOOL", value)
    if conversion == "iso8601":
        return ("S", value.isoformat() if type(value) is date else iso_timestamp(value))
    if conversion == "epoch_seconds":
        return ("N", Decimal(epoch_seconds(value)))
    if conversion == "string":
        return ("S", str(value))
    raise AssertionError(f"no rule for {conversion}")


@dataclass(frozen=True)
class Attribute:
    name: str
    column: str
    conversion: str
    nulls: str


def attributes_of(mapping: Mapping, entity: str, engine: str) -> list[Attribute]:
    result = []
    for name, spec in mapping.entities[entity].attributes.items():
        assert isinstance(spec, ColumnAttr), f"{entity}.{name}: the fidelity mappings map columns only"
        conversion = spec.as_ or default_conversion(engine, spec.column)
        result.append(Attribute(name, spec.column, conversion, spec.nulls or mapping.policy.nulls))
    return result


def oversized(attributes: list[Attribute], row: dict[str, Any]) -> set[str]:
    """Attributes whose number has more than DynamoDB's 38 significant digits."""
    return {
        a.name for a in attributes
        if a.conversion == "number" and isinstance(row[a.column], Decimal)
        and significant_digits(row[a.column]) > MAX_DIGITS
    }


def expected_item(engine: str, entity: str, attributes: list[Attribute], row: dict[str, Any]) -> dict[str, tuple]:
    item = {"PK": ("S", f"TRAP#{row['id']}"), "SK": ("S", SORT_KEYS[entity])}
    for a in attributes:
        value = row[a.column]
        if value is None:
            expected = ("NULL", True) if a.nulls == "null" else ABSENT
        else:
            expected = expected_value(engine, a.column, a.conversion, value)
        if expected is not ABSENT:
            item[a.name] = expected
    return item


# --- the run -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FidelityRun:
    engine: str
    mapping: Mapping
    figures: dict
    report_dir: Path
    client: Any
    table: str


@pytest.fixture(scope="module", params=ENGINES)
def fidelity(request, spark, dynamodb_endpoint, tmp_path_factory) -> Iterator[FidelityRun]:
    engine = request.param
    # The executors' boto3 needs the dummy credentials even if Spark started before they were set.
    spark.sparkContext.environment.update({name: os.environ[name] for name in LOCAL_AWS_ENV})
    target = DemoDatabase(engine, database=f"carve_fidelity_{engine}")
    drop_database(target)
    create_demo_database(target, scale=0.01, seed=42)
    mapping_file = MAPPINGS / f"{engine}.yaml"
    loaded = load_mapping(mapping_file)
    table = f"CarveFidelity-{engine}-{uuid.uuid4().hex[:8]}"
    mapping = loaded.model_copy(update={"target": loaded.target.model_copy(update={"table": table})})
    report_dir = tmp_path_factory.mktemp(f"fidelity-{engine}")
    client = dynamodb_client(dynamodb_endpoint)
    try:
        run = Pipeline(spark, mapping, str(mapping_file), demo_connection(target),
                  RunOptions(report_dir, endpoint_url=dynamodb_endpoint), Console(highlight=False, width=160))
        figures = run.execute().as_dict()
        yield FidelityRun(engine, mapping, figures, report_dir, client, table)
    finally:
        delete_table(client, table)
        drop_database(target)


# --- tests -------------------------------------------------------------------------------------


def test_every_trap_column_is_mapped_with_its_default_conversion(fidelity: FidelityRun) -> None:
    defaults = {a.column for a in attributes_of(fidelity.mapping, "trap", fidelity.engine)
                if a.name == a.column and fidelity.mapping.entities["trap"].attributes[a.name].as_ is None}
    assert defaults == set(TRAP_COLUMNS) | {"id"}


def test_the_run_is_clean_and_counts_add_up(fidelity: FidelityRun) -> None:
    expected_rejected = sum(
        bool(oversized(attributes_of(fidelity.mapping, entity, fidelity.engine), row))
        for entity in fidelity.mapping.entities for row in TYPE_TRAP_ROWS
    )
    total = len(fidelity.mapping.entities) * len(TYPE_TRAP_ROWS)
    f = fidelity.figures
    assert f["status"] == "ok", f.get("error")
    assert (f["items_rejected"], f["items_expected"], f["items_written"]) == (
        expected_rejected, total - expected_rejected, total - expected_rejected)
    assert (f["items_lost"], f["items_mismatched"]) == (0, 0), f.get("reconcile")


def test_every_item_reads_back_exactly(fidelity: FidelityRun) -> None:
    problems: list[str] = []
    checked = 0
    reasons = {(q["entity"], q["pk"]): q["reason"] for q in list(read_json_lines(fidelity.report_dir / "quarantine"))}
    for entity in fidelity.mapping.entities:
        attributes = attributes_of(fidelity.mapping, entity, fidelity.engine)
        for row in TYPE_TRAP_ROWS:
            if oversized(attributes, row):
                continue  # quarantined: see the next test
            expected = expected_item(fidelity.engine, entity, attributes, row)
            key = {"PK": {"S": f"TRAP#{row['id']}"}, "SK": {"S": SORT_KEYS[entity]}}
            found = fidelity.client.get_item(TableName=fidelity.table, Key=key, ConsistentRead=True).get("Item")
            where = f"{entity} id={row['id']}"
            if found is None:
                problems.append(f"{where}: item missing; quarantined: {reasons.get((entity, key['PK']['S']))!r}")
                continue
            actual = {name: decoded(value) for name, value in found.items()}
            for name in sorted(expected.keys() | actual.keys()):
                want, got = expected.get(name, ABSENT), actual.get(name, ABSENT)
                if want != got:
                    raw = found.get(name, "<absent>")
                    problems.append(
                        f"{where} {name}:\n    expected {want!r}\n    actual   {got!r}\n    (wire: {raw!r})")
            checked += 1
    if problems:
        pytest.fail(f"{fidelity.engine}: {len(problems)} difference(s) from TYPE_TRAP_ROWS:\n" + "\n".join(problems),
                    pytrace=False)
    assert checked == len(TYPE_TRAP_ROWS) * len(fidelity.mapping.entities) - 5  # 5 items quarantined


def test_numbers_over_38_digits_quarantine_the_item_naming_the_attribute(fidelity: FidelityRun) -> None:
    expected = {}
    for entity in fidelity.mapping.entities:
        attributes = attributes_of(fidelity.mapping, entity, fidelity.engine)
        for row in TYPE_TRAP_ROWS:
            names = oversized(attributes, row)
            if names:
                expected[(entity, f"TRAP#{row['id']}", SORT_KEYS[entity])] = names
    assert {(e, pk) for e, pk, _ in expected} >= {("trap", "TRAP#1"), ("trap", "TRAP#4")}  # the traps are there

    lines = list(read_json_lines(fidelity.report_dir / "quarantine"))
    found = {(q["entity"], q["pk"], q["sk"]): q["reason"] for q in lines}
    assert len(found) == len(lines), "one quarantine line per item"
    unexpected = {key: reason for key, reason in found.items() if key not in expected}
    assert not unexpected, f"quarantined, but every number fits: {unexpected}"
    assert found.keys() == expected.keys()
    for key, names in expected.items():
        reason = found[key]
        assert "significant digits; DynamoDB holds at most 38" in reason, (key, reason)
        for name in names:
            assert f"attributes.{name}:" in reason, (key, name, reason)
        absent = fidelity.client.get_item(TableName=fidelity.table, Key={"PK": {"S": key[1]}, "SK": {"S": key[2]}})
        assert "Item" not in absent, f"{key} was quarantined but written"
