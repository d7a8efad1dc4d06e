"""A draft mapping from a catalogue: pure, so every rule below is tested without a database.

The rules, each leaving a `# DECIDE:` comment where a person must choose:

- a link table (its primary key is exactly two foreign keys) is no entity: its rows are embedded
  as a list in the first parent, each with the other parent embedded as a map;
- a child table (a foreign key that is part of its primary key, like order_line(order_id,
  line_no)) is no entity: its rows are embedded as a list in the parent, ordered by the rest of
  its key;
- a lookup table (referenced by exactly one foreign key, referencing nothing) is no entity: it is
  embedded as a map where it is referenced, with a DECIDE where its rows are copied into many
  items or some of them into none;
- a table named in `entities` is an entity whatever the rules above would make of it (how a
  person resolves those DECIDEs: draft again);
- every other table with a primary key is an entity. Its partition key is its own key, or, when
  it references an entity that has its own partition, that entity's (the item collection a
  "their orders" query reads), with a GSI on its own key;
- every other reference becomes a map of the referenced table's first few columns (many-to-one),
  and every reference into an entity from another entity is offered as a commented-out list
  (one-to-many), with the size the list would add at the p99 of children per parent;
- integer keys are zero-padded to their type's width (so they sort as numbers), dates and
  timestamps formatted ISO-like, other keys as text; every column is an attribute, by the type
  table; a table or column whose name a mapping cannot hold is left out, with a comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from jobs.scaffold.catalog import Catalog, Reference, Table
from transforms.templates import IDENTIFIER

INTEGER_WIDTHS = {"tinyint": 3, "smallint": 5, "mediumint": 8, "int": 10, "integer": 10, "bigint": 19}
DATES = {"date"}
TIMESTAMPS = {"timestamp", "datetime", "timestamp with time zone", "timestamp without time zone"}
LABEL_TYPES = {"text", "character varying", "varchar", "character", "char", "citext"}
LABEL_COLUMNS = 3
INDEX = ("GSI1", "GSI1PK", "GSI1SK")


@dataclass(frozen=True)
class DraftOptions:
    name: str
    connection: str
    table: str  # the DynamoDB table
    max_item_kb: int = 100  # an embedded list past this at p99 gets a warning
    entities: tuple[str, ...] = ()  # tables to make entities whatever their shape


@dataclass(frozen=True)
class Shape:
    """Each table's role in the draft."""

    entities: tuple[str, ...]
    children: dict[str, Reference]  # child table -> its identifying reference to the parent
    links: dict[str, tuple[Reference, Reference]]  # link table -> (to the parent that holds it, to the other)
    lookups: dict[str, Reference]  # lookup table -> the one reference to it
    colocated: dict[str, Reference]  # entity -> the reference whose parent's partition it shares
    keyless: tuple[str, ...]


def _nameable(name: str) -> bool:
    return bool(IDENTIFIER.match(name))


def shape(catalog: Catalog, forced: tuple[str, ...] = ()) -> Shape:
    tables = catalog.tables
    unknown = [n for n in forced if n not in tables]
    if unknown:
        raise ValueError(f"--entities: {', '.join(unknown)} not among the tables read "
                         f"({', '.join(tables)}); names are case-sensitive")
    refs = [r for r in catalog.references if r.key.table != r.key.parent]  # a self-reference is kept as its id
    by_table: dict[str, list[Reference]] = {}
    into: dict[str, list[Reference]] = {}
    for ref in refs:
        by_table.setdefault(ref.key.table, []).append(ref)
        into.setdefault(ref.key.parent, []).append(ref)
    keyless = tuple(n for n, t in tables.items() if not t.primary_key)
    links, children, lookups = {}, {}, {}
    for name, table in tables.items():
        mine, key = by_table.get(name, []), set(table.primary_key)
        if not key or name in forced:
            continue
        if len(mine) == 2 and key == set(mine[0].key.columns) | set(mine[1].key.columns) and name not in into:
            links[name] = (mine[0], mine[1])
            continue
        identifying = [r for r in mine if set(r.key.columns) < key]
        if identifying and name not in into:
            children[name] = identifying[0]
    for name in tables:
        incoming = into.get(name, [])
        if (name not in children and name not in links and name not in forced and tables[name].primary_key
                and not by_table.get(name) and len(incoming) == 1 and incoming[0].key.table not in links):
            lookups[name] = incoming[0]
    entities = tuple(n for n, t in tables.items()
                     if t.primary_key and n not in children and n not in links and n not in lookups)
    colocated: dict[str, Reference] = {}
    for name in entities:  # into a parent entity that references no entity itself: no chains
        for ref in by_table.get(name, []):
            parent = ref.key.parent
            parent_refs = [r for r in by_table.get(parent, []) if r.key.parent in entities]
            if (parent in entities and not parent_refs and set(ref.key.parent_columns) == set(tables[parent].primary_key)):
                colocated[name] = ref
                break
    return Shape(entities, children, links, lookups, colocated, keyless)


def key_template(table: Table, columns: tuple[str, ...], rename: dict[str, str] | None = None) -> str:
    """`{col:019d}#{other}`: each column formatted so that the text sorts as the value does."""
    parts = []
    for name in columns:
        column = table.column(name)
        shown = (rename or {}).get(name, name)
        if column.data_type in INTEGER_WIDTHS:
            parts.append(f"{{{shown}:0{INTEGER_WIDTHS[column.data_type]}d}}")
        elif column.data_type in DATES:
            parts.append(f"{{{shown}:%Y-%m-%d}}")
        elif column.data_type in TIMESTAMPS:
            parts.append(f"{{{shown}:%Y-%m-%dT%H:%M:%S}}")
        else:
            parts.append(f"{{{shown}}}")
    return "#".join(parts)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, indent: int, text: str, comment: str = "") -> None:
        body = "  " * indent + text
        self.lines.append(f"{body:<50} # {comment}" if comment else body)

    def decide(self, indent: int, text: str) -> None:
        self.lines.append("  " * indent + f"# DECIDE: {text}")

    def note(self, indent: int, text: str) -> None:
        self.lines.append("  " * indent + f"# {text}")


def draft(catalog: Catalog, options: DraftOptions) -> str:
    """The draft mapping's YAML text; it passes `carve validate` as it is."""
    roles = shape(catalog, options.entities)
    tables = catalog.tables
    out = Writer()
    where = f"{catalog.engine} schema {catalog.schema}" if catalog.schema else f"{catalog.engine} (the connection's database)"
    out.note(0, f"carve scaffold: a draft mapping of {len(tables)} tables from {where}, {date.today().isoformat()}.")
    out.note(0, "Read every DECIDE comment, change what it asks about, and delete it. Then check the result:")
    out.note(0, "carve validate THIS_FILE --against-source, then carve plan THIS_FILE.")
    out.line(0, "version: 1")
    out.line(0, f"name: {options.name}")
    out.line(0, f"source: {{connection: {options.connection}}}")
    out.line(0, "target:")
    out.line(1, f"table: {options.table}")
    out.line(1, "key: {partition: PK, sort: SK}")
    if roles.colocated:
        out.decide(1, f"{INDEX[0]} finds the items that share another entity's partition by their own key")
        out.line(1, "indexes:")
        out.line(2, f"- {{name: {INDEX[0]}, partition: {INDEX[1]}, sort: {INDEX[2]}}}")
    out.line(0, "policy:")
    out.line(1, "nulls: omit", "a NULL column leaves its attribute out")
    out.decide(1, "how many items may be quarantined (bad rows) before the run refuses to write")
    out.line(1, "max_rejected_share: 0.0")
    out.line(0, "entities:")
    for name in roles.entities:
        _entity(out, catalog, roles, tables[name], options)
    for name in roles.keyless:
        out.decide(1, f"{name} has no primary key, so no item key: give it one in the database, or write an "
                      "entity with query: and a key from columns that identify a row")
    for name in catalog.skipped:
        out.note(1, f"{name} was asked for but is not in the schema")
    return "\n".join(out.lines) + "\n"


def _source(catalog: Catalog, table: str) -> str:
    return f"{catalog.schema}.{table}" if catalog.schema else table


def _entity(out: Writer, catalog: Catalog, roles: Shape, table: Table, options: DraftOptions) -> None:
    tables = catalog.tables
    if not _nameable(table.name):
        out.decide(1, f"table {table.name!r} is not a name a mapping can hold: write this entity with "
                      f"query: SELECT ... FROM it, naming its columns")
        return
    upper = table.name.upper()
    rows = f"{table.stats.rows:,} rows" + (f", about {table.stats.row_bytes:,} B each" if table.stats.row_bytes else "")
    out.line(1, f"{table.name.lower()}:", f"{_source(catalog, table.name)}: {rows}")
    out.line(2, f"from: {_source(catalog, table.name)}")
    own = key_template(table, table.primary_key)
    ref = roles.colocated.get(table.name)
    if ref is None:
        out.line(2, f"key: {{PK: {_quoted(f'{upper}#{own}')}, SK: {upper}}}")
    else:
        parent = tables[ref.key.parent]
        rename = dict(zip(ref.key.parent_columns, ref.key.columns, strict=True))
        partition = f"{parent.name.upper()}#{key_template(parent, parent.primary_key, rename)}"
        nullable = [c for c in ref.key.columns if table.column(c).nullable]
        why = f" ({', '.join(nullable)} may be NULL: such rows have no key and are quarantined)" if nullable else ""
        out.decide(2, f"{table.name} shares the partition of its {parent.name} (a {parent.name}'s {table.name} is one "
                      f"Query){why}; give it a partition of its own with PK: \"{upper}#{own}\"")
        out.line(2, f"key: {{PK: {_quoted(partition)}, SK: {_quoted(f'{upper}#{own}')}}}")
        out.line(2, f"indexes: {{{INDEX[1]}: {_quoted(f'{upper}#{own}')}, {INDEX[2]}: {upper}}}")
    for unique in table.uniques:
        out.decide(2, f"({', '.join(unique)}) is unique: if the service looks {table.name} up by it, declare a GSI "
                      "and key it here")
    out.line(2, "attributes:")
    _columns(out, 3, table, set())
    _references(out, 3, catalog, roles, table, options, depth=0)


def _columns(out: Writer, indent: int, table: Table, skip: set[str]) -> None:
    for column in table.columns:
        if column.name in skip:
            continue
        if not _nameable(column.name):
            out.decide(indent, f"column {column.name!r} is not a name a mapping can hold: read the table with "
                               f"query: and SELECT it AS a plain name")
            continue
        name = _yaml_name(column.name)
        out.line(indent, f"{name}: {name}", column.udt + (", nullable" if column.nullable else ""))


def _references(out: Writer, indent: int, catalog: Catalog, roles: Shape, table: Table, options: DraftOptions,
                depth: int, holder: Reference | None = None) -> None:
    """The maps (many-to-one) and lists (one-to-many) an item of `table` holds; `holder` is the
    reference through which the rows are embedded in their parent (not embedded back)."""
    tables = catalog.tables
    used = {c.name for c in table.columns}
    colocated = roles.colocated.get(table.name)
    for ref in catalog.references:
        key = ref.key
        if key.table == table.name and key.parent != table.name and ref is not colocated and ref is not holder:
            parent = tables[key.parent]
            name = _free(f"{key.parent.lower()}_ref" if key.parent in used else key.parent.lower(), used)
            if key.parent in roles.lookups:
                body = [c.name for c in parent.columns if c.name not in parent.primary_key]
                out.note(indent, f"many-to-one: {table.name}.{', '.join(key.columns)} -> {key.parent} "
                                 f"(read only through here, so embedded whole)")
                if ref.children_max > 1:
                    out.decide(indent, f"each {key.parent} row is copied into up to {ref.children_max:,} {table.name} "
                                       f"items (p99 {ref.children_p99:,}): a change to it rewrites them all. If "
                                       f"{key.parent} changes or is read on its own, draft again with --entities "
                                       f"{key.parent}")
                if ref.parent_rows > ref.parents:
                    out.decide(indent, f"{ref.parent_rows - ref.parents:,} of {ref.parent_rows:,} {key.parent} rows "
                                       f"have no {table.name} and are in no item: to keep them, draft again with "
                                       f"--entities {key.parent}")
            else:
                labels = [c.name for c in parent.columns if c.name not in parent.primary_key and c.data_type in LABEL_TYPES]
                body = labels[:LABEL_COLUMNS] or [c.name for c in parent.columns if c.name not in parent.primary_key][:1]
                out.decide(indent, f"a copy of these {key.parent} columns in every {table.name} item: keep what the "
                                   f"service reads with it (the copy goes stale when {key.parent} changes)")
            body = [c for c in body if _nameable(c)]
            if not body or not all(_nameable(c) for c in key.columns + key.parent_columns):
                continue
            out.line(indent, f"{name}:")
            out.line(indent + 1, f"from: {_source(catalog, key.parent)}")
            out.line(indent + 1, f"join: {{{_pairs(key.columns, key.parent_columns)}}}")
            out.line(indent + 1, f"one: {{{', '.join(f'{c}: {c}' for c in body)}}}")
        elif key.parent == table.name and key.table != table.name:
            child = tables[key.table]
            if not child.primary_key or not all(_nameable(c) for c in key.columns + key.parent_columns):
                continue
            embedded = (roles.children.get(key.table) is ref
                        or (key.table in roles.links and roles.links[key.table][0] is ref))
            if not embedded and (depth > 0 or key.table in roles.links):
                continue
            size = ref.children_p99 * child.stats.row_bytes
            warn = size > options.max_item_kb * 1024
            name = _free(f"{key.table.lower()}s" if not key.table.endswith("s") else key.table.lower(), used)
            figures = (f"p99 {ref.children_p99:,} (max {ref.children_max:,}) {key.table} rows per {table.name}, "
                       f"about {_bytes(size)} at the p99")
            if embedded:
                out.note(indent, f"one-to-many: {key.table} rows of each {table.name}, {figures}")
                if warn:
                    out.decide(indent, f"over {options.max_item_kb} KB at the p99: items near 400 KB are refused "
                                       "and cost a write unit per KB; keep fewer columns, keep the latest few (order_by "
                                       f"... desc, limit), or make {key.table} items of their own in this partition: "
                                       f"draft again with --entities {key.table}")
                _list(out, indent, catalog, roles, child, ref, name, options, depth)
            else:
                where = (f"embedded in {roles.children[key.table].key.parent}" if key.table in roles.children
                         else "an entity of its own")
                out.decide(indent, f"{key.table} rows are {where}; embed them here too if the service "
                                   f"reads them with each {table.name} ({figures}"
                                   + (f", over {options.max_item_kb} KB" if warn else "") + "):")
                out.note(indent, f"{name}: {{from: {_source(catalog, key.table)}, "
                                 f"join: {{{_pairs(key.parent_columns, key.columns)}}}, many: {{...}}}}")


def _list(out: Writer, indent: int, catalog: Catalog, roles: Shape, child: Table, ref: Reference, name: str,
          options: DraftOptions, depth: int) -> None:
    key = ref.key
    out.line(indent, f"{name}:")
    out.line(indent + 1, f"from: {_source(catalog, child.name)}")
    out.line(indent + 1, f"join: {{{_pairs(key.parent_columns, key.columns)}}}")
    order = [c for c in child.primary_key if c not in key.columns]
    if order:
        out.line(indent + 1, f"order_by: [{', '.join(order)}]")
    out.line(indent + 1, "many:")
    _columns(out, indent + 2, child, set(key.columns))
    if child.name in roles.links:
        other = roles.links[child.name][1].key
        target = catalog.tables[other.parent]
        body = [c.name for c in target.columns if c.name not in target.primary_key and _nameable(c.name)][:LABEL_COLUMNS]
        out.decide(indent + 2, f"the {other.parent} each {child.name} row links to: keep the columns the service reads")
        out.line(indent + 2, f"{_free(other.parent.lower(), {c.name for c in child.columns})}:")
        out.line(indent + 3, f"from: {_source(catalog, other.parent)}")
        out.line(indent + 3, f"join: {{{_pairs(other.columns, other.parent_columns)}}}")
        out.line(indent + 3, f"one: {{{', '.join(f'{c}: {c}' for c in body)}}}")
    else:
        _references(out, indent + 2, catalog, roles, child, options, depth + 1, holder=ref)


def _bytes(size: float) -> str:
    return f"{size:,.0f} B" if size < 1024 else f"{size / 1024:,.1f} KB"


YAML_WORDS = {"true", "false", "null", "yes", "no", "on", "off", "y", "n"}


def _yaml_name(name: str) -> str:
    """A column name as YAML text: quoted where YAML would read it as a boolean or null."""
    return _quoted(name) if name.lower() in YAML_WORDS else name


def _pairs(left: tuple[str, ...], right: tuple[str, ...]) -> str:
    return ", ".join(f"{a}: {b}" for a, b in zip(left, right, strict=True))


def _free(name: str, used: set[str]) -> str:
    name = re.sub(r"\W", "_", name)
    candidate, n = name, 2
    while candidate in used:
        candidate, n = f"{name}_{n}", n + 1
    used.add(candidate)
    return candidate
