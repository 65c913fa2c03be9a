"""The ledger's rows as values, and the statements that write outcomes and parts.

``LedgerEntry`` is an item row as the ledger reads it (``ENTRY_COLUMNS``, ``entry_of``),
``MultipartState`` an in-progress multipart upload with the parts known done, and
``ItemRecord`` one outcome to write. ``write_batch`` turns a batch of queued outcomes
and parts into the upserts of one transaction, in plain SQL that SQLite and PostgreSQL
both run: the ``Ledger``'s flusher writes through it, and the job queue through
``write_records`` in its own transactions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from s3stow.localfiles import stored_ns
from s3stow.logs import redact
from s3stow.models import PartRecord, Status, UploadResult

__all__ = [
    "ENTRY_COLUMNS",
    "ItemRecord",
    "LedgerEntry",
    "MultipartState",
    "entry_of",
    "write_batch",
    "write_records",
]


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """The ledger's latest view of one object."""

    bucket: str
    key: str
    source_path: str
    size: int
    mtime_ns: int
    status: Status
    checksum_algorithm: str | None
    checksum: str | None
    etag: str | None
    attempts: int
    error_class: str | None
    error_message: str | None
    run_id: str
    store: str | None = None  # the S3 the outcome was reached against (None: not recorded)

    def recorded_on(self, store: str) -> bool:
        """Whether this outcome was reached against ``store`` (``ObjectStore.store_id``):
        a row from another endpoint proves nothing there (the same bucket name, another
        server); a row from before the ledger recorded stores counts as any store's."""
        return self.store is None or self.store == store


@dataclass(frozen=True, slots=True)
class MultipartState:
    """An in-progress multipart upload and the parts the ledger knows are done."""

    bucket: str
    key: str
    upload_id: str
    source_path: str
    size: int
    mtime_ns: int
    part_size: int
    checksum_algorithm: str | None
    ctime_ns: int | None = None  # the file's identity when the upload started
    file_id: str | None = None
    options: str | None = None  # what the upload was created with beyond the bytes
    parts: tuple[PartRecord, ...] = ()


# The item columns a LedgerEntry is made of, in its field order.
ENTRY_COLUMNS = (
    "bucket", "key", "source_path", "size", "mtime_ns", "status", "checksum_algorithm",
    "checksum", "etag", "attempts", "error_class", "error_message", "run_id", "store",
)  # fmt: skip
_ITEM_UPDATED = (
    "source_path", "size", "mtime_ns", "checksum_algorithm", "checksum", "etag",
    "version_id", "status", "grp", "ext", "error_class", "error_message", "run_id",
    "store", "updated_at",
)  # fmt: skip
_ITEM_COLUMNS = ("bucket", "key", *_ITEM_UPDATED[:-1], "attempts", "created_at", "updated_at")
_UPSERT_ITEM = (
    f"INSERT INTO items ({', '.join(_ITEM_COLUMNS)})"
    f" VALUES ({', '.join(':' + c for c in _ITEM_COLUMNS)})"
    " ON CONFLICT (bucket, key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _ITEM_UPDATED)
    + ", attempts = items.attempts + excluded.attempts"
)
_INSERT_ATTEMPT = (
    "INSERT INTO attempts (bucket, key, run_id, status, error_class, error_message, at)"
    " VALUES (:bucket, :key, :run_id, :status, :error_class, :error_message, :at)"
)
_UPSERT_PART = (
    "INSERT INTO parts (upload_id, number, etag, checksum, size)"
    " VALUES (:upload_id, :number, :etag, :checksum, :size)"
    " ON CONFLICT (upload_id, number) DO UPDATE SET"
    " etag = excluded.etag, checksum = excluded.checksum, size = excluded.size"
)


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """One item's outcome as ``Ledger.record`` receives it."""

    result: UploadResult
    mtime_ns: int
    run_id: str
    group: str | None = None
    store: str | None = None  # ``ObjectStore.store_id`` of the S3 it was reached against


def write_records(session: Any, records: Sequence[ItemRecord]) -> None:
    """Write outcomes now, in the caller's transaction (the job queue writes them in the
    transaction that checks the worker still holds the item)."""
    now = time.time()
    batch = [("item", (r.result, r.mtime_ns, r.run_id, now, r.group, r.store)) for r in records]
    write_batch(session, batch)


def write_batch(session: Any, batch: list[tuple[str, Any]]) -> None:
    """One transaction's statements for a batch of queued outcomes and parts."""
    item_rows: dict[tuple[str, str], dict[str, Any]] = {}
    attempt_rows = []
    part_rows: dict[tuple[str, int], dict[str, Any]] = {}
    for kind, payload in batch:
        if kind == "part":
            upload_id, part = payload
            part_rows[(upload_id, part.number)] = {
                "upload_id": upload_id,
                "number": part.number,
                "etag": part.etag,
                "checksum": part.checksum,
                "size": part.size,
            }
            continue
        result, mtime_ns, run_id, now, group, store = payload
        name = result.key.rsplit("/", 1)[-1]
        row = {
            "bucket": result.bucket,
            "key": result.key,
            "source_path": str(result.path),
            "size": result.size,
            "mtime_ns": stored_ns(mtime_ns),
            "checksum_algorithm": result.checksum_algorithm,
            "checksum": result.checksum,
            "etag": result.etag,
            "version_id": result.version_id,
            "status": result.status.value,
            "grp": group,
            "ext": name.rsplit(".", 1)[-1].lower()[:32] if "." in name else "",
            "attempts": result.attempts,
            "error_class": result.error_class,
            "error_message": redact(result.error) if result.error else None,
            "run_id": run_id,
            "store": store,
            "created_at": now,
            "updated_at": now,
        }
        previous = item_rows.get((result.bucket, result.key))
        if previous is not None:
            row["attempts"] += previous["attempts"]
        item_rows[(result.bucket, result.key)] = row
        if result.status in (Status.FAILED, Status.CHANGED):
            attempt_rows.append(
                {
                    "bucket": result.bucket,
                    "key": result.key,
                    "run_id": run_id,
                    "status": result.status.value,
                    "error_class": result.error_class,
                    "error_message": row["error_message"],
                    "at": now,
                }
            )
    if item_rows:
        session.executemany(_UPSERT_ITEM, list(item_rows.values()))
    if attempt_rows:
        session.executemany(_INSERT_ATTEMPT, attempt_rows)
    if part_rows:
        session.executemany(_UPSERT_PART, list(part_rows.values()))


_STATUS = {status.value: status for status in Status}


def entry_of(row: tuple[Any, ...]) -> LedgerEntry:
    """A ``LedgerEntry`` from a row of ``ENTRY_COLUMNS`` (in ``LedgerEntry`` order)."""
    bucket, key, source_path, size, mtime_ns, status, *rest = row
    return LedgerEntry(bucket, key, source_path, size, mtime_ns, _STATUS[status], *rest)
