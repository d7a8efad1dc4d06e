"""Load mapping files: every problem found, each with its file, line, field path and a fix."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from transforms.errors import MappingError, Problem
from transforms.mapping.model import EmbedMany, Entity, Mapping
from transforms.mapping.reads import entity_embeds, table_filters
from transforms.templates import template_columns

Loc = tuple[str | int, ...]

KNOWN_KEYS = sorted(
    {
        "version", "name", "description", "source", "connection", "target", "table", "key",
        "partition", "sort", "indexes", "write_rate", "units_per_second", "share_of_capacity", "ttl", "policy", "nulls",
        "duplicates", "out_of_range_numbers", "max_rejected_share", "entities", "from", "query",
        "filter", "attributes", "column", "as", "template", "literal", "join", "one", "many",
        "order_by", "limit",
        # sync
        "sync", "control_table", "lease_seconds", "tables", "watermark", "postgres_logical", "mysql_binlog",
        "dms_s3", "before_image_prefix", "csv_null_value",
        # deploy files (jobs.deploy)
        "region", "bucket", "prefix", "role", "mappings", "job_name_prefix", "worker_type", "workers",
        "timeout_minutes", "max_retries", "connections", "source_secret", "tags",
    }
)


# Limits that keep a hostile or mistaken file from exhausting memory or the stack: a mapping of
# hundreds of tables is far below each.
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64  # nested maps and lists
MAX_VALUES = 200_000  # values after YAML aliases are expanded ("billion laughs" stops here)


def read_text(path: str | Path, what: str = "a mapping file") -> str:
    """The file's text, or a MappingError that says what the file is instead."""
    path = Path(path)

    def refuse(message: str) -> MappingError:
        return MappingError([Problem(str(path), None, "", message)])

    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise refuse(f"cannot read the file: {exc.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise refuse(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB; {what} is a short YAML text")
    if data.startswith(b"\x1f\x8b"):
        raise refuse(f"the file is gzip-compressed; decompress it (gunzip) first: {what} is YAML text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(f"the file is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                     f"{what} is YAML text, saved as UTF-8") from None
    if "\x00" in text:
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise MappingError([Problem(str(path), line, "", f"the file holds a NUL character; {what} is YAML text")])
    return text


def load_mapping(path: str | Path) -> Mapping:
    return load_mapping_text(read_text(path), str(path))


def load_mapping_text(text: str, filename: str) -> Mapping:
    document = _parse_yaml(text, filename)
    try:
        mapping = Mapping.model_validate(_plain(document, filename))
    except ValidationError as exc:
        errors = _without_echoes(exc.errors())
        raise MappingError([_problem(filename, document, err) for err in errors]) from None
    problems = [Problem(filename, line_of(document, loc), format_loc(loc), msg) for loc, msg in check(mapping)]
    if problems:
        raise MappingError(problems)
    return mapping


def load_yaml_model(path: str | Path, model: type[BaseModel], what: str) -> Any:
    """Any other carve file (the deploy file): YAML into `model`, problems as file:line messages."""
    document = _parse_yaml(read_text(path, what), str(path), what)
    try:
        return model.model_validate(_plain(document, str(path)))
    except ValidationError as exc:
        raise MappingError([_problem(str(path), document, err) for err in _without_echoes(exc.errors())]) from None


def _parse_yaml(text: str, filename: str, what: str = "a mapping file") -> CommentedMap:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        document = yaml.load(text)
    except RecursionError:
        raise MappingError([Problem(filename, None, "", f"the YAML is nested too deeply; {what} nests a few levels")]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        reason = (exc.problem or exc.context or "invalid YAML").strip()
        duplicate = re.match(r'found duplicate key "(.*?)"', reason)
        if isinstance(exc, DuplicateKeyError) and duplicate:
            message = f"key '{duplicate[1]}' appears twice in the same map; keep one"
            raise MappingError([Problem(filename, line, "", message)]) from None
        if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
            # The parser notices late: say where the construct it was reading began.
            reason += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        raise MappingError([Problem(filename, line, "", f"YAML syntax: {reason}; fix the file's YAML")]) from None
    except YAMLError as exc:  # the reader's own errors (characters YAML does not allow) carry no mark
        first = str(exc).strip().splitlines()[0]
        raise MappingError([Problem(filename, None, "", f"not YAML text: {first}")]) from None
    if not isinstance(document, CommentedMap):
        raise MappingError([Problem(filename, 1, "", f"{what} is a YAML map starting with 'version: 1'")])
    return document


def _plain(document: Any, filename: str) -> Any:
    """Plain dicts and lists of the YAML document, within MAX_DEPTH and MAX_VALUES."""
    count = 0

    def refuse(message: str) -> MappingError:
        return MappingError([Problem(filename, None, "", message)])

    def plain(node: Any, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > MAX_VALUES:
            raise refuse(f"the file expands to more than {MAX_VALUES:,} values (through YAML aliases?); "
                         "a mapping file is far smaller")
        if depth > MAX_DEPTH:
            raise refuse(f"the YAML is nested more than {MAX_DEPTH} levels deep; a mapping nests a few levels")
        if isinstance(node, dict):
            return {str(k): plain(v, depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [plain(v, depth + 1) for v in node]
        if isinstance(node, str):
            return str(node)
        return node

    return plain(document, 0)


def line_of(document: CommentedMap, loc: Loc) -> int | None:
    """The line of the deepest node on loc that exists in the file (1-based)."""
    node: Any = document
    line = 1
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            break
    return line


def _node_at(document: CommentedMap, loc: Loc) -> Any:
    node: Any = document
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def format_loc(loc: Iterable[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def _clean_loc(loc: Loc) -> Loc:
    # Union tags ('~column') and pydantic's function wrappers are not part of the file.
    return tuple(p for p in loc if not (isinstance(p, str) and (p.startswith("~") or "[" in p)))


def _without_echoes(errors: list[dict]) -> list[dict]:
    """Drop "missing 'column'" where the same map has a typo of it: one mistake, one line."""
    extras = {(_clean_loc(e["loc"])[:-1], str(e["loc"][-1])) for e in errors if e["type"] == "extra_forbidden"}

    def echoed(error: dict) -> bool:
        loc = _clean_loc(error["loc"])
        typos = [name for parent, name in extras if parent == loc[:-1]]
        return error["type"] == "missing" and bool(difflib.get_close_matches(str(loc[-1]), typos, n=1))

    return [e for e in errors if not echoed(e)]


def _problem(filename: str, document: CommentedMap, error: dict) -> Problem:
    loc = _clean_loc(error["loc"])
    if loc and loc[-1] in ("column", "template") and isinstance(_node_at(document, loc[:-1]), str):
        loc = loc[:-1]  # the file used the short form `name: column` or `name: "{template}"`
    return Problem(filename, line_of(document, loc), format_loc(loc), _message(error, loc))


def _message(error: dict, loc: Loc) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    name = loc[-1] if loc else ""
    if kind == "extra_forbidden":
        guess = difflib.get_close_matches(str(name), KNOWN_KEYS, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else "remove it (`carve schema` lists the keys allowed)"
        return f"unknown key '{name}'; {hint}"
    if kind == "missing":
        return f"required key '{name}' is missing; add it"
    if kind == "literal_error" and loc == ("version",):
        return f"version {error['input']} is not one carve reads; write 'version: 1'"
    if kind == "literal_error":
        return f"'{error['input']}' is not allowed; use one of: {ctx.get('expected', '').replace(' or ', ', ')}"
    if kind == "string_pattern_mismatch" and name == "dms_s3":
        return (f"'{error['input']}' is not an S3 folder: write s3://BUCKET/FOLDER/SCHEMA/TABLE/, the folder the DMS "
                "task writes this table to")
    if kind == "string_pattern_mismatch" and (name == "table" or "indexes" in loc):
        what = "table" if name == "table" else "index"
        return f"'{error['input']}' is not a DynamoDB {what} name: 3 to 255 characters of letters, digits, _ . -"
    if kind == "string_pattern_mismatch" and loc == ("name",):
        return f"'{error['input']}' is not a mapping name: a letter, then letters, digits, _ or -"
    if kind in ("greater_than_equal", "less_than_equal") and name == "max_rejected_share":
        return f"{error['input']} is not a share between 0 and 1; write 0.05 for 5%"
    if kind == "too_short":
        return f"'{name}' is empty; give at least one entry"
    if kind == "attribute_shape" and isinstance(error["input"], (bool, int)):
        value = str(error["input"]).lower() if isinstance(error["input"], bool) else error["input"]
        return f"{value} is not an attribute; for a constant write {{literal: {value}}}, for a column write its name"
    if kind == "string_pattern_mismatch":
        return f"'{error['input']}' does not match {ctx.get('pattern')}"
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return "expected a map of key: value here"
    msg = str(error["msg"])
    return msg[:1].lower() + msg[1:]


# --- checks across fields: what the types alone cannot say ------------------------------------


def check(mapping: Mapping) -> Iterator[tuple[Loc, str]]:
    key_names = [n for n in (mapping.target.key.partition, mapping.target.key.sort) if n]
    index_names = [n for ix in mapping.target.indexes for n in (ix.partition, ix.sort) if n]
    yield from _check_index_names(mapping)
    yield from _check_patterns(mapping)
    yield from _check_sync(mapping)
    for name, entity in mapping.entities.items():
        base: Loc = ("entities", name)
        yield from _check_source(entity, base)
        yield from _check_keys(entity.key, key_names, base + ("key",), "the table's key")
        for attr in entity.indexes:
            if attr in key_names:
                yield base + ("indexes", attr), (
                    f"'{attr}' is the table's key, set by key.{attr}; an index keyed on it reads that value. "
                    f"Give the index its own attribute name in target.indexes to key it differently")
            elif attr not in index_names:
                listed = ", ".join(index_names) or "none: declare them in target.indexes"
                yield base + ("indexes", attr), f"'{attr}' is not a key of any index in target.indexes; index keys are: {listed}"
        for attr in entity.attributes:
            if attr in key_names or attr in entity.indexes:
                yield base + ("attributes", attr), f"'{attr}' is already a key attribute; remove it from attributes"
        yield from _check_ttl(mapping, entity, base)
        for site in entity_embeds(name, entity):
            if isinstance(site.spec, EmbedMany) and site.spec.limit and not site.spec.order_by:
                yield site.loc + ("limit",), "a limit without order_by keeps arbitrary rows; add order_by"


def _check_patterns(mapping: Mapping) -> Iterator[tuple[Loc, str]]:
    """Access patterns DynamoDB can answer with GetItem or Query only: a Scan or a missing index is refused."""
    target = mapping.target
    keys = {None: (target.key.partition, target.key.sort)} | {ix.name: (ix.partition, ix.sort) for ix in target.indexes}
    for name, pattern in mapping.patterns.items():
        base: Loc = ("patterns", name)
        if pattern.scan is not None:
            yield base + ("scan",), ("refused: a Scan reads the whole table for every request. Declare the GSI whose key "
                                     "answers this question in target.indexes and use query: {index: ...}")
        if (pattern.get is None) == (pattern.query is None):
            if pattern.scan is None:
                yield base, "a pattern is one operation: get (GetItem) or query (Query); give exactly one"
        elif pattern.get is not None:
            missing = [part for part, attr in (("partition", target.key.partition), ("sort", target.key.sort))
                       if attr and getattr(pattern.get, part) is None]
            if missing:
                yield base + ("get",), (f"GetItem needs the table's whole key ({', '.join(filter(None, keys[None]))}); "
                                        f"{' and '.join(missing)} is missing. With only the partition key, use query")
            if pattern.get.sort is not None and not target.key.sort:
                yield base + ("get", "sort"), "the table has no sort key; remove sort"
        else:
            query = pattern.query
            if query.index is not None and query.index not in keys:
                known = ", ".join(ix.name for ix in target.indexes) or "none"
                yield base + ("query", "index"), (f"refused: the table has no index '{query.index}' (its GSIs: {known}); "
                                                  "a Query on a missing index cannot run. Declare it in target.indexes")
            elif query.partition is None:
                partition = keys[query.index][0]
                yield base + ("query",), (f"refused: without partition ({partition} = value) this would need a Scan; "
                                          "a Query names one partition key value")
            elif query.sort is not None and not keys[query.index][1]:
                where = f"index {query.index}" if query.index else "the table"
                yield base + ("query", "sort"), f"{where} has no sort key; remove sort"
        expect = pattern.expect
        entity = mapping.entities.get(expect.entity)
        if entity is None:
            yield base + ("expect", "entity"), (f"no entity '{expect.entity}'; the entities are "
                                                f"{', '.join(mapping.entities)}")
        elif expect.list is not None and not isinstance(entity.attributes.get(expect.list), EmbedMany):
            lists = [a for a, spec in entity.attributes.items() if isinstance(spec, EmbedMany)]
            yield base + ("expect", "list"), (f"'{expect.list}' is not an embedded list (many) of entity "
                                              f"'{expect.entity}'; its lists: {', '.join(lists) or 'none'}")
        elif expect.list is not None and expect.order_by is None:
            # carve runs the SQL as a subquery, where MariaDB drops an ORDER BY that has no LIMIT.
            yield base + ("expect", "list"), ("a list is compared element by element, in its order: name the columns "
                                              "that order the SQL's rows in expect.order_by (an ORDER BY in the SQL "
                                              "alone is not kept: carve runs it as a subquery)")
        if expect.list is not None and pattern.get is None:
            yield base + ("expect", "list"), "a list is compared within one item: use get"


def _check_sync(mapping: Mapping) -> Iterator[tuple[Loc, str]]:
    """A change source for exactly the tables the mapping reads: a table left out would never be followed."""
    if mapping.sync is None:
        return
    for name, entity in mapping.entities.items():
        if entity.query:
            yield ("entities", name, "query"), ("carve sync follows tables, not queries: read this entity with "
                                                "from: and filter:, or leave sync out of this mapping")
    read = set(table_filters(mapping))
    for table in mapping.sync.tables:
        if table not in read:
            yield ("sync", "tables", table), (f"the mapping does not read {table}; the tables it reads are "
                                              f"{', '.join(sorted(read))}")
    missing = sorted(read - set(mapping.sync.tables))
    if missing:
        yield ("sync", "tables"), (f"no change source for {', '.join(missing)}: a table without one would never be "
                                   "followed. Give each a watermark (a column that only grows; for a table that "
                                   "is never updated its increasing key will do), postgres_logical (PostgreSQL), "
                                   "mysql_binlog (MariaDB, MySQL) or dms_s3 (the files of an AWS DMS task)")
    for kind, what in (("postgres_logical", "replication slot"), ("mysql_binlog", "binlog replica server id")):
        first: tuple[str, object] | None = None  # (table, slot or server id)
        for table, source in mapping.sync.tables.items():
            value = getattr(source, kind, None)
            if value is None:
                continue
            if first is None:
                first = (table, value)
            elif value != first[1]:
                yield ("sync", "tables", table, kind), (
                    f"one {what} per mapping: {first[0]} follows {first[1]}; name the same here")


def _check_index_names(mapping: Mapping) -> Iterator[tuple[Loc, str]]:
    seen: set[str] = set()
    for i, index in enumerate(mapping.target.indexes):
        if index.name in seen:
            yield ("target", "indexes", i, "name"), f"index '{index.name}' is declared twice; give each index its own name"
        seen.add(index.name)


def _check_source(entity: Entity, base: Loc) -> Iterator[tuple[Loc, str]]:
    if (entity.from_ is None) == (entity.query is None):
        yield base, "an entity reads either 'from: schema.table' or 'query: select ...'; give exactly one"


def _check_keys(key: dict, expected: list[str], loc: Loc, what: str) -> Iterator[tuple[Loc, str]]:
    for attr in expected:
        if attr not in key:
            yield loc, f"key attribute '{attr}' is missing; {what} is {', '.join(expected)}"
    for attr, template in key.items():
        if attr not in expected:
            yield loc + (attr,), f"'{attr}' is not in {what} ({', '.join(expected)}); move it to attributes or indexes"
        elif not template_columns(template) and attr == expected[0]:
            yield loc + (attr,), "a partition key made of a constant puts every item in one partition; use a {column}"


def _check_ttl(mapping: Mapping, entity: Entity, base: Loc) -> Iterator[tuple[Loc, str]]:
    ttl = mapping.target.ttl
    attr = entity.attributes.get(ttl) if ttl else None
    if attr is not None and getattr(attr, "as_", None) != "epoch_seconds":
        yield base + ("attributes", ttl), f"'{ttl}' is the table's TTL attribute: give it 'as: epoch_seconds'"


def located(filename: str, errors: Iterable[tuple[Loc, str]]) -> MappingError:
    """Problems found later (against the source) placed on their lines in the file."""
    try:
        document = _parse_yaml(read_text(filename), filename)
    except (OSError, MappingError):
        document = CommentedMap()
    return MappingError([Problem(filename, line_of(document, loc), format_loc(loc), msg) for loc, msg in errors])
