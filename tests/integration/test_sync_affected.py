"""The items a change touches, rebuilt from only their roots, on the real PostgreSQL and MariaDB.

For a product, a few order lines and an address of the demo store: the roots the join-graph walk
selects are exactly the ones SQL over the changed rows names, and each item rebuilt from them
(jobs.sources.subset, the same transforms) is byte for byte the item a full build gives.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from jobs.cli import DEMO_MAPPINGS, packaged_mapping
from jobs.devtools.commands import demo_connection
from jobs.devtools.demo_data import DemoDatabase, create_demo_database
from jobs.sources.connections import Connection
from jobs.sources.jdbc import read_sources
from jobs.sources.subset import subset_mapping
from jobs.sync.affected import affected_roots
from tests.support.databases import drop_database, query
from transforms.items import build_items
from transforms.mapping import Mapping, load_mapping, referenced_columns

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Store:
    target: DemoDatabase
    conn: Connection
    mapping: Mapping
    items: dict[tuple[str, str], dict[str, Any]]  # (pk, sk) -> entity, item, source key


def built(spark, conn: Connection, mapping: Mapping) -> dict[tuple[str, str], dict[str, Any]]:
    frames = read_sources(spark, conn, mapping, referenced_columns(mapping), cache=False)
    rows = build_items(mapping, frames).select("entity", "pk", "sk", "item", "source_key").collect()
    return {(r.pk, r.sk): {"entity": r.entity, "item": r.item, "key": json.loads(r.source_key)} for r in rows}


@pytest.fixture(scope="module", params=("postgres", "mariadb"))
def store(request, spark) -> Iterator[Store]:
    target = DemoDatabase(request.param, database=f"carve_affected_{uuid.uuid4().hex[:8]}")
    create_demo_database(target, scale=0.05, seed=11)
    conn = demo_connection(target)
    mapping = load_mapping(packaged_mapping(DEMO_MAPPINGS[request.param]))
    yield Store(target, conn, mapping, built(spark, conn, mapping))
    drop_database(target)


def table(store: Store, name: str) -> str:
    return f"public.{name}" if store.target.engine == "postgres" else name


def rebuilt(spark, store: Store, changed: str, change: str) -> dict[tuple[str, str], dict[str, Any]]:
    roots = affected_roots(store.conn, store.mapping, table(store, changed), change)
    return built(spark, store.conn, subset_mapping(store.mapping, store.conn, roots))


def keys(items: dict[tuple[str, str], dict[str, Any]], entity: str, column: str) -> set[int]:
    return {int(i["key"][column]) for i in items.values() if i["entity"] == entity}



def assert_same_as_full_build(store: Store, got: dict[tuple[str, str], dict[str, Any]]) -> None:
    assert got, "the change touched no item"
    for key, item in got.items():
        assert item["item"] == store.items[key]["item"], key


def test_a_product_change_rebuilds_the_product_and_every_order_embedding_it(spark, store):
    [(product,)] = query(store.target, "SELECT product_id FROM order_line GROUP BY product_id "
                                       "ORDER BY count(*) DESC, product_id LIMIT 1")
    got = rebuilt(spark, store, "product", f"product_id = {product}")
    orders = {o for (o,) in query(store.target, f"SELECT DISTINCT order_id FROM order_line WHERE product_id = {product}")}
    assert len(orders) > 1
    assert keys(got, "order", "order_id") == orders
    [(sku,)] = query(store.target, f"SELECT sku FROM product WHERE product_id = {product}")
    assert {i["key"]["sku"] for i in got.values() if i["entity"] == "product"} == {sku}
    assert keys(got, "customer", "customer_id") == set()
    assert_same_as_full_build(store, got)


def test_a_change_to_some_lines_rebuilds_only_their_orders(spark, store):
    [(low,), (high,)] = query(store.target, "(SELECT min(order_id) FROM orders) UNION ALL (SELECT max(order_id) FROM orders)")
    got = rebuilt(spark, store, "order_line", f"order_id IN ({low}, {high})")
    assert keys(got, "order", "order_id") == {low, high}
    assert {i["entity"] for i in got.values()} == {"order"}
    assert_same_as_full_build(store, got)


def test_an_address_change_rebuilds_the_customers_living_there(spark, store):
    [(address,)] = query(store.target, "SELECT address_id FROM customer WHERE address_id IS NOT NULL "
                                       "GROUP BY address_id ORDER BY count(*) DESC, address_id LIMIT 1")
    got = rebuilt(spark, store, "address", f"address_id = {address}")
    customers = {c for (c,) in query(store.target, f"SELECT customer_id FROM customer WHERE address_id = {address}")}
    assert keys(got, "customer", "customer_id") == customers
    assert_same_as_full_build(store, got)
