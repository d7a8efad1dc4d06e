"""Plain driver access to the loopback PostgreSQL and MariaDB, the way an outside reader sees them.

Every session runs in UTC so timestamps compare without the server's zone in between.
"""

from __future__ import annotations

from typing import Any

from jobs.devtools.demo_data import DemoDatabase


def connect(target: DemoDatabase, database: str | None = None) -> Any:
    """A connection to target's database, or to `database` ("" for none on MariaDB)."""
    name = target.database if database is None else database
    if target.engine == "postgres":
        import psycopg

        conn = psycopg.connect(host=target.host, user=target.resolved_user, password=target.password or None,
                               dbname=name, autocommit=True)
        conn.execute("SET TIME ZONE 'UTC'")
        return conn
    import pymysql

    return pymysql.connect(host=target.host, user=target.resolved_user, password=target.password,
                           database=name or None, charset="utf8mb4", autocommit=True,
                           init_command="SET time_zone = '+00:00'")


def query(target: DemoDatabase, statement: str, args: list[Any] | None = None) -> list[tuple[Any, ...]]:
    conn = connect(target)
    try:
        cursor = conn.cursor()
        cursor.execute(statement, args)
        return list(cursor.fetchall()) if cursor.description else []
    finally:
        conn.close()


def drop_database(target: DemoDatabase) -> None:
    if target.engine == "postgres":
        with connect(target, database="postgres") as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        return
    conn = connect(target, database="")
    try:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{target.database}`")
    finally:
        conn.close()


def create_database(target: DemoDatabase) -> None:
    """target's database, empty: dropped first if it exists."""
    drop_database(target)
    if target.engine == "postgres":
        with connect(target, database="postgres") as conn:
            conn.execute(f'CREATE DATABASE "{target.database}"')
        return
    conn = connect(target, database="")
    try:
        conn.cursor().execute(f"CREATE DATABASE `{target.database}` CHARACTER SET utf8mb4")
    finally:
        conn.close()
