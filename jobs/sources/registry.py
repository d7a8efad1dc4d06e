"""The source engines carve reads, found by JDBC URL scheme or by an RDS secret's engine name."""

from __future__ import annotations

from jobs.sources.dialect import Dialect
from jobs.sources.mysql import MySQLDialect
from jobs.sources.postgres import PostgresDialect
from transforms.errors import SourceError

DIALECTS: tuple[Dialect, ...] = (
    PostgresDialect(),
    MySQLDialect(),
)


def url_scheme(url: str) -> str:
    """'postgresql' of 'jdbc:postgresql://...'; '' when the URL is not jdbc:<scheme>:..."""
    prefix, _, rest = url.partition(":")
    scheme, sep, _ = rest.partition(":")
    return scheme.lower() if prefix == "jdbc" and sep else ""


def known_schemes() -> list[str]:
    return [f"jdbc:{scheme}:" for dialect in DIALECTS for scheme in dialect.schemes]


def dialect_for_url(url: str, where: str) -> Dialect:
    """The dialect of a JDBC URL; `where` names the connection in the error."""
    scheme = url_scheme(url)
    for dialect in DIALECTS:
        if scheme in dialect.schemes:
            return dialect
    shown = f"jdbc:{scheme}:" if scheme else "not a jdbc: URL"
    raise SourceError(f"{where}: unsupported JDBC URL ({shown}); carve reads {', '.join(known_schemes())}")


def dialect_for_engine(engine: str, where: str) -> Dialect:
    """The dialect of an RDS-style secret's `engine` (postgres, aurora-mysql, ...)."""
    for dialect in DIALECTS:
        if engine.lower() in dialect.rds_engines:
            return dialect
    known = sorted(e for dialect in DIALECTS for e in dialect.rds_engines)
    raise SourceError(f"{where} has engine '{engine}'; carve reads {', '.join(known)}")
