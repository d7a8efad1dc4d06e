"""Mapping files: the typed, frozen model, the loader that reports every problem with its line,
and what a mapping reads (its embeds, tables and columns)."""

from transforms.mapping.loader import load_mapping, load_mapping_text, load_yaml_model, located
from transforms.mapping.model import (
    Attribute,
    ColumnAttr,
    DmsS3,
    EmbedMany,
    EmbedOne,
    Entity,
    LiteralAttr,
    Mapping,
    Model,
    MysqlBinlog,
    PostgresLogical,
    TemplateAttr,
    Watermark,
    json_schema,
)
from transforms.mapping.reads import EmbedSite, embeds, referenced_columns, source_id, table_filters

__all__ = [
    "Attribute",
    "ColumnAttr",
    "DmsS3",
    "EmbedMany",
    "EmbedOne",
    "EmbedSite",
    "Entity",
    "LiteralAttr",
    "Mapping",
    "Model",
    "MysqlBinlog",
    "PostgresLogical",
    "TemplateAttr",
    "Watermark",
    "embeds",
    "json_schema",
    "load_mapping",
    "load_mapping_text",
    "load_yaml_model",
    "located",
    "referenced_columns",
    "source_id",
    "table_filters",
]
