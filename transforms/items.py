"""Entities -> DynamoDB items: the mapping compiled into Spark SQL over the source DataFrames.

`build_items(mapping, tables)` returns one DataFrame for all entities with the columns
ITEM_COLUMNS: the item as DynamoDB wire JSON, its size, its write units, its key values
and byte lengths, and `problem` (NULL for a good item, else why it must be quarantined).
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from functools import reduce

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from transforms.attributes import compile_attributes, render_template
from transforms.context import CompileError, Context, Loc, row_problem
from transforms.mapping import Entity, Mapping, source_id
from transforms.values import Options, Value, attribute_piece, attribute_size, combine_problems, string_value
from transforms.wire import KB, MAX_ITEM_BYTES, MAX_PARTITION_KEY_BYTES, MAX_SORT_KEY_BYTES

ITEM_COLUMNS = ("entity", "pk", "sk", "item", "size", "wcu", "pk_bytes", "sk_bytes", "problem", "source_key")

__all__ = ["ITEM_COLUMNS", "CompileError", "build_items", "check_items"]


def entity_items(ctx: Context, mapping: Mapping, name: str, entity: Entity) -> DataFrame | None:
    loc: Loc = ("entities", name)
    rows = ctx.table(source_id(name, entity), loc + ("from" if entity.from_ else "query",))
    if rows is None:
        return None
    where = entity.from_ or f"the query of entity '{name}'"
    rows = ctx.filtered(rows, entity.filter, loc + ("filter",))
    target = mapping.target
    key_values: list[tuple[str, Value]] = []
    key_texts: dict[str, Column] = {}
    problems: list[Column] = [row_problem(rows)]
    key_columns: list[str] = []
    for attr in [n for n in (target.key.partition, target.key.sort) if n]:
        text, columns = render_template(ctx, rows, entity.key[attr], loc + ("key", attr), where)
        key_columns += columns
        key_texts[attr] = text
        key_values.append((attr, string_value(text)))
        problems.append(_key_problem(rows, attr, text, columns))
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
        (F.ceil(size / KB) * (1 + gsis)).cast("int").alias("wcu"),
        F.coalesce(F.octet_length(pk), F.lit(0)).alias("pk_bytes"),
        F.coalesce(F.octet_length(sk), F.lit(0)).alias("sk_bytes"),
        combine_problems(problems + [v.problem for _, v in attr_values]).alias("problem"),
        source_key.alias("source_key"),
    )


def _key_problem(rows: DataFrame, attr: str, text: Column, columns: list[str]) -> Column:
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


def check_items(items: DataFrame) -> DataFrame:
    """DynamoDB's hard limits (key byte lengths, the 400 KB item size), and keys built more than
    once: every copy of such a key is a problem, no copy is more right than another. One step,
    so that Spark analyses the whole items plan once more, not twice."""
    copies = F.count(F.lit(1)).over(Window.partitionBy("pk", "sk"))
    problems = [
        F.col("problem"),
        F.when(F.col("pk_bytes") > MAX_PARTITION_KEY_BYTES,
               F.concat(F.lit("partition key is "), F.col("pk_bytes"), F.lit(f" bytes; at most {MAX_PARTITION_KEY_BYTES}"))),
        F.when(F.col("sk_bytes") > MAX_SORT_KEY_BYTES,
               F.concat(F.lit("sort key is "), F.col("sk_bytes"), F.lit(f" bytes; at most {MAX_SORT_KEY_BYTES}"))),
        F.when(F.col("size") > MAX_ITEM_BYTES,
               F.concat(F.lit("item is "), F.col("size"), F.lit(f" bytes; DynamoDB holds at most {MAX_ITEM_BYTES}"))),
        F.when(F.col("pk").isNotNull() & (copies > 1),
               F.concat(F.lit("duplicate key: "), copies.cast("string"), F.lit(" source rows produce this (pk, sk)"))),
    ]
    return items.withColumn("problem", combine_problems(problems))


def build_items(
    mapping: Mapping,
    tables: MappingABC[str, DataFrame],
    missing: MappingABC[str, str] | None = None,
    bad_filters: MappingABC[str, str] | None = None,
) -> DataFrame:
    """All entities' items, limits checked and duplicates marked; CompileError lists every mistake.

    `missing` says why a table is absent from `tables` (it does not exist, say), and
    `bad_filters` why the database refused a filter, so each error lands on the mapping line
    that names it.
    """
    options = Options(mapping.policy.nulls, mapping.policy.out_of_range_numbers)
    ctx = Context(tables, options, missing or {}, bad_filters or {})
    frames = [entity_items(ctx, mapping, name, entity) for name, entity in mapping.entities.items()]
    if ctx.errors:
        raise CompileError(list(dict.fromkeys(ctx.errors)))
    items = reduce(lambda a, b: a.unionByName(b), [f for f in frames if f is not None])
    return check_items(items)
