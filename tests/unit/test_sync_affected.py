"""Which roots a change touches, walked up the demo mapping's join graph, as SQL the database runs."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from jobs.cli import DEMO_MAPPINGS, packaged_mapping
from jobs.sources.connections import Connection
from jobs.sources.subset import MAX_LISTED_KEYS, listed, subset_mapping
from jobs.sync.affected import affected_roots, watermark_change
from transforms.mapping import load_mapping

DEMO = load_mapping(packaged_mapping(DEMO_MAPPINGS["postgres"]))
POSTGRES = Connection("c", "jdbc:postgresql://127.0.0.1:5432/shop", "u", SecretStr("p"))
MARIADB = Connection("c", "jdbc:mysql://127.0.0.1:3306/shop", "u", SecretStr("p"))


def test_a_root_table_change_touches_its_own_items():
    assert affected_roots(POSTGRES, DEMO, "public.customer", "x = 1") == {"customer": "x = 1"}


def test_a_child_change_touches_the_parents_that_embed_it():
    assert affected_roots(POSTGRES, DEMO, "public.order_line", "x = 1") == {
        "order": '"order_id" IN (SELECT "order_id" FROM "public"."order_line" WHERE x = 1)'}
    assert affected_roots(POSTGRES, DEMO, "public.address", "x = 1") == {
        "customer": '"address_id" IN (SELECT "address_id" FROM "public"."address" WHERE x = 1)'}


def test_a_product_change_touches_the_product_and_every_order_that_embeds_it_two_levels_down():
    assert affected_roots(POSTGRES, DEMO, "public.product", "x = 1") == {
        "order": '"order_id" IN (SELECT "order_id" FROM "public"."order_line" WHERE '
                 '"product_id" IN (SELECT "product_id" FROM "public"."product" WHERE x = 1))',
        "product": "x = 1",
    }


def test_a_table_no_entity_reads_touches_nothing():
    assert affected_roots(POSTGRES, DEMO, "public.employee", "x = 1") == {}


def test_a_watermark_cycle_reads_above_the_saved_value_and_up_to_the_one_read_at_its_start():
    assert watermark_change(POSTGRES, "updated_at", None, "2026-12-06 10:00:00") == (
        "\"updated_at\" <= '2026-12-06 10:00:00'")
    assert watermark_change(POSTGRES, "id", "41", "97") == "\"id\" > '41' AND \"id\" <= '97'"
    assert watermark_change(POSTGRES, "note", "O'Brien", "P") == "\"note\" > 'O''Brien' AND \"note\" <= 'P'"
    with pytest.raises(ValueError, match="backslash"):
        watermark_change(POSTGRES, "note", "a\\b", "c")


def test_keys_become_a_list_of_literals_one_or_many_columns():
    assert listed(POSTGRES, ["order_id"], [("7",), ("9",), (None,)]) == "\"order_id\" IN ('7', '9')"
    assert listed(MARIADB, ["a", "b"], [("1", "x'y")]) == "(`a`, `b`) IN (('1', 'x''y'))"
    assert listed(POSTGRES, ["order_id"], []) == "1 = 0"  # nothing to read, and valid SQL


def test_a_list_is_not_made_of_too_many_keys_or_of_backslashes():
    assert listed(POSTGRES, ["k"], [(str(n),) for n in range(MAX_LISTED_KEYS + 1)]) is None
    assert listed(MARIADB, ["sku"], [("A\\B",)]) is None  # MariaDB would read the backslash as an escape


def test_with_a_resolver_each_embed_reads_its_parents_keys_and_lists_them():
    mapping = load_mapping(packaged_mapping(DEMO_MAPPINGS["postgres"]))
    asked = []

    def resolve(sql: str) -> list[tuple]:
        asked.append(sql)
        return [("10",), ("11",)] if "FROM \"public\".\"orders\"" in sql.split(" WHERE ")[0] else [("3",)]

    subset = subset_mapping(mapping, POSTGRES, {"order": "\"order_id\" IN ('10', '11')"}, resolve)
    lines = subset.entities["order"].attributes["lines"]
    assert lines.filter == "\"order_id\" IN ('10', '11')"
    assert lines.many["product"].filter == "\"product_id\" IN ('3')"
    assert asked[0].startswith('SELECT DISTINCT "order_id" FROM "public"."orders" WHERE "order_id" IN')
    assert asked[0].endswith(f"LIMIT {MAX_LISTED_KEYS + 1}")
