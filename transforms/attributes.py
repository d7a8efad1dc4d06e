"""A mapping's attributes compiled into Spark columns: templates, columns, literals and embeds."""

from __future__ import annotations

from collections.abc import Mapping as MappingABC

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.context import Context, Loc
from transforms.embeds import embed_many, embed_one
from transforms.mapping import ColumnAttr, EmbedMany, EmbedOne, LiteralAttr, TemplateAttr
from transforms.templates import Placeholder, Text, padding_width, parse_template, spark_date_pattern
from transforms.values import (
    NUMBER_TEXT,
    Options,
    Value,
    as_text,
    bool_value,
    no_problem,
    null_value,
    number_value,
    scalar_value,
    string_value,
)

# --- templates -------------------------------------------------------------------------------


def render_template(ctx: Context, df: DataFrame, template: str, loc: Loc, where: str) -> tuple[Column, list[str]]:
    """The template as a string Column (NULL when a column in it is NULL) and its columns."""
    pieces: list[Column] = []
    columns: list[str] = []
    for part in parse_template(template):
        if isinstance(part, Text):
            pieces.append(F.lit(part.value))
            continue
        column, dtype, kind = ctx.column(df, part.column, loc, where)
        columns.append(part.column)
        pieces.append(_format(ctx, column, dtype, kind, part, loc))
    return (F.concat(*pieces) if pieces else F.lit("")), columns


def _format(ctx: Context, column: Column, dtype: T.DataType, kind: str | None, part: Placeholder, loc: Loc) -> Column:
    if part.format is None or isinstance(dtype, T.NullType):
        return as_text(column, dtype, kind)
    if "%" in part.format:
        if not isinstance(dtype, (T.DateType, T.TimestampType, T.TimestampNTZType)):
            ctx.errors.append((loc, f"'{{{part.column}:{part.format}}}': a date format needs a date or timestamp column"))
            # Reported above; date_format over a number would fail analysis before CompileError.
            return F.lit(None).cast("string")
        return F.date_format(column, spark_date_pattern(part.format))
    width = padding_width(part.format)
    if not isinstance(dtype, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        # A numeric column may hold a fraction, which %d would drop (12.50 -> 000012).
        shown = "a numeric (decimal) column" if kind == NUMBER_TEXT else f"a {dtype.simpleString()} column"
        ctx.errors.append((loc, f"'{{{part.column}:{part.format}}}': zero padding needs an integer column, "
                                f"{part.column} is {shown}; use {{{part.column}}}, or a query casting it to an integer"))
    # lpad, not format_string (a java.util.Formatter per row); lpad
    # would cut a longer number, and a negative one keeps its sign first (-0000042). NULL stays
    # NULL (format_string prints "null"): the row is then quarantined.
    number = column.cast("long")
    text = number.cast("string")
    return (F.when(number < 0, F.format_string(f"%0{width}d", number))
            .when(F.length(text) >= width, text)
            .otherwise(F.lpad(text, width, "0")))


# --- attributes --------------------------------------------------------------------------------


def compile_attributes(
    ctx: Context, df: DataFrame, attributes: MappingABC, loc: Loc, where: str
) -> tuple[DataFrame, list[tuple[str, Value]]]:
    """Each attribute's Value, computed once as a column of the returned frame (embeds join onto it)."""
    values: list[tuple[str, Value]] = []
    lets = Lets(ctx)
    for name, spec in attributes.items():
        here = loc + (name,)
        what = ".".join(str(p) for p in here[1:])  # e.g. customer.attributes.email
        if isinstance(spec, ColumnAttr):
            column, dtype, kind = ctx.column(df, spec.column, here, where)
            try:
                values.append((name, scalar_value(column, dtype, kind, spec.as_, ctx.options_for(spec.nulls), what,
                                                  lets.bind)))
            except TypeError as exc:
                ctx.errors.append((here, str(exc).split(": ", 1)[-1]))
        elif isinstance(spec, TemplateAttr):
            text, _ = render_template(ctx, df, spec.template, here, where)
            null = null_value(ctx.options_for(spec.nulls))
            value = string_value(text)
            values.append((name, Value(F.coalesce(value.json, null.json), F.coalesce(value.size, null.size),
                                       no_problem())))
        elif isinstance(spec, LiteralAttr):
            values.append((name, _literal(spec.literal, what)))
        elif isinstance(spec, EmbedOne):
            df, value = embed_one(ctx, df, spec, here, where, compile_attributes)
            values.append((name, value))
        elif isinstance(spec, EmbedMany):
            df, value = embed_many(ctx, df, spec, here, where, compile_attributes)
            values.append((name, value))
    return materialize(ctx, lets.apply(df), values)


class Lets:
    """The intermediates the values of one set of attributes share (values.Bind), as columns."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.layers: list[dict[str, Column]] = []

    def bind(self, expression: Column, layer: int) -> Column:
        while len(self.layers) <= layer:
            self.layers.append({})
        name = self.ctx.fresh("let")
        self.layers[layer][name] = expression
        return F.col(name)

    def apply(self, df: DataFrame) -> DataFrame:
        """One projection per layer; Spark keeps each, as their columns are read more than once."""
        for layer in self.layers:
            df = df.withColumns(layer)
        return df


def materialize(ctx: Context, df: DataFrame, values: list[tuple[str, Value]]) -> tuple[DataFrame, list[tuple[str, Value]]]:
    """Compute every value once, as columns, in one projection.

    The item refers to each value's json, size and problem several times (the piece, the size
    check, the problems); as expressions, each reference would evaluate them again, and a JSON
    document costs a dozen regex passes. Spark keeps a projection whose non-trivial columns are
    used more than once (CollapseProject does not inline them).
    """
    columns: dict[str, Column] = {}
    out = []
    for name, value in values:
        j, s, p = ctx.fresh("vj"), ctx.fresh("vs"), ctx.fresh("vp")
        columns |= {j: value.json, s: value.size, p: value.problem}
        out.append((name, Value(F.col(j), F.col(s), F.col(p))))
    return (df.withColumns(columns) if columns else df), out


def _literal(literal: str | bool | int, what: str) -> Value:
    if isinstance(literal, bool):
        return bool_value(F.lit(literal))
    if isinstance(literal, int):
        return number_value(F.lit(str(literal)), Options(), what)
    return string_value(F.lit(literal))
