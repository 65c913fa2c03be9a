"""The SQLAlchemy backend of the ledger: PostgreSQL (psycopg 3) and any other URL, and
the schema work on an SQLAlchemy engine.

``SqlAlchemyDatabase`` runs the ledger's plain SQL through a pooled engine (libpq's
timeouts set for a network that fails silently), ``SqlAlchemySession`` over one of its
connections (also the job queue's transactions). ``create_schema`` creates missing
tables and adds the columns declared since a database was made, on PostgreSQL under
one advisory lock (``SCHEMA_LOCK``); an older SQLite ledger is brought up to date
through it too. Imported only for a URL or such a ledger: a SQLite upload never loads
SQLAlchemy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from s3stow.ledger import marker
from s3stow.logs import redact

if TYPE_CHECKING:
    from s3stow.ledger.database import Rows, Session

log = logging.getLogger(__name__)


# One lock for all of s3stow's schema work on a PostgreSQL database: concurrent first
# runs (workers and planners of a job starting together) otherwise race in CREATE TABLE.
SCHEMA_LOCK = 0x5353_7374_6F77  # "SStow"


def create_schema(engine: Any, metadata: Any = None) -> None:
    """Create missing tables, then add columns declared since a database was made.

    On PostgreSQL this runs in one transaction under an advisory lock, so processes
    starting together on an empty database wait for each other instead of failing in
    ``CREATE TABLE``. A new column with a server default gets it (and ``NOT NULL``) on
    existing rows.
    """
    from sqlalchemy import func, inspect, select, text

    if metadata is None:
        from s3stow.ledger.schema import metadata
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(func.pg_advisory_xact_lock(SCHEMA_LOCK)))
        metadata.create_all(conn)
        inspector = inspect(conn)
        for table in metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present:
                    kind = column.type.compile(dialect=conn.dialect)
                    if column.server_default is not None:
                        kind += f" DEFAULT {column.server_default.arg}"
                        kind += "" if column.nullable else " NOT NULL"
                    conn.execute(
                        text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
                    )
                    log.info("database: added column %s.%s", table.name, column.name)


class SqlAlchemySession:
    """A ``Session`` over one SQLAlchemy connection (also the job queue's transactions)."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Rows:
        from sqlalchemy import text

        result = self._connection.execute(text(sql), dict(params or {}))
        return iter(result) if result.returns_rows else iter(())

    def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        from sqlalchemy import text

        self._connection.execute(text(sql), [dict(row) for row in rows])

    def fetch_all(
        self, columns: Sequence[str], rest: str, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.execute(f"SELECT {', '.join(columns)} {rest}", params)]


# libpq's own timeouts for a network that fails silently (a dead router, a black-holed
# route): connecting gives up after ``connect_timeout``; an idle connection is probed by
# TCP keepalives; data left unacknowledged for ``tcp_user_timeout`` ms (Linux) fails the
# connection instead of hanging for the OS's 15 minutes. A value in the URL wins.
_PG_TIMEOUTS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}


def _connect_args(url: str) -> dict[str, Any]:
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return {}
    return {k: v for k, v in _PG_TIMEOUTS.items() if k not in parsed.query}


class SqlAlchemyDatabase:
    """PostgreSQL (psycopg 3) or any other SQLAlchemy URL, through a pooled engine."""

    def __init__(self, url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.exc import SQLAlchemyError

        self.errors: tuple[type[BaseException], ...] = (SQLAlchemyError,)
        self._engine = create_engine(url, pool_pre_ping=True, connect_args=_connect_args(url))
        self._prepare(redact(url))

    def _prepare(self, name: str) -> None:
        """Refuse what this version may not use (``marker``), create or complete the
        tables, and mark the ledger. Other programs' tables may share the database."""
        from sqlalchemy import inspect

        tables = inspect(self._engine).get_table_names()
        version = None
        if "s3stow_meta" in tables:
            with self.read() as session:
                version = marker.read_version(session)
        marker.check(name, tables, version=version, shared=True)
        create_schema(self._engine)
        if marker.needs_mark(version):
            with self.write() as session:
                marker.mark(session)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._engine.connect() as connection:
            yield SqlAlchemySession(connection)

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._engine.begin() as connection:
            yield SqlAlchemySession(connection)

    def engine(self) -> Any:
        return self._engine

    def close(self) -> None:
        self._engine.dispose()
