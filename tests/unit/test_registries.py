"""The registries a new engine, sink or conversion is added to: lookups, and errors that name what exists."""

from __future__ import annotations

from typing import get_args

import pytest
from pydantic import SecretStr

from jobs.sinks.registry import SINKS, make_sink, sink_names
from jobs.sources.connections import Connection
from jobs.sources.mysql import MySQLDialect
from jobs.sources.postgres import PostgresDialect
from jobs.sources.registry import dialect_for_engine, dialect_for_url
from transforms.errors import SinkError, SourceError
from transforms.mapping.model import Conversion
from transforms.values import CONVERSIONS


@pytest.mark.parametrize("url, dialect, spark_url", [
    ("jdbc:postgresql://db:5432/store", PostgresDialect, "jdbc:postgresql://db:5432/store"),
    ("jdbc:mysql://db:3306/store", MySQLDialect, "jdbc:mysql://db:3306/store"),
    # Spark picks its MySQL dialect (backtick quoting) only for jdbc:mysql URLs.
    ("jdbc:mariadb://db:3306/store", MySQLDialect, "jdbc:mysql://db:3306/store"),
])
def test_the_dialect_follows_the_url_scheme(url, dialect, spark_url):
    conn = Connection("store", url, "u", SecretStr("p"))
    assert isinstance(conn.dialect, dialect)
    assert conn.spark_url == spark_url
    assert conn.options()["driver"] == dialect.driver


def test_an_unknown_engine_is_refused_when_the_connection_is_made_and_the_known_ones_are_named():
    with pytest.raises(SourceError) as caught:
        Connection("legacy", "jdbc:oracle:thin:@db:1521/ERP", "u", SecretStr("secret-word"))
    message = str(caught.value)
    assert message == ("connection 'legacy': unsupported JDBC URL (jdbc:oracle:); "
                       "carve reads jdbc:postgresql:, jdbc:mysql:, jdbc:mariadb:")
    with pytest.raises(SourceError, match=r"not a jdbc: URL\); carve reads jdbc:postgresql:"):
        dialect_for_url("postgresql://db/store", "connection 'x'")


def test_rds_engine_names_find_their_dialect():
    assert isinstance(dialect_for_engine("aurora-postgresql", "secret"), PostgresDialect)
    assert isinstance(dialect_for_engine("MariaDB", "secret"), MySQLDialect)
    with pytest.raises(SourceError, match="has engine 'oracle-ee'; carve reads aurora, aurora-mysql, "):
        dialect_for_engine("oracle-ee", "connection 'x': secret 's'")


def test_the_sinks_are_found_by_name_and_an_unknown_one_is_named():
    assert sink_names() == ("carve", "glue-connector", "import-s3")
    assert all(SINKS[name].name == name for name in sink_names())
    with pytest.raises(SinkError, match="unknown sink 'spark'; use one of: carve, glue-connector, import-s3"):
        make_sink("spark", context=None)


def test_every_conversion_a_mapping_can_name_has_its_function():
    assert set(get_args(Conversion)) == set(CONVERSIONS)
