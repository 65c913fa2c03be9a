"""What makes a database an s3stow ledger, and whether this version may write it.

A ledger is marked: a SQLite file with ``PRAGMA application_id`` (``APPLICATION_ID``,
the bytes ``s3sT``), and every ledger with a ``schema_version`` row in
``s3stow_meta``. When a ledger is opened, before any request is sent:

- a SQLite file with another program's application id is refused;
- a ledger whose ``schema_version`` is newer than ``SCHEMA_VERSION`` is refused: an
  older s3stow would misread what a newer one wrote;
- a database with some of s3stow's table names but not all of them (another
  program's ``items`` table) is refused, and so is a SQLite file holding only other
  programs' tables (a PostgreSQL database is shared by design: other tables are fine);
- a ledger from before the marker is accepted and marked. Every s3stow version created
  all of ``CORE_TABLES`` at once, so a database holding all six is one of ours; a
  foreign database matching all six names is the one case this cannot tell apart;
- an empty database is created and marked.

The version grows only when a change would make an older s3stow misread the ledger;
added nullable columns (which older versions ignore) do not count.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

from s3stow.errors import LedgerError

if TYPE_CHECKING:
    from s3stow.ledger.database import Session

APPLICATION_ID = int.from_bytes(b"s3sT", "big")
SCHEMA_VERSION = 1
CORE_TABLES = frozenset({"s3stow_meta", "runs", "items", "attempts", "multipart", "parts"})
VERSION_KEY = "schema_version"
READ_VERSION = "SELECT value FROM s3stow_meta WHERE name = :name"
WRITE_VERSION = (
    "INSERT INTO s3stow_meta (name, value) VALUES (:name, :value)"
    " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
)
_HINT = "pass --ledger a new file (s3stow creates it), or the ledger an s3stow run created"


def check(
    name: str,
    tables: Collection[str],
    *,
    version: str | None,
    application_id: int | None = None,
    shared: bool = False,
) -> bool:
    """Raise ``LedgerError`` unless this version may use the database ``name``; return
    True when it holds none of s3stow's tables yet (to be created).

    ``tables``: its table names; ``version``: its ``schema_version`` value, if any;
    ``application_id``: SQLite's header field; ``shared``: other programs' tables are
    expected (PostgreSQL)."""
    if application_id not in (None, 0, APPLICATION_ID):
        raise LedgerError(
            f"{name} is not an s3stow ledger: it is another program's SQLite database "
            f"(application_id 0x{application_id & 0xFFFFFFFF:08x})",
            hint=_HINT,
        )
    tables = {t for t in tables if not t.startswith("sqlite_")}
    ours = CORE_TABLES & tables
    if not ours:
        if tables and not shared:
            listed = ", ".join(sorted(tables)[:5])
            raise LedgerError(
                f"{name} is not an s3stow ledger: it is another program's database "
                f"(tables {listed})",
                hint=_HINT,
            )
        return True
    missing = CORE_TABLES - tables
    if missing:
        raise LedgerError(
            f"{name} is not an s3stow ledger: it has the tables {', '.join(sorted(ours))} "
            f"but not {', '.join(sorted(missing))}",
            hint=_HINT,
        )
    if version is not None:
        if not version.isdigit():
            raise LedgerError(f"{name}: unreadable ledger schema version {version!r}", hint=_HINT)
        if int(version) > SCHEMA_VERSION:
            raise LedgerError(
                f"{name} was written by a newer s3stow (ledger schema {version}; this "
                f"version knows {SCHEMA_VERSION}) and is not changed",
                hint="upgrade s3stow, or pass --ledger another file",
            )
    return False


def needs_mark(version: str | None) -> bool:
    """Whether the ``schema_version`` row must be written (absent or older)."""
    return version is None or int(version) < SCHEMA_VERSION


def read_version(session: Session) -> str | None:
    """The ledger's ``schema_version`` row (``None``: not marked yet)."""
    row = next(session.execute(READ_VERSION, {"name": VERSION_KEY}), None)
    return None if row is None else str(row[0])


def mark(session: Session) -> None:
    """Write this version's ``schema_version`` row."""
    session.execute(WRITE_VERSION, {"name": VERSION_KEY, "value": str(SCHEMA_VERSION)})
