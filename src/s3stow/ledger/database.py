"""The ledger's database: the interface the ``Ledger`` uses, and the one behind a path or URL.

``Session`` and ``Database`` are what the ledger needs of a connection and of its
database; ``open_database`` opens the one a ``--ledger`` path or URL names, its schema
created or brought up to date. Two backends implement them: stdlib ``sqlite3`` for a
SQLite file (``sqlite_backend.py``) and SQLAlchemy for PostgreSQL and any other URL
(``sqlalchemy_backend.py``).

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

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from s3stow.ledger.sqlite_backend import SqliteDatabase
from s3stow.logs import register_url_password

Rows = Iterator[tuple[Any, ...]]


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
    """Map a path or URL to an SQLAlchemy URL (``postgresql://`` -> psycopg 3); a URL's
    password becomes a secret every output scrubs."""
    if "://" in target:
        register_url_password(target)
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
            from s3stow.ledger.sqlalchemy_backend import create_schema

            with database.sqlalchemy_engine() as engine:
                create_schema(engine)
        return database
    from s3stow.ledger.sqlalchemy_backend import SqlAlchemyDatabase  # imports SQLAlchemy

    return SqlAlchemyDatabase(url)
