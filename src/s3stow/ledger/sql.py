"""The ``Ledger``: reads item state in batches and writes outcomes in batches.

Writes are queued and committed together by a background flusher (every
``flush_interval`` seconds or ``batch_size`` records), so the ledger is never the
bottleneck; ``flush()`` forces a commit and is called before reading state that
may still be queued, and at the end of a run. The statements are plain SQL that
SQLite and PostgreSQL both run (``database.py`` holds the connections: stdlib
``sqlite3`` for a file, SQLAlchemy + psycopg 3 for ``postgresql://``; ``rows.py`` the
rows as values and the statements a batch is written with; ``opening.py`` opens a
ledger). SQLite runs in WAL mode with ``synchronous=NORMAL`` (durable across a process
crash); its file is created with mode 0600.

The first write that fails (disk full, file made read-only, database gone) is
reported once to the ``on_failure`` listeners (the engine stops the run) and the
background flusher stops; what was queued stays queued for one last ``flush()``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from s3stow.errors import LedgerError
from s3stow.ledger.database import Database
from s3stow.ledger.rows import (
    ENTRY_COLUMNS,
    LedgerEntry,
    MultipartState,
    entry_of,
    write_batch,
)
from s3stow.ledger.sqlite_backend import LedgerReplaced
from s3stow.localfiles import stored_ns
from s3stow.logs import redact
from s3stow.models import PartRecord, Status, UploadResult

__all__ = ["Ledger", "first_line"]
log = logging.getLogger(__name__)
_LOOKUP_CHUNK = 500
_FIX = (
    "make the ledger writable again (disk space, permissions) and run the same command: "
    "what was sent but not recorded is proven by checksum, not sent again"
)
_REPLACED = (
    "give each run that may overlap a ledger of its own, and never delete a ledger (or its "
    ".lock file) while a run uses it; run the same command again: what was sent but not "
    "recorded is proven by checksum, not sent again"
)


def _fix(exc: BaseException) -> str:
    """The hint for a failed ledger write."""
    return _REPLACED if isinstance(exc, LedgerReplaced) else _FIX


_ENTRY_SELECT = f"SELECT {', '.join(ENTRY_COLUMNS)} FROM items"
_RUN_COLUMNS = (
    "run_id", "command", "bucket", "prefix", "sources", "settings", "status", "started_at",
    "finished_at", "summary",
)  # fmt: skip
_MULTIPART_COLUMNS = (
    "bucket", "key", "upload_id", "source_path", "size", "mtime_ns", "part_size",
    "checksum_algorithm", "ctime_ns", "file_id", "options",
)  # fmt: skip


class Ledger:
    """Batched reads and writes of the ledger tables."""

    def __init__(
        self, database: Database, *, flush_interval: float = 0.25, batch_size: int = 1000
    ) -> None:
        self.database = database
        self._pending: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._stop = threading.Event()
        self.failure: LedgerError | None = None  # the first failed write
        self._listeners: list[Callable[[LedgerError], None]] = []
        self._flusher = threading.Thread(target=self._run_flusher, name="ledger", daemon=True)
        self._flusher.start()

    def on_failure(self, listener: Callable[[LedgerError], None]) -> None:
        """Call ``listener`` (from the failing thread) when a write first fails."""
        self._listeners.append(listener)

    def _failed(self, exc: LedgerError) -> LedgerError:
        with self._lock:
            first, self.failure = self.failure is None, self.failure or exc
        if first:
            log.error("%s; stopping: requests in flight finish, nothing new starts", exc.message)
            for listener in list(self._listeners):
                listener(exc)
        return exc

    @property
    def engine(self) -> Any:
        """An SQLAlchemy engine on the ledger's database (reports and the job queue)."""
        return self.database.engine()

    # ---- runs ---------------------------------------------------------------
    def start_run(
        self,
        run_id: str,
        *,
        command: str,
        bucket: str,
        prefix: str,
        sources: Sequence[str],
        settings: dict[str, Any],
    ) -> None:
        self._execute(
            "INSERT INTO runs (run_id, command, bucket, prefix, sources, settings, status,"
            " started_at) VALUES (:run_id, :command, :bucket, :prefix, :sources, :settings,"
            " 'running', :started_at)",
            {
                "run_id": run_id,
                "command": command,
                "bucket": bucket,
                "prefix": prefix,
                "sources": json.dumps(list(sources)),
                # never a secret: a database password in a ledger URL, credentials in an
                # endpoint URL (``run_settings`` does not take redacted values back)
                "settings": redact(json.dumps(settings, default=str)),
                "started_at": time.time(),
            },
        )

    def finish_run(self, run_id: str, *, status: str, summary: dict[str, Any]) -> None:
        self.flush()
        self._execute(
            "UPDATE runs SET status = :status, finished_at = :finished_at, summary = :summary"
            " WHERE run_id = :run_id",
            {
                "run_id": run_id,
                "status": status,
                "finished_at": time.time(),
                "summary": json.dumps(summary),
            },
        )

    def run_info(self, run_id: str) -> dict[str, Any] | None:
        sql = f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs WHERE run_id = :run_id"
        rows = self._read(sql, {"run_id": run_id})
        return dict(zip(_RUN_COLUMNS, rows[0], strict=True)) if rows else None

    def batches(self, run_id: str) -> list[dict[str, Any]]:
        """The runs a ``watch`` recorded for its batches, ``<run_id>.<n>``, in order."""
        escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        sql = (
            f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs"
            " WHERE run_id LIKE :pattern ESCAPE '\\' ORDER BY started_at, run_id"
        )
        rows = self._read(sql, {"pattern": f"{escaped}.%"})
        return [dict(zip(_RUN_COLUMNS, row, strict=True)) for row in rows]

    # ---- items --------------------------------------------------------------
    def lookup(self, bucket: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """Return the entries for ``keys`` in ``bucket`` (missing keys are absent)."""
        found: dict[str, LedgerEntry] = {}
        with self._translated("read"), self.database.read() as session:
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start : start + _LOOKUP_CHUNK]
                params: dict[str, Any] = {f"k{i}": key for i, key in enumerate(chunk)}
                params["bucket"] = bucket
                marks = ", ".join(f":k{i}" for i in range(len(chunk)))
                rest = f"FROM items WHERE bucket = :bucket AND key IN ({marks})"
                for row in session.fetch_all(ENTRY_COLUMNS, rest, params):
                    found[row[1]] = entry_of(row)
        return found

    def items(
        self, *, statuses: Iterable[Status] | None = None, run_id: str | None = None
    ) -> Iterator[LedgerEntry]:
        self.flush()
        where: list[str] = []
        params: dict[str, Any] = {}
        if statuses is not None:
            names = [status.value for status in statuses]
            params.update({f"s{i}": name for i, name in enumerate(names)})
            marks = ", ".join(f":s{i}" for i in range(len(names))) or "NULL"
            where.append(f"status IN ({marks})")
        if run_id is not None:
            where.append("run_id = :run_id")
            params["run_id"] = run_id
        sql = _ENTRY_SELECT + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        yield from self._entries(sql, params)

    def record(
        self,
        result: UploadResult,
        *,
        mtime_ns: int,
        run_id: str,
        group: str | None = None,
        store: str | None = None,
    ) -> None:
        """Queue the outcome of one item (``group``: its folder type or top directory;
        ``store``: the S3 it was reached against, ``ObjectStore.store_id``)."""
        self._queue("item", (result, mtime_ns, run_id, time.time(), group, store))

    def forget(self, entries: Sequence[LedgerEntry]) -> int:
        """Delete the rows of ``entries`` that are still failed or changed (``retry
        --forget``), in one transaction; how many went. A row that became done since it
        was read is kept; the ``attempts`` history and any multipart state are kept."""
        self.flush()
        where = " WHERE bucket = :bucket AND key = :key AND status IN ('failed', 'changed')"
        gone = 0
        with self._translated("write"), self._write_lock, self.database.write() as session:
            for entry in entries:
                params = {"bucket": entry.bucket, "key": entry.key}
                if next(iter(session.execute("SELECT 1 FROM items" + where, params)), None):
                    session.execute("DELETE FROM items" + where, params)
                    gone += 1
        return gone

    def items_under(self, bucket: str, prefix: str) -> Iterator[LedgerEntry]:
        """Every item of ``bucket`` whose key starts with ``prefix``, by key."""
        self.flush()
        sql = _ENTRY_SELECT + " WHERE bucket = :bucket"
        params: dict[str, Any] = {"bucket": bucket}
        if prefix:  # not LIKE: SQLite's LIKE ignores ASCII case
            sql += " AND substr(key, 1, :prefix_length) = :prefix"
            params.update(prefix=prefix, prefix_length=len(prefix))
        yield from self._entries(sql + " ORDER BY key", params)

    def _entries(self, sql: str, params: dict[str, Any]) -> Iterator[LedgerEntry]:
        for row in self._read(sql, params):
            yield entry_of(row)

    # ---- multipart ------------------------------------------------------------
    def multipart_state(self, bucket: str, key: str) -> MultipartState | None:
        self.flush()
        sql = (
            f"SELECT {', '.join(_MULTIPART_COLUMNS)} FROM multipart"
            " WHERE bucket = :bucket AND key = :key"
        )
        with self._translated("read"), self.database.read() as session:
            row = next(session.execute(sql, {"bucket": bucket, "key": key}), None)
            if row is None:
                return None
            part_rows = list(
                session.execute(
                    "SELECT number, etag, checksum, size FROM parts"
                    " WHERE upload_id = :upload_id ORDER BY number",
                    {"upload_id": row[2]},
                )
            )
        state = dict(zip(_MULTIPART_COLUMNS, row, strict=True))
        return MultipartState(**state, parts=tuple(PartRecord(*part) for part in part_rows))

    def begin_multipart(self, state: MultipartState) -> None:
        """Durably record a new upload id before any part is sent."""
        self.forget_multipart(state.bucket, state.key)
        columns = (*_MULTIPART_COLUMNS, "created_at")
        self._execute(
            f"INSERT INTO multipart ({', '.join(columns)})"
            f" VALUES ({', '.join(':' + c for c in columns)})",
            {
                **{name: getattr(state, name) for name in _MULTIPART_COLUMNS},
                "mtime_ns": stored_ns(state.mtime_ns),
                "ctime_ns": None if state.ctime_ns is None else stored_ns(state.ctime_ns),
                "created_at": time.time(),
            },
        )

    def record_part(self, upload_id: str, part: PartRecord) -> None:
        """Record a completed part durably, now: parts are large and few, and a part
        known to the ledger is never sent again after a crash."""
        self._queue("part", (upload_id, part))
        self.flush()

    def forget_multipart(self, bucket: str, key: str) -> None:
        """Drop the multipart state of ``key`` (after completion or abort)."""
        self.flush()
        where = {"bucket": bucket, "key": key}
        with self._translated("write"), self._write_lock, self.database.write() as session:
            session.execute(
                "DELETE FROM parts WHERE upload_id IN (SELECT upload_id FROM multipart"
                " WHERE bucket = :bucket AND key = :key)",
                where,
            )
            session.execute("DELETE FROM multipart WHERE bucket = :bucket AND key = :key", where)

    # ---- batching -------------------------------------------------------------
    def _queue(self, kind: str, payload: Any) -> None:
        with self._lock:
            self._pending.append((kind, payload))
            full = len(self._pending) >= self._batch_size and self.failure is None
        if full:  # a failure is reported to the listeners; the rows stay queued
            with suppress(LedgerError):
                self.flush()

    def _run_flusher(self) -> None:
        while not self._stop.wait(self._flush_interval):
            try:
                self.flush()
            except LedgerError:
                return  # reported once; the final flush() tries again

    def flush(self) -> None:
        """Commit every queued write now, in one transaction."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                with self.database.write() as session:
                    write_batch(session, batch)
            except self.database.errors as exc:
                with self._lock:
                    self._pending[:0] = batch
                error = LedgerError(f"cannot write the ledger: {first_line(exc)}", hint=_fix(exc))
                raise self._failed(error) from exc

    # ---- plumbing -------------------------------------------------------------
    def _read(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        with self._translated("read"), self.database.read() as session:
            return list(session.execute(sql, params))

    def _execute(self, sql: str, params: dict[str, Any]) -> None:
        with self._translated("write"), self._write_lock, self.database.write() as session:
            session.execute(sql, params)

    @contextmanager
    def _translated(self, verb: str) -> Iterator[None]:
        """The database's own errors as ``LedgerError`` (secrets redacted); a failed
        write is also reported to the ``on_failure`` listeners."""
        try:
            yield
        except self.database.errors as exc:
            if verb != "write":
                hint = _REPLACED if isinstance(exc, LedgerReplaced) else None
                message = f"cannot {verb} the ledger: {first_line(exc)}"
                raise LedgerError(message, hint=hint) from exc
            error = LedgerError(f"cannot write the ledger: {first_line(exc)}", hint=_fix(exc))
            raise self._failed(error) from exc

    def close(self) -> None:
        """Flush, stop the flusher and release connections. After a write failure
        already reported, a last flush that fails again is not raised twice."""
        self._stop.set()
        self._flusher.join(timeout=5)
        reported = self.failure is not None
        try:
            self.flush()
        except LedgerError:
            if not reported:
                raise
        finally:
            self.database.close()


def first_line(exc: BaseException) -> str:
    """An error's first line, secrets redacted (its class name when it says nothing)."""
    return redact(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
