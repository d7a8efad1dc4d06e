"""Embeds: the rows of another table joined onto each parent row, as a map (one) or a list of maps (many).

An embed's body is compiled like any attributes, by the `compile_body` the caller passes in
(transforms.attributes.compile_attributes): bodies nest, so chains, link tables and
self-references are embeds inside embeds.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as MappingABC
from functools import reduce

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from transforms.context import Context, Loc, row_problem
from transforms.mapping import EmbedMany, EmbedOne
from transforms.values import NUMBER_TEXT, Value, combine_problems, map_value, null_value

# (ctx, rows, attributes, loc, where) -> (rows with the values as columns, the values)
BodyCompiler = Callable[[Context, DataFrame, MappingABC, Loc, str], tuple[DataFrame, list[tuple[str, Value]]]]


def _child(ctx: Context, spec: EmbedOne | EmbedMany, loc: Loc,
           compile_body: BodyCompiler) -> tuple[DataFrame, Value, list[str]] | None:
    rows = ctx.table(spec.from_, loc + ("from",))
    if rows is None:
        return None
    rows = ctx.filtered(rows, spec.filter, loc + ("filter",))
    unknown = [c for c in spec.join.values() if isinstance(ctx.column(rows, c, loc + ("join",), spec.from_)[1], T.NullType)]
    if unknown:  # reported; the body cannot be joined on a column that is not there
        return None
    unreadable = row_problem(rows)  # a child row that cannot be read exactly quarantines its parent
    rows, values = compile_body(ctx, rows, spec.body, loc + (spec.body_key,), spec.from_)
    value = map_value(values)
    return rows, Value(value.json, value.size, combine_problems([unreadable, value.problem])), list(spec.join.values())


def _join(ctx: Context, df: DataFrame, agg: DataFrame, spec: EmbedOne | EmbedMany, keys: list[str], loc: Loc,
          where: str) -> DataFrame:
    conditions = []
    for (parent_col, _), key in zip(spec.join.items(), keys, strict=True):
        column, _, _ = ctx.column(df, parent_col, loc + ("join", parent_col), where)
        conditions.append(column == agg[key])
    # The keys stay: their fresh names collide with nothing, and the item selects what it writes
    # (a drop would be one more step for Spark to analyse, over the whole plan so far).
    return df.join(agg, on=reduce(lambda a, b: a & b, conditions), how="left")


def embed_one(ctx: Context, df: DataFrame, spec: EmbedOne, loc: Loc, where: str,
              compile_body: BodyCompiler) -> tuple[DataFrame, Value]:
    child = _child(ctx, spec, loc, compile_body)
    if child is None:
        return df, null_value(ctx.options)
    rows, value, child_keys = child
    keys = [ctx.fresh("k") for _ in child_keys]
    j, s, p, n = (ctx.fresh(x) for x in "jspn")
    agg = (
        rows.groupBy(*[rows[c].alias(k) for c, k in zip(child_keys, keys, strict=True)])
        .agg(F.first(value.json).alias(j), F.first(value.size).alias(s), F.first(value.problem).alias(p),
             F.count(F.lit(1)).alias(n))
    )
    df = _join(ctx, df, agg, spec, keys, loc, where)
    null = null_value(ctx.options_for(spec.nulls))
    what = ".".join(str(x) for x in loc[1:])
    too_many = F.concat(F.lit(f"{what}: {spec.from_} has "), F.col(n).cast("string"),
                        F.lit(" matching rows; 'one' embeds at most one (use 'many')"))
    return df, Value(
        F.when(F.col(n).isNull(), null.json).otherwise(F.col(j)),
        F.when(F.col(n).isNull(), null.size).otherwise(F.col(s)),
        F.when(F.col(n) > 1, too_many).otherwise(F.col(p)),
    )


def embed_many(ctx: Context, df: DataFrame, spec: EmbedMany, loc: Loc, where: str,
               compile_body: BodyCompiler) -> tuple[DataFrame, Value]:
    child = _child(ctx, spec, loc, compile_body)
    if child is None:
        return df, null_value(ctx.options)
    rows, value, child_keys = child
    keys = [ctx.fresh("k") for _ in child_keys]
    arr = ctx.fresh("a")
    terms = []
    for i, term in enumerate(spec.order_by or ()):
        column_name, _, direction = term.partition(" ")
        column, _, kind = ctx.column(rows, column_name, loc + ("order_by",), spec.from_)
        sortable = column.cast("double") if kind == NUMBER_TEXT else column  # ordering only, never stored
        terms.append((f"o{i}", sortable, direction.strip().lower() == "desc"))
    # Without a limit every element counts, so size and problem are summed up in the grouping, once
    # per child row, and the elements carry only what orders them and their JSON; the lowest
    # problem text is the one reported, so the reason is deterministic.
    carried = [value.size.alias("s"), value.problem.alias("p")] if spec.limit else []
    element = F.struct(*[c.alias(n) for n, c, _ in terms], value.json.alias("j"), *carried)
    size, problem = ctx.fresh("s"), ctx.fresh("p")
    totals = [] if spec.limit else [F.sum(value.size + 1).alias(size), F.min(value.problem).alias(problem)]
    agg = (
        rows.groupBy(*[rows[c].alias(k) for c, k in zip(child_keys, keys, strict=True)])
        .agg(F.collect_list(element).alias(arr), *totals)
    )
    directions = {descending for _, _, descending in terms}
    if len(directions) <= 1:
        # One direction: sort_array compares the structs field by field (the order terms, then the
        # element's JSON for a deterministic order of ties), NULLs first ascending and last
        # descending, in generated code; a comparator lambda runs interpreted.
        ordered = F.sort_array(F.col(arr), asc=not directions.pop() if directions else True)
    else:
        ordered = F.array_sort(F.col(arr), _comparator(terms))
    df = _join(ctx, df, agg, spec, keys, loc, where)
    if spec.limit:
        kept = F.coalesce(F.slice(ordered, 1, spec.limit), F.array().cast(agg.schema[arr].dataType))
        total = F.aggregate(kept["s"], F.lit(3).cast("long"), lambda acc, s: acc + s + 1)
        first_problem = F.element_at(F.array_compact(kept["p"]), 1)
    else:
        kept = ordered
        total = F.coalesce(F.col(size), F.lit(0).cast("long")) + 3
        first_problem = F.col(problem)
    # kept["j"] takes the field out of every element in generated code, without a lambda.
    return df, Value(
        F.concat(F.lit('{"L":['), F.coalesce(F.array_join(kept["j"], ","), F.lit("")), F.lit("]}")),
        total,
        first_problem,
    )


def _comparator(terms: list[tuple[str, Column, bool]]):
    """Order by the terms (NULLs first), then by the item JSON so the order is deterministic."""

    def compare(left: Column, right: Column) -> Column:
        result = F.when(left["j"] < right["j"], -1).when(left["j"] > right["j"], 1).otherwise(0)
        for name, _, descending in reversed(terms):
            sign = -1 if descending else 1
            lv, rv = left[name], right[name]
            result = (
                F.when(lv.isNull() & rv.isNotNull(), -sign)
                .when(lv.isNotNull() & rv.isNull(), sign)
                .when(lv < rv, -sign)
                .when(lv > rv, sign)
                .otherwise(result)
            )
        return result

    return compare
