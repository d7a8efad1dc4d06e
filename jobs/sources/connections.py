"""Source connections: where a mapping's `source.connection` name points, with its credentials.

The password is a pydantic SecretStr from the moment it is read: it is in no repr, error,
report or command line, and comes out only in `Connection.options()`, which the JDBC driver
needs. Credentials come from the environment, a profile file, a Secrets Manager secret or a
Glue connection; the runtime decides which (jobs.runtimes), nothing here writes os.environ.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from jobs import aws
from jobs.sources.dialect import Dialect
from jobs.sources.registry import dialect_for_engine, dialect_for_url
from transforms.errors import SourceError

FETCH_SIZE = "10000"

AwsClientFactory = Callable[[str], Any]  # service name -> boto3 client


@dataclass(frozen=True)
class Connection:
    """A JDBC source; its engine (dialect) follows from the URL's scheme, checked when it is made."""

    name: str
    url: str
    user: str | None = None
    password: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)

    def __post_init__(self) -> None:
        self.dialect  # noqa: B018 - an unknown scheme is an error now, not at the first read

    @property
    def dialect(self) -> Dialect:
        return dialect_for_url(self.url, f"connection '{self.name}'")

    @property
    def engine(self) -> str:
        return self.dialect.name

    @property
    def spark_url(self) -> str:
        return self.dialect.spark_url(self.url)

    @property
    def safe_url(self) -> str:
        """The URL without a password parameter, for messages."""
        return re.sub(r"(password=)[^&;]*", r"\1***", self.url, flags=re.IGNORECASE)

    def options(self) -> dict[str, str]:
        """Spark's JDBC options: URL, driver (always: leaving it out after a read that set it fails), session SQL."""
        dialect = self.dialect
        options = {"url": self.spark_url, "driver": dialect.driver, "sessionInitStatement": dialect.session_sql(),
                   "fetchsize": FETCH_SIZE}
        if self.user:
            options["user"] = self.user
        if self.password.get_secret_value():
            options["password"] = self.password.get_secret_value()
        return options


# --- where a connection name points -----------------------------------------------------------


def profiles_path(environ: Mapping[str, str] = os.environ) -> Path:
    return Path(environ.get("CARVE_PROFILES", Path.home() / ".carve" / "connections.yaml"))


def connection_env_prefix(name: str) -> str:
    """CARVE_CONNECTION_<NAME>: the environment variables that configure connection `name`."""
    return "CARVE_CONNECTION_" + re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def aws_client(service: str) -> Any:
    return aws.client(service)


def resolve_connection(name: str, client_factory: AwsClientFactory = aws_client,
                       environ: Mapping[str, str] = os.environ) -> Connection:
    """Connection `name`, from the first of these that is set:

    - CARVE_CONNECTION_<NAME>_URL (with _USER, _PASSWORD),
    - CARVE_CONNECTION_<NAME>_SECRET_ID: a Secrets Manager secret (RDS-style JSON),
    - CARVE_CONNECTION_<NAME>_GLUE_CONNECTION: a Glue JDBC connection,
    - `name` under `connections:` in the profile file (CARVE_PROFILES).
    """
    prefix = connection_env_prefix(name)
    url = environ.get(prefix + "_URL")
    if url:
        return Connection(name, url, environ.get(prefix + "_USER"), SecretStr(environ.get(prefix + "_PASSWORD", "")))
    secret_id = environ.get(prefix + "_SECRET_ID")
    if secret_id:
        return connection_from_secret(name, secret_id, client_factory)
    glue_connection = environ.get(prefix + "_GLUE_CONNECTION")
    if glue_connection:
        return connection_from_glue(name, glue_connection, client_factory)
    path = profiles_path(environ)
    if path.exists():
        profile = _profile(path, name)
        if profile:
            return Connection(name, str(profile["url"]), profile.get("user"),
                              SecretStr(str(profile.get("password", ""))))
    raise SourceError(
        f"connection '{name}' is not configured: set {prefix}_URL (and {prefix}_USER, {prefix}_PASSWORD), "
        f"{prefix}_SECRET_ID (a Secrets Manager secret) or {prefix}_GLUE_CONNECTION (a Glue connection), "
        f"or add it under 'connections:' in {path}"
    )


def _profile(path: Path, name: str) -> dict[str, Any] | None:
    """Connection `name` of the profile file; its errors name the file and line, never its text (it holds passwords)."""
    try:
        document = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SourceError(f"{where}: the connection profile file is not valid YAML; fix its syntax") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"{path}: cannot read the connection profile file ({type(exc).__name__})") from None
    profile = (document.get("connections") or {}).get(name) if isinstance(document, dict) else None
    if profile is None:
        return None
    if not isinstance(profile, dict) or not profile.get("url"):
        raise SourceError(f"{path}: connections.{name} needs a url (and user, password)")
    return profile


# --- credentials from AWS: Secrets Manager and Glue connections --------------------------------

_SECRET_FIELDS = "store username, password, engine, host, port, dbname (as RDS does) or url, username, password"


def _secret_document(name: str, secret_id: str, client_factory: AwsClientFactory) -> dict[str, Any]:
    where = f"connection '{name}': secret '{secret_id}'"
    with aws.quiet_botocore(), aws.aws_errors(f"{where} cannot be read from Secrets Manager", SourceError):
        response = client_factory("secretsmanager").get_secret_value(SecretId=secret_id)
    text = response.get("SecretString")
    if text is None:
        raise SourceError(f"{where} is binary; carve reads JSON secrets (SecretString)")
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        # Never quote the text: it is the secret.
        raise SourceError(f"{where} is not a JSON object; {_SECRET_FIELDS}")
    return document


def _first(document: dict[str, Any], *keys: str) -> Any:
    return next((document[k] for k in keys if document.get(k) not in (None, "")), None)


def jdbc_url_from_secret(name: str, secret_id: str, document: dict[str, Any]) -> str:
    """The JDBC URL an RDS-style secret describes, or its `url` field."""
    url = _first(document, "url", "jdbc_url", "JDBC_CONNECTION_URL")
    if url:
        return str(url)
    missing = [k for k in ("engine", "host") if not document.get(k)]
    if missing:
        raise SourceError(f"connection '{name}': secret '{secret_id}' lacks {', '.join(missing)}; {_SECRET_FIELDS}")
    dialect = dialect_for_engine(str(document["engine"]), f"connection '{name}': secret '{secret_id}'")
    port = document.get("port") or dialect.default_port
    database = _first(document, "dbname", "database") or ""
    return f"jdbc:{dialect.schemes[0]}://{document['host']}:{port}/{database}"


def connection_from_secret(name: str, secret_id: str, client_factory: AwsClientFactory = aws_client) -> Connection:
    document = _secret_document(name, secret_id, client_factory)
    url = jdbc_url_from_secret(name, secret_id, document)
    user = _first(document, "username", "user")
    password = document.get("password")  # "" is a password (trust authentication), a missing one is not
    if user is None or password is None:
        missing = [k for k, v in (("username", user), ("password", password)) if v is None]
        raise SourceError(f"connection '{name}': secret '{secret_id}' lacks {', '.join(missing)}")
    return Connection(name, url, str(user), SecretStr(str(password)))


def connection_from_glue(name: str, glue_name: str, client_factory: AwsClientFactory = aws_client) -> Connection:
    """A Glue JDBC connection: JDBC_CONNECTION_URL with USERNAME/PASSWORD, or with a secret
    (SECRET_ID, or AuthenticationConfiguration.SecretArn) holding the credentials."""
    where = f"connection '{name}': Glue connection '{glue_name}'"
    with aws.quiet_botocore(), aws.aws_errors(f"{where} cannot be read", SourceError):
        response = client_factory("glue").get_connection(Name=glue_name, HidePassword=False)
    connection = response.get("Connection", {})
    properties = connection.get("ConnectionProperties", {})
    url = properties.get("JDBC_CONNECTION_URL")
    if not url:
        kind = connection.get("ConnectionType", "unknown")
        raise SourceError(f"{where} has no JDBC_CONNECTION_URL (type {kind}); carve reads JDBC connections")
    secret_id = properties.get("SECRET_ID") or connection.get("AuthenticationConfiguration", {}).get("SecretArn")
    if secret_id:
        document = _secret_document(name, secret_id, client_factory)
        user, password = _first(document, "username", "user"), document.get("password")
    else:
        user, password = properties.get("USERNAME"), properties.get("PASSWORD")
    if not user or password is None:
        raise SourceError(f"{where} has no credentials: set USERNAME and PASSWORD, or SECRET_ID")
    return Connection(name, url, str(user), SecretStr(str(password)))


@dataclass(frozen=True)
class SourceCredentials:
    """Where a job's source credentials are kept: a Secrets Manager secret or a Glue connection, by name.

    Neither set: the connection is resolved as the CLI does (CARVE_CONNECTION_<NAME>_*, the
    profile file). Only names travel here, never the credentials themselves.
    """

    secret_id: str | None = None
    glue_connection: str | None = None
    region: str | None = None  # of the Secrets Manager and Glue clients; None: boto3's default

    def connection(self, name: str) -> Connection:
        def client(service: str) -> Any:
            return aws.client(service, region=self.region)

        if self.secret_id:
            return connection_from_secret(name, self.secret_id, client)
        if self.glue_connection:
            return connection_from_glue(name, self.glue_connection, client)
        return resolve_connection(name, client)
