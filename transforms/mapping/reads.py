"""What a mapping reads: its embeds (one walk for every caller), its source tables and their columns."""

from __future__ import annotations

import re
from collections.abc import Iterator
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass

from transforms.mapping.model import ColumnAttr, EmbedMany, EmbedOne, Entity, Mapping, TemplateAttr

Loc = tuple[str | int, ...]
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def source_id(entity_name: str, entity: Entity) -> str:
    """The name a source frame goes by: its table, or `query:<entity>` for a query."""
    return entity.from_ if entity.from_ else f"query:{entity_name}"


@dataclass(frozen=True)
class EmbedSite:
    """One embed, wherever it is nested: the frame it joins to, its place in the file, its spec."""

    parent: str  # source id of the rows the embed hangs off
    loc: Loc  # ("entities", "order", "attributes", "lines", "many", "product")
    spec: EmbedOne | EmbedMany


def embeds(mapping: Mapping) -> Iterator[EmbedSite]:
    """Every embed of every entity, parents before their children."""
    for name, entity in mapping.entities.items():
        yield from entity_embeds(name, entity)


def entity_embeds(name: str, entity: Entity) -> Iterator[EmbedSite]:
    return _embeds(source_id(name, entity), entity.attributes, ("entities", name, "attributes"))


def _embeds(parent: str, attributes: MappingABC, loc: Loc) -> Iterator[EmbedSite]:
    for name, spec in attributes.items():
        if isinstance(spec, (EmbedOne, EmbedMany)):
            yield EmbedSite(parent, loc + (name,), spec)
            yield from _embeds(spec.from_, spec.body, loc + (name, spec.body_key))


def table_filters(mapping: Mapping) -> dict[str, list[str | None]]:
    """Every consumer's filter per source table (entities and embeds reading it); queries are not tables."""
    filters: dict[str, list[str | None]] = {}
    for entity in mapping.entities.values():
        if entity.from_:
            filters.setdefault(entity.from_, []).append(entity.filter)
    for site in embeds(mapping):
        filters.setdefault(site.spec.from_, []).append(site.spec.filter)
    return filters


def _words(text: str | None) -> set[str]:
    return set(IDENT.findall(text or ""))


def _direct_columns(attributes: MappingABC) -> set[str]:
    """Columns the attributes themselves name (not their embeds' bodies)."""
    used: set[str] = set()
    for spec in attributes.values():
        if isinstance(spec, ColumnAttr):
            used.add(spec.column)
        elif isinstance(spec, TemplateAttr):
            used |= _words(spec.template)
    return used


def referenced_columns(mapping: Mapping) -> dict[str, set[str]]:
    """Per source frame, the column names the mapping uses (filters are the database's business: it
    evaluates them where the rows are, so their columns need not be read)."""
    used: dict[str, set[str]] = {}
    for name, entity in mapping.entities.items():
        mine = used.setdefault(source_id(name, entity), set())
        for template in [*entity.key.values(), *entity.indexes.values()]:
            mine |= _words(template)
        mine |= _direct_columns(entity.attributes)
    for site in embeds(mapping):
        spec = site.spec
        used.setdefault(site.parent, set()).update(spec.join.keys())
        child = used.setdefault(spec.from_, set())
        child |= set(spec.join.values()) | _direct_columns(spec.body)
        if isinstance(spec, EmbedMany):
            child.update(t.split(" ")[0] for t in spec.order_by or ())
    return used
