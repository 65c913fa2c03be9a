"""The ledger's record of restores: ``RestoreLedger`` over the ``restores`` and
``restore_ranges`` tables.

A finished outcome (restored, failed) is queued and committed in batches, like an
upload's. The state of a ranged download is written at once, durably: the download
id, ETag and range size before the first range is fetched, each range after its
bytes are in the temporary file. So after a crash the next run knows which ranges it
has, and fetches only the others. The statements are plain SQL that SQLite and
PostgreSQL both run, through the ledger's own database connections.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from s3stow.errors import LedgerError
from s3stow.ledger.sql import Ledger
from s3stow.localfiles import stored_ns
from s3stow.logs import redact

_CHUNK = 500
_FIX = (
    "make the ledger writable again (disk space, permissions) and run the same command: "
    "a file restored but not recorded is proven by its checksum, not fetched again"
)
_RESTORE_COMMANDS = ("restore", "restore-run", "archive-restore")


def is_restore_run(command: object) -> bool:
    """Whether a run row's ``command`` is a restore's (``restore``, ``restore --run``'s
    ``restore-run``, ``archive-restore``): it recorded restores, not uploads."""
    return str(command or "") in _RESTORE_COMMANDS


_COLUMNS = (
    "bucket", "key", "path", "size", "mtime_ns", "etag", "status", "tier", "checksum",
    "download_id", "range_size",
)  # fmt: skip
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM restores"
_INSERTED = (*_COLUMNS, "attempts", "error_class", "error_message", "run_id", "created_at")


def _upsert(updated: Sequence[str]) -> str:
    columns = (*_INSERTED, "updated_at")
    return (
        f"INSERT INTO restores ({', '.join(columns)})"
        f" VALUES ({', '.join(':' + c for c in columns)})"
        " ON CONFLICT (bucket, key, path) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in updated)
        + ", attempts = restores.attempts + excluded.attempts"
    )


_OUTCOME = (
    "size", "mtime_ns", "etag", "status", "tier", "checksum", "error_class", "error_message",
    "run_id", "updated_at",
)  # fmt: skip
# a success ends the download; a failure keeps its ranges for the next run to resume
_DONE = _upsert((*_OUTCOME, "download_id", "range_size"))
_FAILED = _upsert(_OUTCOME)
_BEGIN = _upsert(("size", "etag", "status", "download_id", "range_size", "run_id", "updated_at"))
_WHERE_ITEM = "bucket = :bucket AND key = :key AND path = :path"
_ANY_RANGE = "SELECT 1 FROM restore_ranges LIMIT 1"
_DROP_RANGES = (
    "DELETE FROM restore_ranges WHERE download_id IN"
    f" (SELECT download_id FROM restores WHERE {_WHERE_ITEM} AND download_id IS NOT NULL)"
)


@dataclass(frozen=True, slots=True)
class RestoreEntry:
    """The ledger's view of one object restored (or being restored) to one path."""

    bucket: str
    key: str
    path: str
    size: int
    mtime_ns: int
    etag: str | None
    status: str
    tier: str | None
    checksum: str | None
    download_id: str | None
    range_size: int | None


@dataclass(frozen=True, slots=True)
class RestoreRecord:
    """One outcome to record."""

    bucket: str
    key: str
    path: str
    size: int
    status: str  # done | failed
    etag: str | None = None
    mtime_ns: int = 0
    tier: str | None = None
    checksum: str | None = None
    error_class: str | None = None
    error_message: str | None = None


class RestoreLedger:
    """Reads and writes the restore tables of one ledger."""

    def __init__(self, ledger: Ledger, *, flush_interval: float = 0.25, batch: int = 500) -> None:
        self.database = ledger.database
        self._pending: list[tuple[RestoreRecord, str, float]] = []
        self._lock = threading.Lock()
        self._last_flush = time.monotonic()
        self._flush_interval = flush_interval
        self._batch = batch

    # ---- reads ---------------------------------------------------------------------
    def lookup(self, bucket: str, keys: Sequence[str]) -> dict[tuple[str, str], RestoreEntry]:
        """The entries for ``keys`` of ``bucket``, by ``(key, path)``."""
        found: dict[tuple[str, str], RestoreEntry] = {}
        with self._translated("read"), self.database.read() as session:
            for start in range(0, len(keys), _CHUNK):
                chunk = keys[start : start + _CHUNK]
                params: dict[str, Any] = {f"k{i}": key for i, key in enumerate(chunk)}
                params["bucket"] = bucket
                marks = ", ".join(f":k{i}" for i in range(len(chunk)))
                rest = f"FROM restores WHERE bucket = :bucket AND key IN ({marks})"
                for row in session.fetch_all(_COLUMNS, rest, params):
                    entry = RestoreEntry(*row)
                    found[(entry.key, entry.path)] = entry
        return found

    def failed_count(self, *, run_id: str | None = None) -> int:
        """How many restores are recorded failed (of one run, when given)."""
        sql = "SELECT COUNT(*) FROM restores WHERE status = 'failed'"
        params: dict[str, Any] = {}
        if run_id is not None:
            sql += " AND run_id = :run_id"
            params["run_id"] = run_id
        with self._translated("read"), self.database.read() as session:
            (count,) = next(iter(session.execute(sql, params)))
            return int(count)

    def ranges(self, download_id: str) -> list[tuple[int, int, str | None]]:
        """``(first_byte, length, digest)`` of each range the download has written."""
        sql = (
            "SELECT first_byte, length, digest FROM restore_ranges"
            " WHERE download_id = :download_id ORDER BY first_byte"
        )
        with self._translated("read"), self.database.read() as session:
            rows = session.execute(sql, {"download_id": download_id})
            return [(int(first), int(length), digest) for first, length, digest in rows]

    # ---- download state: durable at once ------------------------------------------------
    def begin_download(
        self,
        record: RestoreRecord,
        *,
        download_id: str,
        range_size: int,
        run_id: str,
    ) -> None:
        """Start a ranged download (forgetting the ranges of an earlier one)."""
        row = self._row(record, run_id, time.time())
        row.update(status="downloading", download_id=download_id, range_size=range_size, attempts=0)
        with self._translated("write"), self.database.write() as session:
            session.execute(_DROP_RANGES, _where(record))
            session.execute(_BEGIN, row)

    def record_range(
        self, download_id: str, first_byte: int, length: int, digest: str | None
    ) -> None:
        """A range is in the temporary file: never fetched again by this download."""
        with self._translated("write"), self.database.write() as session:
            session.execute(
                "INSERT INTO restore_ranges (download_id, first_byte, length, digest)"
                " VALUES (:download_id, :first_byte, :length, :digest)"
                " ON CONFLICT (download_id, first_byte) DO UPDATE SET"
                " length = excluded.length, digest = excluded.digest",
                {
                    "download_id": download_id,
                    "first_byte": first_byte,
                    "length": length,
                    "digest": digest,
                },
            )

    def forget_download(self, bucket: str, key: str, path: str) -> None:
        """Drop a download's ranges (its bytes are wrong, or the object changed)."""
        where = {"bucket": bucket, "key": key, "path": path}
        with self._translated("write"), self.database.write() as session:
            session.execute(_DROP_RANGES, where)
            session.execute(
                f"UPDATE restores SET download_id = NULL, range_size = NULL WHERE {_WHERE_ITEM}",
                where,
            )

    # ---- outcomes: batched ----------------------------------------------------------------
    def record(self, record: RestoreRecord, *, run_id: str) -> None:
        """Queue an outcome; committed with the next batch."""
        with self._lock:
            self._pending.append((record, run_id, time.time()))
            due = (
                len(self._pending) >= self._batch
                or time.monotonic() - self._last_flush >= self._flush_interval
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Commit every queued outcome now, in one transaction."""
        with self._lock:
            batch, self._pending = self._pending, []
            self._last_flush = time.monotonic()
        if not batch:
            return
        done = [self._row(r, run_id, at) for r, run_id, at in batch if r.status == "done"]
        failed = [self._row(r, run_id, at) for r, run_id, at in batch if r.status != "done"]
        with self._translated("write"), self.database.write() as session:
            # a finished download's ranges go; only when there are ranges at all (a
            # restore of small objects has none, and this was a statement per object)
            if done and next(session.execute(_ANY_RANGE), None) is not None:
                ends = [_where(r) for r, _, _ in batch if r.status == "done"]
                session.executemany(_DROP_RANGES, ends)
            if done:
                session.executemany(_DONE, done)
            if failed:
                session.executemany(_FAILED, failed)

    # ---- plumbing -------------------------------------------------------------------------
    @staticmethod
    def _row(record: RestoreRecord, run_id: str, at: float) -> dict[str, Any]:
        return {
            "bucket": record.bucket,
            "key": record.key,
            "path": record.path,
            "size": record.size,
            "mtime_ns": stored_ns(record.mtime_ns),
            "etag": record.etag,
            "status": record.status,
            "tier": record.tier,
            "checksum": record.checksum,
            "download_id": None,
            "range_size": None,
            "attempts": 1,
            "error_class": record.error_class,
            "error_message": redact(record.error_message) if record.error_message else None,
            "run_id": run_id,
            "created_at": at,
            "updated_at": at,
        }

    @contextmanager
    def _translated(self, verb: str) -> Iterator[None]:
        try:
            yield
        except self.database.errors as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            message = f"cannot {verb} the ledger's restores: {redact(first)}"
            raise LedgerError(message, hint=_FIX if verb == "write" else None) from exc


def _where(record: RestoreRecord) -> dict[str, str]:
    return {"bucket": record.bucket, "key": record.key, "path": record.path}
