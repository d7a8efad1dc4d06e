"""The state of compiling one mapping against its source frames: the frames, the value policy,
and every mistake found so far (reported together, each with its place in the file)."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.values import KIND, Options, no_problem

Loc = tuple[str | int, ...]

# Columns the source reader adds to a frame beside the table's own (hidden from the mapping):
# why the row cannot be read exactly (NULL when it can), and each filter's verdict, 1 or 0.
ROW_PROBLEM = "__carve_row_problem"
FILTER_PREFIX = "__carve_filter_"


def filter_column(condition: str) -> str:
    """The column that holds the source database's verdict on `condition` for each row."""
    return FILTER_PREFIX + hashlib.sha1(condition.strip().encode("utf-8")).hexdigest()[:16]


def row_problem(df: DataFrame) -> Column:
    """Why a row of `df` cannot be read exactly (a zero date, say), or NULL."""
    return df[ROW_PROBLEM] if ROW_PROBLEM in df.columns else no_problem()


@dataclass
class Context:
    tables: MappingABC[str, DataFrame]
    options: Options
    missing: MappingABC[str, str] = field(default_factory=dict)  # table -> why it could not be read
    bad_filters: MappingABC[str, str] = field(default_factory=dict)  # filter -> the database's error
    errors: list[tuple[Loc, str]] = field(default_factory=list)
    names: itertools.count = field(default_factory=itertools.count)

    def fresh(self, prefix: str) -> str:
        return f"__{prefix}{next(self.names)}"

    def column(self, df: DataFrame, name: str, loc: Loc, where: str) -> tuple[Column, T.DataType, str | None]:
        fields = {f.name: f for f in df.schema.fields if not f.name.startswith("__")}
        if name not in fields:
            known = ", ".join(sorted(fields)) or "(none)"
            self.errors.append((loc, f"unknown column '{name}' in {where}; its columns are: {known}"))
            return F.lit(None).cast("string"), T.NullType(), None  # NullType: unknown, checked no further
        found = fields[name]
        return df[name], found.dataType, found.metadata.get(KIND)

    def table(self, name: str, loc: Loc) -> DataFrame | None:
        if name not in self.tables:
            self.errors.append((loc, self.missing.get(name, f"table '{name}' was not found in the source")))
            return None
        return self.tables[name]

    def filtered(self, df: DataFrame, condition: str | None, loc: Loc) -> DataFrame:
        """The rows the source database found `condition` true for.

        A filter is SQL of the source and means what it means there: the reader evaluates it in
        the database (numeric against integer, integer division, NULLs, collations as that engine
        has them) and hands over its verdict as a column. Spark never evaluates it again.
        """
        if not condition:
            return df
        if condition in self.bad_filters:
            self.errors.append((loc, f"filter does not apply: {self.bad_filters[condition]}"))
            return df
        verdict = filter_column(condition)
        if verdict not in df.columns:
            raise ValueError(f"the frame has no column {verdict} for the filter {condition!r}: "
                             "the source reader evaluates filters (jobs.sources.jdbc)")
        return df.filter(df[verdict] == 1)

    def options_for(self, nulls: str | None) -> Options:
        """The mapping's value policy with an attribute's own null policy, where it has one."""
        return Options(nulls or self.options.nulls, self.options.out_of_range_numbers)


class CompileError(Exception):
    """The mapping does not fit the source: each error is (field path, message)."""

    def __init__(self, errors: list[tuple[Loc, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in errors))
