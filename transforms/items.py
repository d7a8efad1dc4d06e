"""Entities -> DynamoDB items: the mapping compiled into Spark SQL over the source DataFrames.

`build_items(mapping, tables)` returns one DataFrame for all entities with the columns
ITEM_COLUMNS: the item as DynamoDB wire JSON, its size, its write units, its key values
and byte lengths, and `problem` (NULL for a good item, else why it must be quarantined).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.utils import AnalysisException

from transforms.mapping import ColumnAttr, EmbedMany, EmbedOne, Entity, LiteralAttr, Mapping, TemplateAttr
from transforms.templates import Placeholder, Text, padding_width, parse_template, spark_date_pattern
from transforms.values import (
    KIND,
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

MAX_ITEM_BYTES = 400 * 1024
MAX_PARTITION_KEY_BYTES = 2048
MAX_SORT_KEY_BYTES = 1024

ITEM_COLUMNS = ("entity", "pk", "sk", "item", "size", "wcu", "pk_bytes", "sk_bytes", "problem", "source_key")

Loc = tuple[str | int, ...]


def source_id(entity_name: str, entity: Entity) -> str:
    """The name a source frame goes by: its table, or `query:<entity>` for a query."""
    return entity.from_ if entity.from_ else f"query:{entity_name}"


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
    if not isinstance(dtype, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)) and kind != NUMBER_TEXT:
        ctx.errors.append((loc, f"'{{{part.column}:{part.format}}}': zero padding needs an integer column"))
    # format_string prints NULL as "null"; the key must stay NULL so the row is quarantined.
    return F.when(column.isNotNull(), F.format_string(f"%0{width}d", column.cast("long")))


# --- objects: attributes, embeds -------------------------------------------------------------


def attribute_piece(name: str, value: Value) -> Column:
    """'"name":<value>' or NULL (omitted), for concat_ws, which skips NULLs."""
    return F.concat(F.lit(json.dumps(name, ensure_ascii=False) + ":"), value.json)


def attribute_size(name: str, value: Value) -> Column:
    return F.when(value.json.isNotNull(), F.lit(len(name.encode("utf-8"))) + F.coalesce(value.size, F.lit(0))).otherwise(F.lit(0))


def combine_problems(problems: list[Column]) -> Column:
    if not problems:
        return no_problem()
    joined = F.concat_ws("; ", *problems)
    return F.when(joined != "", joined)


def compile_attributes(
    ctx: Context, df: DataFrame, attributes: MappingABC, loc: Loc, where: str
) -> tuple[DataFrame, list[tuple[str, Value]]]:
    values: list[tuple[str, Value]] = []
    for name, spec in attributes.items():
        here = loc + (name,)
        what = ".".join(str(p) for p in here[1:])  # e.g. customer.attributes.email
        if isinstance(spec, ColumnAttr):
            column, dtype, kind = ctx.column(df, spec.column, here, where)
            options = Options(spec.nulls or ctx.options.nulls, ctx.options.out_of_range_numbers)
            try:
                values.append((name, scalar_value(column, dtype, kind, spec.as_, options, what)))
            except TypeError as exc:
                ctx.errors.append((here, str(exc).split(": ", 1)[-1]))
        elif isinstance(spec, TemplateAttr):
            text, _ = render_template(ctx, df, spec.template, here, where)
            options = Options(spec.nulls or ctx.options.nulls, ctx.options.out_of_range_numbers)
            null = null_value(options)
            value = string_value(text)
            values.append((name, Value(F.coalesce(value.json, null.json), F.coalesce(value.size, null.size), no_problem())))
        elif isinstance(spec, LiteralAttr):
            values.append((name, _literal(spec.literal, what)))
        elif isinstance(spec, EmbedOne):
            df, value = embed_one(ctx, df, spec, here, where)
            values.append((name, value))
        elif isinstance(spec, EmbedMany):
            df, value = embed_many(ctx, df, spec, here, where)
            values.append((name, value))
    return materialize(ctx, df, values)


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


def map_value(values: list[tuple[str, Value]]) -> Value:
    """An embedded object: M, 3 bytes + 1 per element + names + values."""
    json_pieces = [attribute_piece(n, v) for n, v in values]
    size = reduce(lambda a, b: a + b, [attribute_size(n, v) + F.when(v.json.isNotNull(), 1).otherwise(0) for n, v in values], F.lit(3))
    return Value(
        F.concat(F.lit('{"M":{'), F.concat_ws(",", *json_pieces), F.lit("}}")),
        size.cast("long"),
        combine_problems([v.problem for _, v in values]),
    )


def _child(ctx: Context, spec: EmbedOne | EmbedMany, body: MappingABC, loc: Loc) -> tuple[DataFrame, Value, list[str]] | None:
    rows = ctx.table(spec.from_, loc + ("from",))
    if rows is None:
        return None
    rows = ctx.filtered(rows, spec.filter, loc + ("filter",))
    for child_col in spec.join.values():
        ctx.column(rows, child_col, loc + ("join",), spec.from_)
    body_key = "one" if isinstance(spec, EmbedOne) else "many"
    rows, values = compile_attributes(ctx, rows, body, loc + (body_key,), spec.from_)
    return rows, map_value(values), list(spec.join.values())


def _join(ctx: Context, df: DataFrame, agg: DataFrame, spec, keys: list[str], loc: Loc, where: str) -> DataFrame:
    conditions = []
    for (parent_col, _), key in zip(spec.join.items(), keys):
        column, _, _ = ctx.column(df, parent_col, loc + ("join", parent_col), where)
        conditions.append(column == agg[key])
    return df.join(agg, on=reduce(lambda a, b: a & b, conditions), how="left").drop(*keys)


def embed_one(ctx: Context, df: DataFrame, spec: EmbedOne, loc: Loc, where: str) -> tuple[DataFrame, Value]:
    child = _child(ctx, spec, spec.one, loc)
    if child is None:
        return df, null_value(ctx.options)
    rows, value, child_keys = child
    keys = [ctx.fresh("k") for _ in child_keys]
    j, s, p, n = (ctx.fresh(x) for x in "jspn")
    agg = (
        rows.select(*[rows[c].alias(k) for c, k in zip(child_keys, keys)], value.json.alias(j), value.size.alias(s),
                    value.problem.alias(p))
        .groupBy(*keys)
        .agg(F.first(j).alias(j), F.first(s).alias(s), F.first(p).alias(p), F.count(F.lit(1)).alias(n))
    )
    df = _join(ctx, df, agg, spec, keys, loc, where)
    options = Options(spec.nulls or ctx.options.nulls, ctx.options.out_of_range_numbers)
    null = null_value(options)
    what = ".".join(str(x) for x in loc[1:])
    too_many = F.concat(F.lit(f"{what}: {spec.from_} has "), F.col(n).cast("string"),
                        F.lit(" matching rows; 'one' embeds at most one (use 'many')"))
    return df, Value(
        F.when(F.col(n).isNull(), null.json).otherwise(F.col(j)),
        F.when(F.col(n).isNull(), null.size).otherwise(F.col(s)),
        F.when(F.col(n) > 1, too_many).otherwise(F.col(p)),
    )


def embed_many(ctx: Context, df: DataFrame, spec: EmbedMany, loc: Loc, where: str) -> tuple[DataFrame, Value]:
    child = _child(ctx, spec, spec.many, loc)
    if child is None:
        return df, null_value(ctx.options)
    rows, value, child_keys = child
    keys = [ctx.fresh("k") for _ in child_keys]
    arr = ctx.fresh("a")
    terms = []
    for i, term in enumerate(spec.order_by or ()):
        column_name, _, direction = term.partition(" ")
        column, dtype, kind = ctx.column(rows, column_name, loc + ("order_by",), spec.from_)
        sortable = column.cast("double") if kind == NUMBER_TEXT else column  # ordering only, never stored
        terms.append((f"o{i}", sortable, direction.strip().lower() == "desc"))
    element = F.struct(*[c.alias(n) for n, c, _ in terms], value.json.alias("j"), value.size.alias("s"),
                       value.problem.alias("p"))
    agg = rows.select(*[rows[c].alias(k) for c, k in zip(child_keys, keys)], element.alias("e")).groupBy(*keys).agg(
        F.collect_list("e").alias(arr)
    )
    ordered = F.array_sort(F.col(arr), _comparator(terms))
    if spec.limit:
        ordered = F.slice(ordered, 1, spec.limit)
    df = _join(ctx, df, agg, spec, keys, loc, where)
    elements = F.coalesce(ordered, F.array().cast(agg.schema[arr].dataType))
    problems = F.filter(F.transform(elements, lambda e: e["p"]), lambda p: p.isNotNull())
    return df, Value(
        F.concat(F.lit('{"L":['), F.array_join(F.transform(elements, lambda e: e["j"]), ","), F.lit("]}")),
        F.aggregate(elements, F.lit(3).cast("long"), lambda acc, e: acc + e["s"] + 1),
        F.element_at(problems, 1),
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


# --- entities -> items -----------------------------------------------------------------------


def entity_items(ctx: Context, mapping: Mapping, name: str, entity: Entity) -> DataFrame | None:
    loc: Loc = ("entities", name)
    sid = source_id(name, entity)
    rows = ctx.table(sid, loc + ("from" if entity.from_ else "query",))
    if rows is None:
        return None
    where = entity.from_ or f"the query of entity '{name}'"
    rows = ctx.filtered(rows, entity.filter, loc + ("filter",))
    target = mapping.target
    key_values: list[tuple[str, Value]] = []
    key_texts: dict[str, Column] = {}
    problems: list[Column] = []
    key_columns: list[str] = []
    for attr in [n for n in (target.key.partition, target.key.sort) if n]:
        text, columns = render_template(ctx, rows, entity.key[attr], loc + ("key", attr), where)
        key_columns += columns
        key_texts[attr] = text
        key_values.append((attr, string_value(text)))
        problems.append(_key_problem(rows, attr, text, columns, ctx, loc, where))
    index_values: list[tuple[str, Value]] = []
    for attr, template in entity.indexes.items():
        text, _ = render_template(ctx, rows, template, loc + ("indexes", attr), where)
        index_values.append((attr, string_value(text)))
        problems.append(F.when(text == "", F.lit(f"index key {attr} is an empty string; DynamoDB rejects it")))
    rows, attr_values = compile_attributes(ctx, rows, entity.attributes, loc + ("attributes",), where)
    values = key_values + index_values + attr_values
    size = reduce(lambda a, b: a + b, [attribute_size(n, v) for n, v in values]).cast("long")
    pk = key_texts[target.key.partition]
    sk = key_texts.get(target.key.sort) if target.key.sort else F.lit(None).cast("string")
    item = F.concat(F.lit("{"), F.concat_ws(",", *[attribute_piece(n, v) for n, v in values]), F.lit("}"))
    known = [c for c in dict.fromkeys(key_columns) if c in rows.columns]  # unknown ones are reported already
    key_struct = F.struct(*[rows[c].alias(c) for c in known])
    source_key = F.to_json(key_struct, {"ignoreNullFields": "false"})
    gsis = _indexes_written(mapping, dict(index_values + key_values))
    return rows.select(
        F.lit(name).alias("entity"),
        pk.alias("pk"),
        sk.alias("sk"),
        item.alias("item"),
        size.alias("size"),
        (F.ceil(size / 1024) * (1 + gsis)).cast("int").alias("wcu"),
        F.coalesce(F.octet_length(pk), F.lit(0)).alias("pk_bytes"),
        F.coalesce(F.octet_length(sk), F.lit(0)).alias("sk_bytes"),
        combine_problems(problems + [v.problem for _, v in attr_values]).alias("problem"),
        source_key.alias("source_key"),
    )


def _key_problem(rows: DataFrame, attr: str, text: Column, columns: list[str], ctx: Context, loc: Loc, where: str) -> Column:
    nulls = [F.when(rows[c].isNull(), F.lit(c)) for c in dict.fromkeys(columns) if c in rows.columns]
    null_reason = F.concat(F.lit(f"key {attr} is NULL: column "), F.concat_ws(", ", *nulls), F.lit(" is NULL"))
    return F.when(text.isNull(), null_reason).when(text == "", F.lit(f"key {attr} is an empty string"))


def _indexes_written(mapping: Mapping, present: dict[str, Value]) -> Column:
    """How many GSIs an item lands in: each costs its own write units."""
    counted = F.lit(0)
    for index in mapping.target.indexes:
        attrs = [a for a in (index.partition, index.sort) if a]
        if all(a in present for a in attrs):
            has_all = reduce(lambda a, b: a & b, [present[a].json.isNotNull() for a in attrs])
            counted = counted + F.when(has_all, 1).otherwise(0)
    return counted


def check_limits(items: DataFrame) -> DataFrame:
    """DynamoDB's hard limits: key byte lengths and the 400 KB item size."""
    limits = [
        F.when(F.col("pk_bytes") > MAX_PARTITION_KEY_BYTES,
               F.concat(F.lit("partition key is "), F.col("pk_bytes"), F.lit(f" bytes; at most {MAX_PARTITION_KEY_BYTES}"))),
        F.when(F.col("sk_bytes") > MAX_SORT_KEY_BYTES,
               F.concat(F.lit("sort key is "), F.col("sk_bytes"), F.lit(f" bytes; at most {MAX_SORT_KEY_BYTES}"))),
        F.when(F.col("size") > MAX_ITEM_BYTES,
               F.concat(F.lit("item is "), F.col("size"), F.lit(f" bytes; DynamoDB holds at most {MAX_ITEM_BYTES}"))),
    ]
    return items.withColumn("problem", combine_problems([F.col("problem"), *limits]))


def mark_duplicates(items: DataFrame) -> DataFrame:
    """Every copy of a key produced more than once is a problem: no copy is more right than another."""
    copies = F.count(F.lit(1)).over(Window.partitionBy("pk", "sk"))
    duplicate = F.when(
        F.col("pk").isNotNull() & (copies > 1),
        F.concat(F.lit("duplicate key: "), copies.cast("string"), F.lit(" source rows produce this (pk, sk)")),
    )
    return items.withColumn("problem", combine_problems([F.col("problem"), duplicate]))


def build_items(
    mapping: Mapping, tables: MappingABC[str, DataFrame], missing: MappingABC[str, str] | None = None
) -> DataFrame:
    """All entities' items, limits checked and duplicates marked; CompileError lists every mistake.

    `missing` says why a table is absent from `tables` (it does not exist, say), so the error
    lands on the mapping line that names it.
    """
    ctx = Context(tables, Options(mapping.policy.nulls, mapping.policy.out_of_range_numbers), missing or {})
    frames = [entity_items(ctx, mapping, name, entity) for name, entity in mapping.entities.items()]
    if ctx.errors:
        raise CompileError(list(dict.fromkeys(ctx.errors)))
    items = reduce(lambda a, b: a.unionByName(b), [f for f in frames if f is not None])
    return mark_duplicates(check_limits(items))


class CompileError(Exception):
    """The mapping does not fit the source: each error is (field path, message)."""

    def __init__(self, errors: list[tuple[Loc, str]]):
        self.errors = errors
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {msg}" for loc, msg in errors))


IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def referenced_columns(mapping: Mapping) -> dict[str, set[str]]:
    """Per source frame, the column names the mapping may use (a superset: filters are scanned for words)."""
    used: dict[str, set[str]] = {}

    def words(text: str | None) -> set[str]:
        return set(IDENT.findall(text or ""))

    def walk(source: str, attributes: MappingABC) -> None:
        for spec in attributes.values():
            if isinstance(spec, ColumnAttr):
                used.setdefault(source, set()).add(spec.column)
            elif isinstance(spec, TemplateAttr):
                used.setdefault(source, set()).update(words(spec.template))
            elif isinstance(spec, (EmbedOne, EmbedMany)):
                used.setdefault(source, set()).update(spec.join.keys())
                child = used.setdefault(spec.from_, set())
                child.update(spec.join.values())
                child.update(words(spec.filter))
                if isinstance(spec, EmbedMany):
                    child.update(t.split(" ")[0] for t in spec.order_by or ())
                walk(spec.from_, spec.one if isinstance(spec, EmbedOne) else spec.many)

    for name, entity in mapping.entities.items():
        sid = source_id(name, entity)
        mine = used.setdefault(sid, set())
        for template in [*entity.key.values(), *entity.indexes.values()]:
            mine.update(words(template))
        mine.update(words(entity.filter))
        walk(sid, entity.attributes)
    return used
