"""Access patterns against the table: each declared GetItem or Query, for parameter values sampled
from the source, compared with what the pattern's SQL says the answer is.

Per pattern: the parameters' SQL is read and `samples` rows drawn at random (a fixed seed, so a
rerun checks the same values); the operation's key templates are rendered from them as a load
renders keys; the expectation's SQL runs once per sample (the parameters as literals), and its
rows become the expected items' keys (through the entity's key templates) or the expected list
elements (through the load's type table). Items the run quarantined are not in the table by
design: they are left out of the expectation and counted.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.aws import aws_errors
from jobs.sinks.table import TableAddress, dynamodb_client
from jobs.sources.connections import Connection
from jobs.sources.jdbc import local_answers, read_query
from transforms.errors import CarveError
from transforms.mapping import Mapping
from transforms.mapping.model import Pattern
from transforms.patterns import (
    Key,
    as_item_values,
    element_differences,
    key_differences,
    parameter_names,
    render,
    substitute,
)

SEED = 20261201
FAILURES_KEPT = 5
SAMPLE = "carve_sample"
POSITION = "carve_position"


@dataclass(frozen=True)
class Sample:
    parameters: dict[str, str | None]  # as text, as substituted into the SQL
    keys: dict[str, str | None]  # the operation's rendered templates: partition, sort, sort_2


@dataclass
class PatternResult:
    name: str
    description: str | None
    operation: str
    samples: int = 0
    passed: int = 0
    failed: int = 0
    quarantined_left_out: int = 0  # expected items (or whole samples, for a list) the run quarantined
    compared: int = 0  # expected items (or list elements) over all samples, each compared
    failures: list[dict[str, Any]] = field(default_factory=list)  # the first few, with their reasons

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.samples > 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "operation": self.operation,
                "samples": self.samples, "passed": self.passed, "failed": self.failed,
                "quarantined_left_out": self.quarantined_left_out, "compared": self.compared, "ok": self.ok,
                "failures": self.failures}


def operation_text(mapping: Mapping, pattern: Pattern) -> str:
    key = mapping.target.key
    if pattern.get is not None:
        parts = [f"{key.partition} = {pattern.get.partition}"] + ([f"{key.sort} = {pattern.get.sort}"] if key.sort else [])
        return "GetItem " + ", ".join(parts)
    query = pattern.query
    partition, sort = _index_keys(mapping, query.index)
    text = f"Query {query.index or 'table'}: {partition} = {query.partition}"
    if query.sort is not None:
        condition = query.sort
        value = getattr(condition, condition.operator)
        shown = {"equals": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
        if condition.operator == "begins_with":
            text += f", begins_with({sort}, {value})"
        elif condition.operator == "between":
            text += f", {sort} BETWEEN {value[0]} AND {value[1]}"
        else:
            text += f", {sort} {shown[condition.operator]} {value}"
    return text + ("" if query.order == "ascending" else ", descending")


def _index_keys(mapping: Mapping, index: str | None) -> tuple[str, str | None]:
    if index is None:
        return mapping.target.key.partition, mapping.target.key.sort
    found = next(ix for ix in mapping.target.indexes if ix.name == index)
    return found.partition, found.sort


def _templates(pattern: Pattern) -> dict[str, str]:
    """The operation's templates by role: partition, sort (and sort_2, between's upper bound)."""
    if pattern.get is not None:
        return {k: v for k, v in (("partition", pattern.get.partition), ("sort", pattern.get.sort)) if v}
    templates = {"partition": pattern.query.partition}
    condition = pattern.query.sort
    if condition is not None:
        value = getattr(condition, condition.operator)
        if condition.operator == "between":
            templates |= {"sort": value[0], "sort_2": value[1]}
        else:
            templates["sort"] = value
    return templates


class PatternChecker:
    """Every pattern of one mapping against one table; `live` takes a short progress text."""

    def __init__(self, spark: SparkSession, conn: Connection, mapping: Mapping, address: TableAddress,
                 quarantined: set[Key], live: Callable[[str], None] = lambda _text: None) -> None:
        self.spark = spark
        self.conn = conn
        self.mapping = mapping
        self.address = address
        self.quarantined = quarantined
        self.live = live
        self.client = dynamodb_client(address)

    def check_all(self) -> list[PatternResult]:
        return [self.check(name, pattern) for name, pattern in self.mapping.patterns.items()]

    def check(self, name: str, pattern: Pattern) -> PatternResult:
        result = PatternResult(name, pattern.description, operation_text(self.mapping, pattern))
        samples = self._samples(name, pattern)
        expected = self._expected(name, pattern, samples)
        for i, sample in enumerate(samples):
            self.live(f"{name}: sample {i + 1} of {len(samples)}")
            answer = expected.get(i, [])
            problems, left_out = self._compare(pattern, sample, answer)
            result.samples += 1
            result.quarantined_left_out += left_out
            result.compared += len(answer) - left_out
            if problems:
                result.failed += 1
                if len(result.failures) < FAILURES_KEPT:
                    result.failures.append({"parameters": sample.parameters, "keys": sample.keys, "problems": problems})
            else:
                result.passed += 1
        return result

    # --- the source -------------------------------------------------------------------------

    def _samples(self, name: str, pattern: Pattern) -> list[Sample]:
        loc = ("patterns", name)
        params = read_query(self.spark, self.conn, pattern.parameters)
        wanted = parameter_names(pattern.expect.sql)
        unknown = [p for p in wanted if p not in params.columns]
        if unknown:
            raise CarveError(f"pattern '{name}': expect.sql uses :{', :'.join(unknown)} but parameters returns "
                             f"only {', '.join(params.columns)}")
        sampled = params.orderBy(F.rand(SEED)).limit(pattern.samples)
        operation = loc + ("get" if pattern.get is not None else "query",)
        rendered = render(self.mapping, sampled, _templates(pattern), operation, f"the parameters of pattern '{name}'")
        texts = [F.col(c).cast("string").alias(f"param_{c}") for c in params.columns]
        keys = list(_templates(pattern))
        rows = rendered.select(*texts, *keys).collect()
        return [Sample({c: row[f"param_{c}"] for c in params.columns}, {k: row[k] for k in keys}) for row in rows]

    def _expected(self, name: str, pattern: Pattern, samples: list[Sample]) -> dict[int, list[Any]]:
        """Per sample: the expected (pk, sk) keys, or the expected list elements, in the answer's order."""
        if not samples:
            return {}
        expect = pattern.expect
        # Each sample's answer tagged with its number; the answers in order, so that the row
        # number (POSITION) keeps each answer's own order for ties of order_by.
        answers = local_answers(self.spark, self.conn, (
            f"SELECT {i} AS {SAMPLE}, carve_answer.* FROM ({substitute(expect.sql, s.parameters)}) carve_answer"
            for i, s in enumerate(samples)))
        rows = answers.withColumn(POSITION, F.monotonically_increasing_id())
        where = f"the SQL of pattern '{name}'"
        loc = ("patterns", name, "expect", "sql")
        order = [self._order_column(rows, term) for term in (expect.order_by or ())]
        entity = self.mapping.entities[expect.entity]
        if expect.list is None:
            key = self.mapping.target.key
            templates = {"pk": entity.key[key.partition]} | ({"sk": entity.key[key.sort]} if key.sort else {})
            built = render(self.mapping, rows, templates, loc, where)
            collected = self._collect(built, order, ["pk"] + (["sk"] if key.sort else []))
            return {i: [(r["pk"], r["sk"] if key.sort else None) for r in group] for i, group in collected.items()}
        element = entity.attributes[expect.list].many
        compared = [c for c in rows.columns if c in element and c not in (SAMPLE, POSITION)]
        if not compared:
            raise CarveError(f"pattern '{name}': expect.sql returns none of the attributes of {expect.list} "
                             f"({', '.join(element)}); name its columns after them")
        built = as_item_values(self.mapping, rows, compared, loc, where)
        collected = self._collect(built, order, [f"json_{c}" for c in compared])
        return {i: [{c: json.loads(r[f"json_{c}"]) if r[f"json_{c}"] is not None else None for c in compared}
                    for r in group] for i, group in collected.items()}

    @staticmethod
    def _order_column(rows: DataFrame, term: str) -> Any:
        column, _, direction = term.partition(" ")
        if column not in rows.columns:
            raise CarveError(f"expect.order_by names '{column}', which the SQL does not return "
                             f"({', '.join(c for c in rows.columns if c not in (SAMPLE, POSITION))})")
        return F.col(column).desc_nulls_last() if direction.strip().lower() == "desc" else F.col(column).asc_nulls_first()

    @staticmethod
    def _collect(built: DataFrame, order: list[Any], columns: list[str]) -> dict[int, list[Any]]:
        ordered = built.orderBy(F.col(SAMPLE), *order, F.col(POSITION)).select(SAMPLE, *columns).collect()
        groups: dict[int, list[Any]] = {}
        for row in ordered:
            groups.setdefault(row[SAMPLE], []).append(row)
        return groups

    # --- the table ----------------------------------------------------------------------------

    def _compare(self, pattern: Pattern, sample: Sample, expected: list[Any]) -> tuple[list[str], int]:
        """(problems, quarantined items left out) for one sample."""
        if any(v is None for v in sample.keys.values()):
            return [f"a parameter is NULL, so the key {sample.keys} cannot be asked for"], 0
        items = self._ask(pattern, sample.keys)
        key = self.mapping.target.key
        got = [(i[key.partition]["S"], i[key.sort]["S"] if key.sort else None) for i in items]
        if pattern.expect.list is None:
            kept = [k for k in expected if k not in self.quarantined]
            return key_differences(kept, got, ordered=pattern.expect.order_by is not None), len(expected) - len(kept)
        asked = (sample.keys["partition"], sample.keys.get("sort"))
        if asked in self.quarantined:
            return [], 1
        if not items:
            return ([f"no item {' / '.join(filter(None, asked))} in the table, and the source has "
                     f"{len(expected)} elements for it"] if expected else []), 0
        listed = items[0].get(pattern.expect.list, {}).get("L", [])
        elements = [element.get("M", {}) for element in listed]
        return element_differences(pattern.expect.list, expected, elements), 0

    def _ask(self, pattern: Pattern, keys: dict[str, str | None]) -> list[dict[str, Any]]:
        table = self.address.table
        key = self.mapping.target.key
        if pattern.get is not None:
            request = {key.partition: {"S": keys["partition"]}} | ({key.sort: {"S": keys["sort"]}} if key.sort else {})
            with aws_errors(f"GetItem on {table}"):
                found = self.client.get_item(TableName=table, Key=request, ConsistentRead=True).get("Item")
            return [found] if found else []
        query = pattern.query
        partition, sort = _index_keys(self.mapping, query.index)
        names = {"#p": partition}
        values = {":p": {"S": keys["partition"]}}
        condition = "#p = :p"
        if query.sort is not None:
            names["#s"] = sort
            values[":s"] = {"S": keys["sort"]}
            operator = query.sort.operator
            if operator == "begins_with":
                condition += " AND begins_with(#s, :s)"
            elif operator == "between":
                values[":s2"] = {"S": keys["sort_2"]}
                condition += " AND #s BETWEEN :s AND :s2"
            else:
                symbol = {"equals": "=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[operator]
                condition += f" AND #s {symbol} :s"
        request: dict[str, Any] = {"TableName": table, "KeyConditionExpression": condition,
                                   "ExpressionAttributeNames": names, "ExpressionAttributeValues": values,
                                   "ScanIndexForward": query.order == "ascending"}
        if query.index:
            request["IndexName"] = query.index
        else:
            request["ConsistentRead"] = True
        items: list[dict[str, Any]] = []
        while True:
            with aws_errors(f"Query on {table}{' index ' + query.index if query.index else ''}"):
                page = self.client.query(**request)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return items
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
