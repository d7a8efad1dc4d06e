"""carve scaffold's draft from a catalogue, without a database: each rule, and that the draft loads."""

from __future__ import annotations

from jobs.scaffold.catalog import Catalog, Column, Reference, Table
from jobs.scaffold.draft import DraftOptions, draft, key_template, shape
from jobs.sources.dialect import ForeignKey, TableStats
from transforms.mapping import EmbedMany, EmbedOne, load_mapping_text


def table(name: str, columns: str, key: tuple[str, ...], rows: int = 100, row_bytes: int = 100, **kw) -> Table:
    """columns: 'name type[?]' separated by commas; ? marks a nullable column."""
    parsed = []
    for spec in columns.split(","):
        column, kind = spec.strip().rsplit(" ", 1)
        parsed.append(Column(column, kind.rstrip("?"), kind.rstrip("?"), kind.endswith("?")))
    return Table(name, tuple(parsed), key, stats=TableStats(rows, row_bytes), **kw)


def ref(child: str, columns: tuple[str, ...], parent: str, parent_columns: tuple[str, ...], p99: int = 3,
        most: int | None = None, parents: int = 100, parent_rows: int = 100) -> Reference:
    return Reference(ForeignKey(child, columns, parent, parent_columns), p99, p99 * 2 if most is None else most,
                     parents, parent_rows)


STORE = Catalog("postgres", "shop", {
    "address": table("address", "address_id bigint, city text, on text?", ("address_id",)),
    "customer": table("customer", "customer_id integer, email text?, address_id bigint?", ("customer_id",),
                      uniques=(("email",),)),
    "orders": table("orders", "order_id bigint, customer_id integer?, placed date", ("order_id",)),
    "order_line": table("order_line", "order_id bigint, line_no integer, product_code text", ("order_id", "line_no"),
                        row_bytes=2_000),
    "product": table("product", "code text, name text, price numeric", ("code",)),
    "tag": table("tag", "tag_id integer, label text", ("tag_id",)),
    "product_tag": table("product_tag", "code text, tag_id integer", ("code", "tag_id")),
    "employee": table("employee", "employee_id integer, boss integer?, Weird Name text?", ("employee_id",)),
    "log": table("log", "at timestamp, line text", ()),
}, (
    ref("customer", ("address_id",), "address", ("address_id",), p99=1, most=1),  # one customer per address
    ref("orders", ("customer_id",), "customer", ("customer_id",)),
    ref("order_line", ("order_id",), "orders", ("order_id",), p99=80),
    ref("order_line", ("product_code",), "product", ("code",)),
    ref("product_tag", ("code",), "product", ("code",)),
    ref("product_tag", ("tag_id",), "tag", ("tag_id",)),
    ref("employee", ("boss",), "employee", ("employee_id",)),
))
OPTIONS = DraftOptions("shop", "shop_db", "Shop", max_item_kb=100)


def test_each_table_gets_its_role():
    roles = shape(STORE)
    assert set(roles.entities) == {"customer", "orders", "product", "tag", "employee"}
    assert set(roles.children) == {"order_line"}
    assert set(roles.links) == {"product_tag"}
    assert set(roles.lookups) == {"address"}
    assert {name: r.key.parent for name, r in roles.colocated.items()} == {"orders": "customer"}
    assert roles.keyless == ("log",)


def test_keys_sort_as_their_values_do():
    orders = STORE.tables["orders"]
    assert key_template(orders, ("order_id",)) == "{order_id:019d}"
    assert key_template(orders, ("placed", "order_id")) == "{placed:%Y-%m-%d}#{order_id:019d}"
    assert key_template(STORE.tables["product"], ("code",)) == "{code}"
    assert key_template(STORE.tables["customer"], ("customer_id",), {"customer_id": "cid"}) == "{cid:010d}"


def test_the_draft_loads_as_a_mapping_with_the_shapes_the_rules_give():
    text = draft(STORE, OPTIONS)
    mapping = load_mapping_text(text, "draft.yaml")  # carve validate's own loader: the draft is valid as it is
    assert mapping.source.connection == "shop_db" and mapping.target.table == "Shop"
    assert [ix.name for ix in mapping.target.indexes] == ["GSI1"]
    customer, orders, product = (mapping.entities[n] for n in ("customer", "orders", "product"))
    assert customer.key == {"PK": "CUSTOMER#{customer_id:010d}", "SK": "CUSTOMER"}
    assert orders.key == {"PK": "CUSTOMER#{customer_id:010d}", "SK": "ORDERS#{order_id:019d}"}
    assert orders.indexes == {"GSI1PK": "ORDERS#{order_id:019d}", "GSI1SK": "ORDERS"}
    address = customer.attributes["address"]
    assert isinstance(address, EmbedOne) and address.from_ == "shop.address" and address.join == {"address_id": "address_id"}
    assert set(address.one) == {"city", "on"}  # the whole lookup, its key aside; 'on' quoted, not a YAML boolean
    lines = orders.attributes["order_lines"]
    assert isinstance(lines, EmbedMany) and lines.order_by == ("line_no",) and lines.join == {"order_id": "order_id"}
    assert "orders" not in lines.many  # the parent is not embedded back into its own lines
    assert isinstance(lines.many["product"], EmbedOne) and set(lines.many["product"].one) == {"name"}
    tags = product.attributes["product_tags"]
    assert isinstance(tags, EmbedMany) and isinstance(tags.many["tag"], EmbedOne)
    assert "Weird Name" not in mapping.entities["employee"].attributes
    assert "log" not in mapping.entities


def test_what_a_person_must_decide_is_said_where_it_applies():
    text = draft(STORE, OPTIONS)
    assert "# DECIDE: orders shares the partition of its customer" in text
    assert "customer_id may be NULL: such rows have no key and are quarantined" in text
    assert "# DECIDE: (email) is unique" in text
    assert "# DECIDE: log has no primary key" in text
    assert "# DECIDE: column 'Weird Name' is not a name a mapping can hold" in text
    # 80 lines of 2,000 B at the p99 is 156 KB: over the 100 KB the options allow.
    assert "p99 80 (max 160) order_line rows per orders, about 156.2 KB at the p99" in text
    assert "# DECIDE: over 100 KB at the p99" in text
    # One-to-many into an entity from another entity: offered, commented out, with its size.
    assert "# DECIDE: orders rows are an entity of its own; embed them here too if the service reads them" in text
    assert "# orders: {from: shop.orders, join: {customer_id: customer_id}, many: {...}}" in text


def test_a_lookup_copied_into_many_items_or_missing_from_all_is_a_decision():
    one_each = draft(STORE, OPTIONS)
    assert "# DECIDE: each address row" not in one_each and "address rows have no customer" not in one_each
    shared = Catalog(STORE.engine, STORE.schema, STORE.tables, tuple(
        ref("customer", ("address_id",), "address", ("address_id",), p99=4, most=31, parents=80, parent_rows=95)
        if r.key.parent == "address" else r for r in STORE.references))
    text = draft(shared, OPTIONS)
    assert ("# DECIDE: each address row is copied into up to 31 customer items (p99 4): a change to it rewrites "
            "them all. If address changes or is read on its own, draft again with --entities address") in text
    assert ("# DECIDE: 15 of 95 address rows have no customer and are in no item: to keep them, draft again with "
            "--entities address") in text


def test_tables_named_as_entities_are_entities_whatever_their_shape():
    roles = shape(STORE, ("address", "order_line"))
    assert {"address", "order_line"} <= set(roles.entities)
    assert "address" not in roles.lookups and "order_line" not in roles.children
    text = draft(STORE, DraftOptions("shop", "shop_db", "Shop", entities=("address",)))
    mapping = load_mapping_text(text, "d.yaml")
    assert mapping.entities["address"].key == {"PK": "ADDRESS#{address_id:019d}", "SK": "ADDRESS"}
    # The customer now references an entity with a partition of its own, so it shares it: a DECIDE says so.
    assert mapping.entities["customer"].key["PK"] == "ADDRESS#{address_id:019d}"
    assert "# DECIDE: customer shares the partition of its address" in text
    try:
        shape(STORE, ("Address",))
    except ValueError as error:
        assert "--entities: Address not among the tables read" in str(error)
    else:
        raise AssertionError("an unknown table was accepted")
