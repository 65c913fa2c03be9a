"""Connections to the ledger database: stdlib ``sqlite3`` for a SQLite file,
SQLAlchemy for PostgreSQL (and any other URL).

The ledger's own statements are plain SQL that both SQLite and PostgreSQL accept
(named ``:name`` parameters, ``INSERT ... ON CONFLICT DO UPDATE``), so one text
runs on either backend. A SQLite ledger never imports SQLAlchemy on the upload
path: the import alone costs about 0.2 s of CPU at every start, which is a fifth of
a no-op re-run over 20,000 files. A new SQLite ledger is created from DDL generated
from ``schema.py`` (``sqlite_ddl.py``); SQLAlchemy, where the tables are declared,
is imported only to bring an older ledger up to date, and by ``engine()`` for the
reporting queries. Before either is used, ``marker.check`` refuses another program's
database or a newer s3stow's ledger, and an accepted ledger is marked.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from s3stow.ledger import marker, sqlite_ddl
from s3stow.logs import redact

Rows = Iterator[tuple[Any, ...]]
log = logging.getLogger(__name__)


class Session(Protocol):
    """One connection (or transaction) of the ledger database."""

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Rows: ...

    def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None: ...

    def fetch_all(
        self, columns: Sequence[str], rest: str, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """Every row of ``SELECT <columns> <rest>`` (``rest``: ``FROM ... WHERE ...``, no
        ``ORDER BY``: the rows come in no set order), all at once. For INTEGER and TEXT
        columns (a REAL may come back rounded at its 15th digit)."""
        ...


class Database(Protocol):
    """What the ledger needs of its database."""

    errors: tuple[type[BaseException], ...]

    def read(self) -> Any: ...  # a context manager yielding a Session

    def write(self) -> Any: ...  # a context manager yielding a Session in a transaction

    def engine(self) -> Any: ...  # an SQLAlchemy Engine for the same database

    def close(self) -> None: ...


def database_url(target: str) -> str:
    """Map a path or URL to an SQLAlchemy URL (``postgresql://`` -> psycopg 3)."""
    if target.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + target.split("://", 1)[1]
    if "://" in target:
        return target
    return "sqlite:///" + str(Path(target).expanduser())


def open_database(target: str) -> Database:
    """The database behind a ledger path or URL, its schema created or brought up to date."""
    url = database_url(target)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.touch(mode=0o600)
        SqliteDatabase.check(path)  # before a connection switches the file to WAL
        database = SqliteDatabase(path)
        if not database.create_if_empty() and database.missing_columns():
            with database.sqlalchemy_engine() as engine:
                create_schema(engine)
        return database
    return SqlAlchemyDatabase(url)


def sqlite_pragmas(dbapi_connection: Any, _record: Any = None) -> None:
    """WAL (readers never wait for the writer), fsync at checkpoints only (durable
    across a process crash), and a patient lock wait for concurrent runs."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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


_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table'"


def _columns_of(session: Session, table: str) -> list[str]:
    return [row[1] for row in session.execute(f'PRAGMA table_info("{table}")')]


@cache
def _declared_columns() -> dict[str, list[str]]:
    """The columns ``sqlite_ddl`` declares, read back from an in-memory database."""
    connection = sqlite3.connect(":memory:")
    try:
        for statement in sqlite_ddl.STATEMENTS:
            connection.execute(statement)
        session = _SqliteSession(connection)
        tables = [row[0] for row in connection.execute(_TABLES)]
        return {table: _columns_of(session, table) for table in tables}
    finally:
        connection.close()


def _check(path: Path, session: Session) -> tuple[bool, str | None, int]:
    """``marker.check`` on a SQLite ledger: (empty, schema version, application id)."""
    tables = [row[0] for row in session.execute(_TABLES)]
    version = _version(session) if "s3stow_meta" in tables else None
    (application_id,) = next(session.execute("PRAGMA application_id"))
    empty = marker.check(str(path), tables, version=version, application_id=application_id)
    return empty, version, application_id


def _version(session: Session) -> str | None:
    row = next(session.execute(marker.READ_VERSION, {"name": marker.VERSION_KEY}), None)
    return None if row is None else str(row[0])


def _mark(session: Session) -> None:
    session.execute(
        marker.WRITE_VERSION, {"name": marker.VERSION_KEY, "value": str(marker.SCHEMA_VERSION)}
    )


# What SQLite says when the aggregate form of ``fetch_all`` cannot run: a build without
# the JSON functions, or a BLOB where text was expected; then the rows are stepped one by one.
_NO_JSON = ("no such function", "JSON cannot hold BLOB")


class _SqliteSession:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Rows:
        return iter(self._connection.execute(sql, params or {}))

    def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        self._connection.executemany(sql, rows)

    def fetch_all(
        self, columns: Sequence[str], rest: str, params: Mapping[str, Any]
    ) -> list[tuple[Any, ...]]:
        """The rows as one JSON array built inside SQLite, one step for all of them.

        The sqlite3 module lets go of the GIL around every step: stepping 20,000 rows one
        by one while another thread walks the tree costs each row a hand-off (a no-op
        re-run's 20,000 lookups took 0.45 s of wall time beside a busy thread, 0.07 s
        alone). One aggregate row costs one. JSON keeps INTEGER (64-bit) and TEXT exactly."""
        listed = ", ".join(columns)
        try:
            cursor = self._connection.execute(
                f"SELECT json_group_array(json_array({listed})) {rest}", params
            )
        except sqlite3.OperationalError as exc:
            if not any(text in str(exc) for text in _NO_JSON):
                raise
            rows = self._connection.execute(f"SELECT {listed} {rest}", params)
            return [tuple(row) for row in rows]
        ((document,),) = cursor.fetchall()
        return [tuple(row) for row in json.loads(document)]


class LedgerReplaced(sqlite3.OperationalError):
    """The ledger's path names another file than the one this run opened."""


class SqliteDatabase:
    """A SQLite file through the standard library: a small pool of connections in
    autocommit mode (one per concurrent user, reused, so threads that come and go,
    as in a week-long ``watch``, do not leave connections open), with explicit
    ``BEGIN IMMEDIATE`` transactions for writes.

    Every connection must open the file the first one opened: connections are opened
    by path as they are needed, so a ledger deleted or replaced during a run (its
    run lock beside it going with it) would otherwise take this run's records into
    another run's new file, where that run reads them as done on its own target. A
    new connection that finds another file (device and inode) there is an error."""

    errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._idle: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._engine: Any = None
        self._file: tuple[int, int] | None = None  # (device, inode) of the first connection

    def _same_file(self) -> None:
        """Raise ``LedgerReplaced`` (a ledger write or read error) when the path no
        longer names the file this database's first connection opened."""
        try:
            stat = os.stat(self.path)
            found: tuple[int, int] | None = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            found = None
        with self._lock:
            if self._file is None and found is not None:
                self._file = found
                return
            if found == self._file:
                return
        raise LedgerReplaced(
            f"the ledger file {self.path} was deleted or replaced while this run used it "
            "(by another program or run): nothing more is recorded in the new file"
        )

    @contextmanager
    def _borrow(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            connection = self._idle.pop() if self._idle else None
        if connection is None:
            connection = sqlite3.connect(
                self.path, timeout=30, isolation_level=None, check_same_thread=False
            )
            try:
                self._same_file()  # after connecting: the file this connection opened
            except BaseException:
                connection.close()
                raise
            sqlite_pragmas(connection)
            with self._lock:
                self._all.append(connection)
        try:
            yield connection
        finally:
            if connection.in_transaction:  # a failed COMMIT or ROLLBACK: do not reuse
                with self._lock:
                    self._all.remove(connection)
                connection.close()
            else:
                with self._lock:
                    self._idle.append(connection)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._borrow() as connection:
            yield _SqliteSession(connection)

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._borrow() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteSession(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    @staticmethod
    def check(path: Path) -> None:
        """Refuse a database this version may not use, read through a read-only
        connection: another program's file is left exactly as it was."""
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            _check(path, _SqliteSession(connection))
        finally:
            connection.close()

    def create_if_empty(self) -> bool:
        """Refuse a database that is not a ledger this version may use (``marker``);
        create every table in an empty one (True if it did); mark the ledger."""
        with self.write() as session:
            empty, version, application_id = _check(self.path, session)
            if empty:
                for statement in sqlite_ddl.STATEMENTS:
                    session.execute(statement)
            if application_id != marker.APPLICATION_ID:
                session.execute(f"PRAGMA application_id = {marker.APPLICATION_ID}")
            if empty or marker.needs_mark(version):
                _mark(session)
        return empty

    def missing_columns(self) -> list[str]:
        """``table.column`` of every declared column this database lacks."""
        with self.read() as session:
            missing = []
            for table, columns in _declared_columns().items():
                present = set(_columns_of(session, table))
                missing += [f"{table}.{column}" for column in columns if column not in present]
            return missing

    @contextmanager
    def sqlalchemy_engine(self) -> Iterator[Any]:
        """A short-lived SQLAlchemy engine on the same file (schema work)."""
        engine = self._new_engine()
        try:
            yield engine
        finally:
            engine.dispose()

    def _new_engine(self) -> Any:
        from sqlalchemy import create_engine, event

        engine = create_engine(
            f"sqlite:///{self.path}", connect_args={"check_same_thread": False, "timeout": 30}
        )
        event.listen(engine, "connect", sqlite_pragmas)
        return engine

    def engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                self._engine = self._new_engine()
            return self._engine

    def close(self) -> None:
        with self._lock:
            connections, self._all, self._idle = self._all, [], []
            engine, self._engine = self._engine, None
        for connection in connections:
            connection.close()
        if engine is not None:
            engine.dispose()


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
                version = _version(session)
        marker.check(name, tables, version=version, shared=True)
        create_schema(self._engine)
        if marker.needs_mark(version):
            with self.write() as session:
                _mark(session)

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
