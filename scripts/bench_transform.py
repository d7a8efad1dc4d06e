#!/usr/bin/env python
"""Benchmark: carve's transform against a hand-written PySpark job that builds the same items.

    .venv/bin/python scripts/bench_transform.py [--scale 15] [--seed 42] [--repeat 1]
                                                [--database NAME] [--reuse] [--sample 0]

Both sides run in one Spark session (build_local_spark, so the same settings) over the same
source frames: the demo database (mappings/demo.yaml) is read once by carve's own reader and
cached, so neither timing includes the JDBC read. Each side then builds its DataFrame and
computes every column of it through the noop sink; that is the timed part:

- carve: `build_items(mapping, frames)`, with its checks (numbers that do not fit, item
  size, duplicate keys, unreadable rows) and the size and write units of every item;
- hand-written: plain DataFrame code for this one mapping (joins, collect_list, structs and
  one to_json per item), as a data engineer would write it without carve's generality: exact
  numbers (decimal text with trailing zeros stripped, JSON numbers parsed as decimals), the
  same S/N/BOOL/B/SS/NS/L/M types, NULL attributes omitted; no quarantine checks.

Figures: wall seconds, and CPU seconds of the driver JVM (in local mode the executors run in
it; neither side uses Python UDFs), with carve / hand-written ratios, item counts and a rough
plan size (characters of the executed plan's text). With --repeat N the two sides alternate
in order and the best run of each counts.

Afterwards, outside the timed part, the items carve accepts (problem IS NULL) are compared
with the hand-written ones: keys on both sides, and the items whose parsed JSON differs
(numbers as Decimal, sets as sets, binary decoded) - all of them, or a sample (--sample N).

Scale 1 is about 73,000 source rows, scale 15 about 1.1 million.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pyspark import StorageLevel  # noqa: E402
from pyspark.sql import Column, DataFrame, SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

# --- the hand-written job ------------------------------------------------------------------------
#
# Each attribute is a struct in DynamoDB's typed form ({"S": ...}, {"M": {...}}), or NULL; the
# item is one to_json of the struct of its attributes, which leaves out NULL fields: NULL
# attributes are omitted at every level without further code.

INSTANT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS'Z'"  # timestamptz: UTC with 'Z'
WALL_CLOCK = "yyyy-MM-dd'T'HH:mm:ss.SSSSSS"  # timestamp without time zone

# The JSON columns' documents. Numbers are decimals (a double would lose the 30-digit
# loyalty_multiplier); referrer, coupon and care are always present, so their JSON null is
# written as NULL, while the optional keys (nickname, loyalty_multiplier, utm) are left out.
PREFERENCES = ("language string, newsletter boolean, channels array<string>, theme string, "
               "sizes struct<shoe: decimal(38,18), shirt: string>, referrer string, nickname string, "
               "loyalty_multiplier decimal(38,30)")
ATTRIBUTES = ("color string, material string, dimensions_cm struct<w: decimal(38,18), h: decimal(38,18), "
              "d: decimal(38,18)>, warranty_years long, certifications array<string>, care string")
METADATA = "channel string, coupon string, utm struct<source: string, campaign: string>"


def S_or_NULL(text: Column) -> Column:
    """{"S": text}, or {"NULL": true} where text is NULL (to_json leaves out the NULL field)."""
    return F.struct(text.alias("S"), F.when(text.isNull(), F.lit(True)).alias("NULL"))


def S(text: Column) -> Column:
    return F.when(text.isNotNull(), F.struct(text.alias("S")))


def N(text: Column) -> Column:
    """Decimal text in DynamoDB's form: trailing fraction zeros and a bare point dropped."""
    text = F.regexp_replace(text.cast("string"), r"(\.[0-9]*[1-9])0+$", "$1")
    text = F.regexp_replace(text, r"\.0*$", "")
    return F.when(text.isNotNull(), F.struct(text.alias("N")))


def BOOL(flag: Column) -> Column:
    return F.when(flag.isNotNull(), F.struct(flag.alias("BOOL")))


def B(data: Column) -> Column:
    return F.when(data.isNotNull(), F.struct(data.alias("B")))  # to_json writes binary as base64


def L(elements: Column) -> Column:
    return F.when(elements.isNotNull(), F.struct(elements.alias("L")))


def M(**attributes: Column) -> Column:
    return F.struct(F.struct(*[v.alias(k) for k, v in attributes.items()]).alias("M"))


def strings_L(array: Column) -> Column:
    return L(F.transform(array, lambda x: F.struct(x.alias("S"))))


def a_set(kind: str, members: Column) -> Column:
    """SS / NS: distinct, no NULLs; an empty set is left out (DynamoDB rejects it)."""
    members = F.array_distinct(F.filter(members, lambda x: x.isNotNull()))
    return F.when(F.size(members) > 0, F.struct(members.alias(kind)))


def padded(number: Column) -> Column:
    return F.format_string("%08d", number)


def ordered(elements: Column, descending: bool = False) -> Column:
    """collect_list(struct(sort key, element)) -> the elements in sort-key order."""
    return F.transform(F.sort_array(elements, asc=not descending), lambda x: x["e"])


def items_of(df: DataFrame, entity: str, pk: Column, sk: Column, **attributes: Column) -> DataFrame:
    item = F.to_json(F.struct(S(pk).alias("PK"), S(sk).alias("SK"), *[v.alias(k) for k, v in attributes.items()]))
    return df.select(F.lit(entity).alias("entity"), pk.alias("pk"), sk.alias("sk"), item.alias("item"))


def hand_written_items(tables: dict[str, DataFrame]) -> DataFrame:
    customer, address, orders = tables["public.customer"], tables["public.address"], tables["public.orders"]
    line, payment = tables["public.order_line"], tables["public.payment"]
    product, review = tables["public.product"], tables["public.review"]

    # customer, with its address
    addresses = address.select(
        "address_id",
        M(street=S(F.col("street")), city=S(F.col("city")), postal=S(F.col("postal_code")),
          country=S(F.col("country"))).alias("address_m"),
    )
    c = customer.join(addresses, "address_id", "left")
    prefs = F.from_json("preferences", PREFERENCES)
    customers = items_of(
        c, "customer",
        F.concat(F.lit("CUSTOMER#"), padded(c.customer_id)), F.lit("PROFILE"),
        GSI1PK=S(F.concat(F.lit("EMAIL#"), c.email)),
        GSI1SK=S(F.concat(F.lit("CUSTOMER#"), padded(c.customer_id))),
        type=S(F.lit("customer")),
        name=S(F.concat(c.first_name, F.lit(" "), c.last_name)),
        email=S(c.email),
        since=S(F.date_format(c.created_at, INSTANT)),
        born=S(F.date_format(c.birth_date, "yyyy-MM-dd")),
        loyalty_points=N(c.loyalty_points),
        balance=N(c.balance),
        lifetime_value=N(c.lifetime_value),
        tags=a_set("SS", c.tags),
        preferences=F.when(prefs.isNotNull(), M(
            language=S(prefs.language),
            newsletter=BOOL(prefs.newsletter),
            channels=strings_L(prefs.channels),
            theme=S(prefs.theme),
            sizes=F.when(prefs.sizes.isNotNull(), M(shoe=N(prefs.sizes.shoe), shirt=S(prefs.sizes.shirt))),
            referrer=S_or_NULL(prefs.referrer),
            nickname=S(prefs.nickname),
            loyalty_multiplier=N(prefs.loyalty_multiplier),
        )),
        external_ref=S(c.external_ref),
        credit=N(c.credit),
        notes=S_or_NULL(c.notes),  # nulls: null in the mapping
        last_login=S(F.date_format(c.last_login, WALL_CLOCK)),
        avatar=B(c.avatar),
        active=BOOL(c.is_active),
        address=F.col("address_m"),
    )

    # order, with its lines (each with its product) and payments
    products = product.select("product_id", M(sku=S(F.col("sku")), name=S(F.col("name"))).alias("product_m"))
    lines = (
        line.join(products, "product_id", "left")
        .groupBy("order_id")
        .agg(F.collect_list(F.struct(
            F.col("line_no").alias("o"),
            M(line=N(F.col("line_no")), qty=N(F.col("quantity")), price=N(F.col("unit_price")),
              discount=N(F.col("discount")), product=F.col("product_m")).alias("e"),
        )).alias("lines"))
    )
    payments = payment.groupBy("order_id").agg(F.collect_list(F.struct(
        F.col("paid_at").alias("o"),
        M(method=S(F.col("method")), amount=N(F.col("amount")), paid_at=S(F.date_format("paid_at", INSTANT)),
          reference=S(F.col("reference"))).alias("e"),
    )).alias("payments"))
    o = orders.filter(orders.customer_id.isNotNull()).join(lines, "order_id", "left").join(payments, "order_id", "left")
    meta = F.from_json("metadata", METADATA)
    order_items = items_of(
        o, "order",
        F.concat(F.lit("CUSTOMER#"), padded(o.customer_id)),
        F.concat(F.lit("ORDER#"), F.date_format(o.placed_at, "yyyy-MM-dd"), F.lit("#"), padded(o.order_id)),
        GSI1PK=S(F.concat(F.lit("ORDER#"), padded(o.order_id))),
        GSI1SK=S(F.concat(F.lit("STATUS#"), o.status)),
        type=S(F.lit("order")),
        status=S(o.status),
        placed_at=S(F.date_format(o.placed_at, INSTANT)),
        total=N(o.total),
        ship_within=S(o.ship_within),
        metadata=F.when(meta.isNotNull(), M(
            channel=S(meta.channel),
            coupon=S_or_NULL(meta.coupon),
            utm=F.when(meta.utm.isNotNull(), M(source=S(meta.utm.source), campaign=S(meta.utm.campaign))),
        )),
        lines=L(ordered(F.expr("coalesce(lines, array())"))),  # no lines: an empty list, as carve writes
        payments=L(ordered(F.expr("coalesce(payments, array())"))),
    )

    # product, with its last 10 reviews
    reviews = review.groupBy("product_id").agg(F.collect_list(F.struct(
        F.col("created_at").alias("o"),
        M(rating=N(F.col("rating")), title=S(F.col("title")), body=S(F.col("body")),
          at=S(F.date_format("created_at", INSTANT))).alias("e"),
    )).alias("reviews"))
    p = product.join(reviews, "product_id", "left")
    attrs = F.from_json("attributes", ATTRIBUTES)
    dims = attrs.dimensions_cm
    product_items = items_of(
        p, "product",
        F.concat(F.lit("PRODUCT#"), p.sku), F.lit("DETAILS"),
        type=S(F.lit("product")),
        name=S(p.name),
        description=S(p.description),
        price=N(p.price),
        weight_kg=N(p.weight_kg),
        attributes=F.when(attrs.isNotNull(), M(
            color=S(attrs.color),
            material=S(attrs.material),
            dimensions_cm=F.when(dims.isNotNull(), M(w=N(dims.w), h=N(dims.h), d=N(dims.d))),
            warranty_years=N(attrs.warranty_years),
            certifications=strings_L(attrs.certifications),
            care=S_or_NULL(attrs.care),
        )),
        categories=a_set("NS", F.transform(p.category_ids, lambda x: x.cast("string"))),
        created_at=S(F.date_format(p.created_at, WALL_CLOCK)),
        recent_reviews=L(F.slice(ordered(F.expr("coalesce(reviews, array())"), descending=True), 1, 10)),
    )
    return customers.unionByName(order_items).unionByName(product_items)


# --- timing ---------------------------------------------------------------------------------------


class JvmCpu:
    """The driver JVM's process CPU time, in seconds (local mode: the executors are in it too).

    getProcessCpuTime lives on com.sun.management.OperatingSystemMXBean, whose implementation
    class is not exported from its module: py4j cannot call it on the object directly, so the
    call goes through the public interface's Method.
    """

    def __init__(self, spark: SparkSession) -> None:
        jvm, gateway = spark.sparkContext._jvm, spark.sparkContext._gateway
        self.bean = jvm.java.lang.management.ManagementFactory.getOperatingSystemMXBean()
        interface = jvm.java.lang.Class.forName("com.sun.management.OperatingSystemMXBean")
        self.method = interface.getMethod("getProcessCpuTime", gateway.new_array(jvm.java.lang.Class, 0))
        self.no_args = gateway.new_array(jvm.java.lang.Object, 0)
        self.jvm = jvm

    def seconds(self) -> float:
        return self.method.invoke(self.bean, self.no_args) / 1e9

    def gc(self) -> None:
        self.jvm.java.lang.System.gc()


@dataclass
class Run:
    side: str
    wall: float  # seconds: building the DataFrame and computing it
    cpu: float  # JVM CPU seconds over the same span
    build: float  # seconds of the wall spent building the DataFrame (Python, analysis)
    load: float  # the machine's 1-minute load average before the run
    frame: DataFrame


def timed(side: str, build, cpu: JvmCpu) -> Run:
    """Build the DataFrame and compute every column of every row (the noop sink writes nothing)."""
    cpu.gc()
    load = os.getloadavg()[0]
    started_cpu, started = cpu.seconds(), time.perf_counter()
    frame = build()
    built = time.perf_counter() - started
    frame.write.format("noop").mode("overwrite").save()
    return Run(side, time.perf_counter() - started, cpu.seconds() - started_cpu, built, load, frame)


def plan_size(frame: DataFrame) -> tuple[int, int]:
    """(characters, lines) of the executed plan's text: a rough measure of how much Spark runs."""
    text = frame._jdf.queryExecution().executedPlan().toString()
    return len(text), text.count("\n") + 1


# --- sameness -------------------------------------------------------------------------------------


def typed(value):
    """A DynamoDB typed value, comparable: N as Decimal, sets as sets, B as bytes."""
    if not isinstance(value, dict) or len(value) != 1:
        return ("?", repr(value))
    (kind, x), = value.items()
    if kind == "N":
        return ("N", Decimal(x))
    if kind == "NS":
        return ("NS", frozenset(Decimal(n) for n in x))
    if kind == "SS":
        return ("SS", frozenset(x))
    if kind == "B":
        return ("B", base64.b64decode(x))
    if kind == "M":
        return ("M", {k: typed(v) for k, v in x.items()})
    if kind == "L":
        return ("L", [typed(v) for v in x])
    return (kind, x)


def first_difference(a, b, path: str = "") -> str | None:
    if a == b:
        return None
    if a[0] != b[0]:
        return f"{path or '/'}: carve {a[0]} {str(a[1])[:80]} | hand-written {b[0]} {str(b[1])[:80]}"
    if a[0] == "M":
        for key in sorted(set(a[1]) | set(b[1])):
            if key not in b[1]:
                return f"{path}.{key}: only carve has it: {str(a[1][key])[:120]}"
            if key not in a[1]:
                return f"{path}.{key}: only hand-written has it: {str(b[1][key])[:120]}"
            found = first_difference(a[1][key], b[1][key], f"{path}.{key}")
            if found:
                return found
    if a[0] == "L":
        if len(a[1]) != len(b[1]):
            return f"{path}: carve has {len(a[1])} elements, hand-written {len(b[1])}"
        for i, (x, y) in enumerate(zip(a[1], b[1], strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
    return f"{path}: carve {str(a[1])[:100]} | hand-written {str(b[1])[:100]}"


def item_difference(carve_item: str, hand_item: str) -> str | None:
    """Where two items' parsed JSON first differs, or None when they hold the same attributes."""
    try:
        a = json.loads(carve_item, parse_float=Decimal)
        b = json.loads(hand_item, parse_float=Decimal)
    except ValueError as exc:
        return f"not JSON: {exc}"
    return first_difference(("M", {k: typed(v) for k, v in a.items()}), ("M", {k: typed(v) for k, v in b.items()}))


def compare(carve: DataFrame, hand: DataFrame, sample: int) -> dict:
    keys = ["pk", "sk"]
    # Computed once each (the counts below would otherwise run both jobs again every time).
    carve = carve.select("entity", *keys, "item", "problem").persist(StorageLevel.MEMORY_AND_DISK)
    hand = hand.select(*keys, "item").persist(StorageLevel.MEMORY_AND_DISK)
    accepted = carve.filter(F.col("problem").isNull()).select("entity", *keys, F.col("item").alias("carve_item"))
    hand_items = hand.select(*keys, F.col("item").alias("hand_item"))
    both = accepted.join(hand_items, keys, "inner")
    figures = {
        "carve_items": carve.count(),
        "carve_accepted": accepted.count(),
        "carve_accepted_keys": accepted.select(*keys).distinct().count(),
        "hand_items": hand.count(),
        "hand_keys": hand.select(*keys).distinct().count(),
        "carve_only_keys": accepted.join(hand_items, keys, "left_anti").count(),
        "hand_only_keys": hand.join(accepted, keys, "left_anti").count(),
        "joined": both.count(),
    }
    if sample and figures["joined"] > sample:
        # A deterministic sample, spread over the entities in proportion.
        both = both.filter(F.abs(F.xxhash64(*keys)) % figures["joined"] < sample)
    difference = F.udf(item_difference, T.StringType())
    checked = both.select("entity", *keys, difference("carve_item", "hand_item").alias("difference")).cache()
    figures["compared"] = checked.count()
    differing = checked.filter(F.col("difference").isNotNull())
    figures["differing"] = differing.count()
    figures["examples"] = [r.asDict() for r in differing.limit(8).collect()]
    figures["differing_by_entity"] = {r.entity: r["count"] for r in differing.groupBy("entity").count().collect()}
    for frame in (checked, carve, hand):
        frame.unpersist()
    return figures


# --- the run --------------------------------------------------------------------------------------


def prepare_database(args: argparse.Namespace):
    from jobs.devtools.demo_data import DemoDatabase, counts_from_meta, create_demo_database, open_loader

    target = DemoDatabase("postgres", database=args.database)
    if args.reuse:
        loader = open_loader(target)
        try:
            meta = loader.read_meta()
        finally:
            loader.close()
        if meta is not None:
            print(f"reusing database {args.database}: scale {meta['scale']}, seed {meta['seed']}", file=sys.stderr)
            return target, counts_from_meta(meta)
    started = time.monotonic()
    counts = create_demo_database(target, scale=args.scale, seed=args.seed,
                                  progress=lambda m: print(f"  {m}", file=sys.stderr, flush=True))
    print(f"database {args.database} ready in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return target, counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=1, help="timed runs of each side (they alternate)")
    parser.add_argument("--database", help="default: carve_bench_transform_<scale>")
    parser.add_argument("--reuse", action="store_true", help="use the database as it is when it holds demo data")
    parser.add_argument("--sample", type=int, default=0, help="compare about this many items (0: all)")
    args = parser.parse_args()
    args.database = args.database or f"carve_bench_transform_{args.scale:g}".replace(".", "_")

    from jobs.cli import DEMO_MAPPINGS, packaged_mapping
    from jobs.devtools.commands import demo_connection
    from jobs.runtimes.local import build_local_spark
    from jobs.sources.jdbc import read_sources
    from transforms.items import build_items
    from transforms.mapping import load_mapping, referenced_columns

    target, counts = prepare_database(args)
    mapping = load_mapping(packaged_mapping(DEMO_MAPPINGS["postgres"]))
    spark = build_local_spark("carve-bench-transform")
    cpu = JvmCpu(spark)

    started = time.perf_counter()
    frames = read_sources(spark, demo_connection(target), mapping, referenced_columns(mapping))
    cached = {name: df.count() for name, df in frames.items()}  # into the cache: no JDBC in the timings
    read_seconds = time.perf_counter() - started
    print(f"sources cached in {read_seconds:.1f}s: " + ", ".join(f"{n} {c:,}" for n, c in cached.items()),
          file=sys.stderr)

    sides = {"carve": lambda: build_items(mapping, frames), "hand-written": lambda: hand_written_items(frames)}
    runs: dict[str, list[Run]] = {side: [] for side in sides}
    for i in range(args.repeat):
        for side in (list(sides) if i % 2 == 0 else list(reversed(sides))):
            run = timed(side, sides[side], cpu)
            runs[side].append(run)
            print(f"run {i + 1} {side:12} wall {run.wall:7.1f}s (building the frame {run.build:5.1f}s)  "
                  f"JVM CPU {run.cpu:7.1f}s  load before {run.load:.1f}", file=sys.stderr, flush=True)

    best = {side: min(rs, key=lambda r: r.wall) for side, rs in runs.items()}
    carve_df, hand_df = best["carve"].frame, best["hand-written"].frame
    print("comparing items (not timed) ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    same = compare(carve_df, hand_df, args.sample)
    compare_seconds = time.perf_counter() - started

    print_report(args, counts, cached, read_seconds, runs, best, same, compare_seconds)
    return 0 if same["differing"] == 0 and same["carve_only_keys"] == 0 else 1


def print_report(args, counts, cached, read_seconds, runs, best, same, compare_seconds) -> None:
    carve, hand = best["carve"], best["hand-written"]
    carve_plan, hand_plan = plan_size(carve.frame), plan_size(hand.frame)
    source_rows = sum(n for table, n in counts.items() if table != "type_trap")
    print()
    print(f"scale {args.scale:g}, seed {args.seed}, database {args.database}: {source_rows:,} source rows in the "
          f"demo tables, {sum(cached.values()):,} read by the mapping (cached in {read_seconds:.1f}s)")
    if args.repeat > 1:
        print(f"best of {args.repeat} runs per side; all wall seconds: " + "; ".join(
            f"{side} " + ", ".join(f"{r.wall:.1f}" for r in rs) + f" (median {statistics.median(r.wall for r in rs):.1f})"
            for side, rs in runs.items()))
    print()
    print(f"{'':26}{'carve':>16}{'hand-written':>16}{'carve / hand':>16}")
    print(f"{'wall seconds':26}{carve.wall:>16.1f}{hand.wall:>16.1f}{carve.wall / hand.wall:>15.2f}x")
    print(f"{'  of which building frame':26}{carve.build:>16.1f}{hand.build:>16.1f}")
    print(f"{'JVM CPU seconds':26}{carve.cpu:>16.1f}{hand.cpu:>16.1f}{carve.cpu / hand.cpu:>15.2f}x")
    print(f"{'load average before run':26}{carve.load:>16.1f}{hand.load:>16.1f}")
    print(f"{'items out':26}{same['carve_items']:>16,}{same['hand_items']:>16,}")
    print(f"{'plan size (characters)':26}{carve_plan[0]:>16,}{hand_plan[0]:>16,}{carve_plan[0] / hand_plan[0]:>15.2f}x")
    print(f"{'plan size (lines)':26}{carve_plan[1]:>16,}{hand_plan[1]:>16,}{carve_plan[1] / hand_plan[1]:>15.2f}x")
    print()
    print(f"sameness (compared in {compare_seconds:.0f}s, not timed):")
    print(f"  items carve accepts (problem IS NULL): {same['carve_accepted']:,} ({same['carve_accepted_keys']:,} keys) "
          f"of {same['carve_items']:,}")
    print(f"  hand-written items:                    {same['hand_items']:,} ({same['hand_keys']:,} keys)")
    print(f"  keys in both: {same['joined']:,}; only carve's: {same['carve_only_keys']:,}; only hand-written "
          f"(carve quarantines them): {same['hand_only_keys']:,}")
    print(f"  items compared: {same['compared']:,}; parsed JSON differs: {same['differing']:,} "
          f"{same['differing_by_entity'] or ''}")
    for example in same["examples"]:
        print(f"    {example['entity']} {example['pk']} {example['sk']}: {example['difference']}")


if __name__ == "__main__":
    sys.exit(main())
