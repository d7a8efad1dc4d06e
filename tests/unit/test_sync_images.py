"""Changed rows' images written back as SQL: the key list, the derived table (PostgreSQL's VALUES,
MariaDB's union of selects), the walk through images, and binlog values as MariaDB literals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pydantic import SecretStr

from jobs.cli import DEMO_MAPPINGS, packaged_mapping
from jobs.sources.connections import Connection
from jobs.sync.affected import affected_roots
from jobs.sync.binlog import _literal, _order
from jobs.sync.images import Image, key_list, needed, relation
from transforms.mapping import load_mapping

DEMO = load_mapping(packaged_mapping(DEMO_MAPPINGS["postgres"]))
POSTGRES = Connection("c", "jdbc:postgresql://127.0.0.1:5432/shop", "u", SecretStr("p"))
MARIADB = Connection("c", "jdbc:mysql://127.0.0.1:3306/shop", "u", SecretStr("p"))

ROWS = [Image(True, {"order_id": "10", "line_no": "1"}), Image(False, {"order_id": "10", "line_no": "2", "qty": "3"})]


def test_the_key_list_names_each_row_once_in_key_order():
    assert key_list(POSTGRES, ("order_id", "line_no"), ROWS * 2) == '("order_id", "line_no") IN ((10, 1), (10, 2))'
    assert key_list(MARIADB, ("order_id",), ROWS) == "`order_id` IN (10)"
    assert key_list(POSTGRES, (), ROWS) is None  # no key to name the rows by
    assert key_list(POSTGRES, ("order_id",), [Image(True, {"order_id": "NULL"})]) == "1 = 0"


def test_images_become_a_derived_table_with_carve_old_and_null_for_what_an_image_lacks():
    assert relation(POSTGRES, ["order_id", "qty"], ROWS) == (
        '(VALUES (10, NULL, TRUE), (10, 3, FALSE)) AS carve_images("order_id", "qty", carve_old)')
    assert relation(MARIADB, ["order_id", "qty"], ROWS) == (
        "(SELECT 10 AS `order_id`, NULL AS `qty`, TRUE AS carve_old UNION ALL SELECT 10, 3, FALSE) carve_images")


def test_an_image_must_carry_the_key_template_and_child_join_columns():
    assert needed(DEMO, "public.orders") == {"customer_id", "placed_at", "order_id"}
    assert needed(DEMO, "public.order_line") == {"order_id"}
    assert needed(DEMO, "public.product") == {"sku", "product_id"}


def test_images_walk_up_to_the_roots_beside_the_key_list_of_the_table_itself():
    images = "(VALUES (7, TRUE)) AS carve_images(\"product_id\", carve_old)"
    assert affected_roots(POSTGRES, DEMO, "public.product", '"product_id" IN (7)', images) == {
        "order": '"order_id" IN (SELECT "order_id" FROM "public"."order_line" WHERE '
                 f'"product_id" IN (SELECT "product_id" FROM {images}))',
        "product": '"product_id" IN (7)',
    }


def test_binlog_values_are_mariadb_literals_of_their_kind():
    assert _literal(None) == "NULL"
    assert _literal(42) == "42"
    assert _literal(Decimal("12345678.1234")) == "12345678.1234"
    assert _literal("a\\b'c") == "'a\\\\b''c'"  # a backslash escapes in MariaDB: doubled
    assert _literal(dt.datetime(2026, 1, 1, 10, 0, 0, 500000)) == "CAST('2026-01-01 10:00:00.500000' AS DATETIME(6))"
    assert _literal(dt.date(2026, 1, 2)) == "CAST('2026-01-02' AS DATE)"
    assert _literal(dt.timedelta(hours=25, minutes=3, seconds=4.5)) == "CAST('25:03:04.500000' AS TIME(6))"
    assert _literal(dt.timedelta(minutes=2, seconds=59.9)) == "CAST('0:02:59.900000' AS TIME(6))"
    assert _literal(-dt.timedelta(seconds=1)) == "CAST('-0:00:01.000000' AS TIME(6))"
    assert _literal(b"\x00\xff") == "X'00ff'"
    assert _literal(1.5) == "CAST(1.5 AS DOUBLE)"


def test_binlog_positions_order_by_file_then_offset():
    assert _order("mysql-bin.000002", 4) > _order("mysql-bin.000001", 99_999)
    assert _order("mysql-bin.000001", 500) > _order("mysql-bin.000001", 499)
