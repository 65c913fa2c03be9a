"""Opening a ledger: a path or database URL to a ``Ledger``, or to its database alone.

A SQLite path that can never hold a ledger (a folder, a path below a file, a folder or
a file this user cannot write) is refused before anything is opened, as a configuration
error (exit 2) naming why and the fix; what the database itself raises while it is
opened is a ``LedgerError`` (exit 3), secrets redacted, with a hint (the PostgreSQL
extra; the path or URL, and a database that accepts connections).
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from s3stow.errors import ConfigError, LedgerError
from s3stow.ledger.database import Database, database_url, open_database
from s3stow.ledger.sql import Ledger, first_line
from s3stow.localfiles import on_read_only_filesystem
from s3stow.logs import redact

__all__ = ["default_ledger_path", "open_ledger", "open_ledger_database"]


def open_ledger(target: str, **kwargs: Any) -> Ledger:
    """Open (creating if needed) the ledger at a path or database URL."""
    return Ledger(open_ledger_database(target), **kwargs)


def open_ledger_database(target: str) -> Database:
    """The database behind a ledger path or URL, its tables created or brought up to date
    (errors as ``LedgerError``, exit 3; a SQLite path that can never hold one, as
    ``ConfigError``, exit 2)."""
    url = database_url(target)
    if url.startswith("sqlite:///"):
        _check_sqlite_path(Path(url[len("sqlite:///") :]))
    try:
        return open_database(target)
    except _database_errors() as exc:
        hint = (
            "PostgreSQL needs the 'postgres' extra: pip install 's3stow[postgres]'"
            if isinstance(exc, ModuleNotFoundError)
            else "check the --ledger path or URL, and that the database accepts connections"
        )
        raise LedgerError(
            f"cannot open the ledger {redact(target)}: {first_line(exc)}", hint=hint
        ) from exc


_PATH_FIX = "give --ledger (or S3STOW_LEDGER, ledger in the config file) a file path"


def _check_sqlite_path(path: Path) -> None:
    """Refuse (exit 2) a SQLite ledger path that can never be one, naming why and the
    fix: a folder, a path below a file, a folder this user cannot write (SQLite writes
    its journals and the run lock beside the file), a file it cannot write. Otherwise
    the OS or SQLite answers "File exists", "Not a directory" or "disk I/O error"."""
    whole = path.absolute()
    if path.is_dir():
        raise ConfigError(
            f"the ledger {path} is a folder, not a file",
            hint=f"{_PATH_FIX}, such as {path / 'ledger.db'}",
        )
    blocker = next((p for p in whole.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise ConfigError(
            f"the ledger {path} cannot be created: {blocker} is a file, not a folder",
            hint=f"{_PATH_FIX} in a folder (one that exists, or that can be created)",
        )
    folder = next(p for p in whole.parents if p.exists())  # the root exists
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(
            f"the ledger {path} cannot be written: this user cannot write in {folder}"
            + (" (a read-only file system)" if on_read_only_filesystem(folder) else ""),
            hint=f"{_PATH_FIX} in a folder you can write, or make {folder} writable",
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(
            f"the ledger {path} cannot be written: this user cannot read and write it",
            hint=f"make {path} readable and writable for this user, or {_PATH_FIX} of its own",
        )


def _database_errors() -> tuple[type[BaseException], ...]:
    """What opening a ledger can raise (evaluated when an error is being matched, so
    SQLAlchemy's errors are included once SQLAlchemy has been imported)."""
    errors: tuple[type[BaseException], ...] = (OSError, ModuleNotFoundError, sqlite3.Error)
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None:
        errors += (sqlalchemy_exc.SQLAlchemyError,)
    return errors


def default_ledger_path(state_dir: str | os.PathLike[str]) -> str:
    return str(Path(state_dir) / "ledger.db")
