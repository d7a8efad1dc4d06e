"""The state of compiling one mapping against its source frames: the frames, the value policy,
and every mistake found so far (reported together, each with its place in the file)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException

from transforms.values import KIND, Options

Loc = tuple[str | int, ...]


@dataclass
class Context:
    tables: MappingABC[str, DataFrame]
    options: Options
    missing: MappingABC[str, str] = field(default_factory=dict)  # table -> why it could not be read
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
        if not condition:
            return df
        try:
            return df.filter(F.expr(condition))
        except AnalysisException as exc:  # ParseException is one too
            first = str(exc).strip().splitlines()[0]
            self.errors.append((loc, f"filter does not apply: {first}"))
            return df

    def options_for(self, nulls: str | None) -> Options:
        """The mapping's value policy with an attribute's own null policy, where it has one."""
        return Options(nulls or self.options.nulls, self.options.out_of_range_numbers)


class CompileError(Exception):
    """The mapping does not fit the source: each error is (field path, message)."""

    def __init__(self, errors: list[tuple[Loc, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in errors))
