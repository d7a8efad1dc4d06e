"""carve plan's sample: how many hash buckets, which columns, and the SQL filters it pushes down."""

from __future__ import annotations

from pydantic import SecretStr

from jobs.plan.sample import BUCKETS, EntitySample, buckets_for, sample_columns, sampled_mapping
from jobs.sources.connections import Connection
from transforms.mapping import load_mapping_text

MAPPING = load_mapping_text("""
version: 1
name: t
source: {connection: c}
target: {table: TTT, key: {partition: PK, sort: SK}}
entities:
  order:
    from: public.orders
    filter: status <> 'void'
    key: {PK: "CUSTOMER#{customer_id}", SK: "ORDER#{order_id}"}
    attributes:
      lines:
        from: public.order_line
        join: {order_id: order_id}
        many:
          qty: quantity
          product:
            from: public.product
            join: {product_id: product_id}
            one: {name: name}
  setting:
    from: public.setting
    key: {PK: "SETTING#{scope}", SK: "{name}"}
""", "t.yaml")

POSTGRES = Connection("c", "jdbc:postgresql://127.0.0.1:5432/shop", "u", SecretStr("p"))


def test_buckets_read_about_the_rows_asked_for_and_everything_when_there_are_fewer():
    assert buckets_for(rows=1_000, wanted=2_000) == BUCKETS
    assert buckets_for(rows=1_000_000, wanted=2_000) == 20
    assert buckets_for(rows=10**12, wanted=1) == 1


def test_a_sample_hashes_the_partition_key_columns_so_an_item_collection_stays_whole():
    assert sample_columns(MAPPING, MAPPING.entities["order"]) == ("customer_id",)
    assert sample_columns(MAPPING, MAPPING.entities["setting"]) == ("scope",)


def test_the_sample_is_a_filter_on_the_entity_and_a_semi_join_down_every_embed():
    sampled = sampled_mapping(MAPPING, POSTGRES, {"order": EntitySample(50_000, 40), "setting": EntitySample(3, BUCKETS)})
    order = sampled.entities["order"]
    bucket = ("mod(CAST(hashtext(concat_ws('|', CAST(\"customer_id\" AS text))) AS bigint) + 2147483648, 10000) < 40")
    assert order.filter == f"(status <> 'void') AND ({bucket})"
    lines = order.attributes["lines"]
    assert lines.filter == (f'"order_id" IN (SELECT "order_id" FROM "public"."orders" WHERE (status <> \'void\') '
                            f"AND ({bucket}))")
    product = lines.many["product"]
    assert product.filter == f'"product_id" IN (SELECT "product_id" FROM "public"."order_line" WHERE {lines.filter})'
    assert sampled.entities["setting"] == MAPPING.entities["setting"]  # read whole: fewer rows than asked
