"""The SQLite backend of the ledger: stdlib ``sqlite3``, no SQLAlchemy.

``SqliteDatabase`` keeps a small pool of connections in autocommit mode with explicit
``BEGIN IMMEDIATE`` transactions for writes, every one checked to open the file the
first one opened (``LedgerReplaced``); WAL, ``synchronous=NORMAL`` and a patient lock
wait on each (``sqlite_pragmas``). An empty file is created from ``sqlite_ddl``'s
statements and marked; ``marker.check`` runs first, through a read-only connection, so
another program's file is left as it was. ``missing_columns`` tells an older ledger
that needs SQLAlchemy's schema work (``sqlalchemy_backend.create_schema``), and
``engine()`` gives an SQLAlchemy engine on the same file for the reporting queries.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3stow.ledger import marker, sqlite_ddl

if TYPE_CHECKING:
    from s3stow.ledger.database import Rows, Session


def sqlite_pragmas(dbapi_connection: Any, _record: Any = None) -> None:
    """WAL (readers never wait for the writer), fsync at checkpoints only (durable
    across a process crash), and a patient lock wait for concurrent runs."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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
    version = marker.read_version(session) if "s3stow_meta" in tables else None
    (application_id,) = next(session.execute("PRAGMA application_id"))
    empty = marker.check(str(path), tables, version=version, application_id=application_id)
    return empty, version, application_id


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
                marker.mark(session)
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
