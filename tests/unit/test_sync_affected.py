"""Which roots a change touches, walked up the demo mapping's join graph, as SQL the database runs."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from jobs.cli import DEMO_MAPPINGS, packaged_mapping
from jobs.sources.connections import Connection
from jobs.sync.affected import affected_roots, watermark_change
from transforms.mapping import load_mapping

DEMO = load_mapping(packaged_mapping(DEMO_MAPPINGS["postgres"]))
POSTGRES = Connection("c", "jdbc:postgresql://127.0.0.1:5432/shop", "u", SecretStr("p"))


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
