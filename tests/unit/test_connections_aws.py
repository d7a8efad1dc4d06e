"""Source credentials from Secrets Manager and Glue connections, against a real moto server.

The password must come out in Connection.options() (the JDBC driver needs it) and nowhere
else: not in repr/str, not in errors, not in any log record, botocore's DEBUG included.
"""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from jobs.sources.connections import Connection, connection_env_prefix, resolve_connection
from transforms.errors import SourceError

PASSWORD = "pw-" + uuid.uuid4().hex  # unique, so a leak anywhere is unambiguous


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def env(monkeypatch):
    """Clear every CARVE_CONNECTION_* variable, so only what a test sets is seen."""
    import os

    for name in list(os.environ):
        if name.startswith("CARVE_CONNECTION_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CARVE_PROFILES", "/nonexistent/carve-profiles.yaml")
    return monkeypatch


def assert_no_password(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text


def test_an_rds_secret_becomes_a_jdbc_connection(env, aws_client, caplog):
    secret = unique("carve/db")
    aws_client("secretsmanager").create_secret(Name=secret, SecretString=json.dumps({
        "username": "migrator", "password": PASSWORD, "engine": "postgres", "host": "db.internal",
        "port": 5433, "dbname": "store", "dbInstanceIdentifier": "store-1"}))
    env.setenv(connection_env_prefix("store_db") + "_SECRET_ID", secret)
    caplog.set_level(logging.DEBUG)
    conn = resolve_connection("store_db", aws_client)
    assert (conn.name, conn.url, conn.user) == ("store_db", "jdbc:postgresql://db.internal:5433/store", "migrator")
    assert conn.engine == "postgres"
    assert conn.options()["password"] == PASSWORD
    assert_no_password(repr(conn), str(conn), caplog.text)


@pytest.mark.parametrize("engine, url", [
    ("mariadb", "jdbc:mysql://h:3306/shop"),
    ("aurora-mysql", "jdbc:mysql://h:3306/shop"),
    ("aurora-postgresql", "jdbc:postgresql://h:5432/shop"),
])
def test_rds_engines_map_to_the_two_jdbc_schemes_with_default_ports(env, aws_client, engine, url):
    secret = unique("carve/engine")
    aws_client("secretsmanager").create_secret(Name=secret, SecretString=json.dumps(
        {"username": "u", "password": PASSWORD, "engine": engine, "host": "h", "dbname": "shop"}))
    env.setenv("CARVE_CONNECTION_SHOP_SECRET_ID", secret)
    assert resolve_connection("shop", aws_client).url == url


def test_a_secret_may_hold_a_url_instead(env, aws_client):
    secret = unique("carve/url")
    aws_client("secretsmanager").create_secret(Name=secret, SecretString=json.dumps(
        {"url": "jdbc:mariadb://127.0.0.1:3306/x", "username": "root", "password": PASSWORD}))
    env.setenv("CARVE_CONNECTION_X_SECRET_ID", secret)
    conn = resolve_connection("x", aws_client)
    assert conn.url == "jdbc:mariadb://127.0.0.1:3306/x" and conn.spark_url == "jdbc:mysql://127.0.0.1:3306/x"


def test_a_secret_that_is_not_json_is_refused_without_quoting_it(env, aws_client):
    secret = unique("carve/text")
    aws_client("secretsmanager").create_secret(Name=secret, SecretString=PASSWORD)
    env.setenv("CARVE_CONNECTION_X_SECRET_ID", secret)
    with pytest.raises(SourceError, match=f"secret '{secret}' is not a JSON object") as error:
        resolve_connection("x", aws_client)
    assert_no_password(str(error.value))


def test_a_secret_without_the_fields_names_them(env, aws_client):
    secret = unique("carve/partial")
    aws_client("secretsmanager").create_secret(Name=secret, SecretString=json.dumps(
        {"password": PASSWORD, "engine": "postgres", "host": "h"}))
    env.setenv("CARVE_CONNECTION_X_SECRET_ID", secret)
    with pytest.raises(SourceError, match=f"secret '{secret}' lacks username$") as error:
        resolve_connection("x", aws_client)
    assert_no_password(str(error.value))


def test_a_missing_secret_says_which_and_why(env, aws_client):
    env.setenv("CARVE_CONNECTION_X_SECRET_ID", "carve/does-not-exist")
    with pytest.raises(SourceError, match="secret 'carve/does-not-exist' cannot be read from Secrets Manager: "
                                          "ResourceNotFoundException"):
        resolve_connection("x", aws_client)


def test_a_glue_connection_with_user_and_password(env, aws_client, caplog):
    name = unique("carve-jdbc")
    aws_client("glue").create_connection(ConnectionInput={
        "Name": name, "ConnectionType": "JDBC",
        "ConnectionProperties": {"JDBC_CONNECTION_URL": "jdbc:mysql://10.0.0.5:3306/store", "USERNAME": "etl",
                                 "PASSWORD": PASSWORD}})
    env.setenv("CARVE_CONNECTION_STORE_DB_GLUE_CONNECTION", name)
    caplog.set_level(logging.DEBUG)
    conn = resolve_connection("store_db", aws_client)
    assert (conn.url, conn.user, conn.engine) == ("jdbc:mysql://10.0.0.5:3306/store", "etl", "mysql")
    assert conn.password.get_secret_value() == PASSWORD
    assert_no_password(repr(conn), str(conn), caplog.text)


def test_a_glue_connection_whose_credentials_are_in_a_secret(env, aws_client):
    secret = unique("carve/glue")
    aws_client("secretsmanager").create_secret(Name=secret, SecretString=json.dumps(
        {"username": "etl", "password": PASSWORD}))
    name = unique("carve-jdbc")
    aws_client("glue").create_connection(ConnectionInput={
        "Name": name, "ConnectionType": "JDBC",
        "ConnectionProperties": {"JDBC_CONNECTION_URL": "jdbc:postgresql://db:5432/store", "SECRET_ID": secret}})
    env.setenv("CARVE_CONNECTION_STORE_DB_GLUE_CONNECTION", name)
    conn = resolve_connection("store_db", aws_client)
    assert (conn.url, conn.user, conn.password.get_secret_value()) == ("jdbc:postgresql://db:5432/store", "etl",
                                                                       PASSWORD)


def test_a_glue_connection_that_is_not_jdbc_is_refused(env, aws_client):
    name = unique("carve-net")
    aws_client("glue").create_connection(ConnectionInput={
        "Name": name, "ConnectionType": "NETWORK", "ConnectionProperties": {}})
    env.setenv("CARVE_CONNECTION_X_GLUE_CONNECTION", name)
    with pytest.raises(SourceError, match=f"Glue connection '{name}' has no JDBC_CONNECTION_URL"):
        resolve_connection("x", aws_client)


def test_a_missing_glue_connection(env, aws_client):
    env.setenv("CARVE_CONNECTION_X_GLUE_CONNECTION", "carve-no-such-connection")
    with pytest.raises(SourceError, match="Glue connection 'carve-no-such-connection' cannot be read: "
                                          "EntityNotFoundException"):
        resolve_connection("x", aws_client)


def test_the_url_variables_still_win_and_the_error_lists_every_way(env, aws_client):
    env.setenv("CARVE_CONNECTION_X_URL", "jdbc:postgresql://127.0.0.1:5432/x")
    env.setenv("CARVE_CONNECTION_X_SECRET_ID", "carve/never-read")
    assert resolve_connection("x", aws_client).url == "jdbc:postgresql://127.0.0.1:5432/x"
    with pytest.raises(SourceError) as error:
        resolve_connection("other-db", aws_client)
    message = str(error.value)
    for variable in ("CARVE_CONNECTION_OTHER_DB_URL", "CARVE_CONNECTION_OTHER_DB_SECRET_ID",
                     "CARVE_CONNECTION_OTHER_DB_GLUE_CONNECTION"):
        assert variable in message


def test_a_connection_never_shows_its_password():
    from pydantic import SecretStr

    conn = Connection("x", "jdbc:postgresql://h/db", "u", SecretStr(PASSWORD))
    assert_no_password(repr(conn), str(conn), f"{conn}", f"{conn!r}")
