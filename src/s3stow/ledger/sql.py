"""The ``Ledger``: reads item state in batches and writes outcomes in batches.

Writes are queued and committed together by a background flusher (every
``flush_interval`` seconds or ``batch_size`` records), so the ledger is never the
bottleneck; ``flush()`` forces a commit and is called before reading state that
may still be queued, and at the end of a run. The statements are plain SQL that
SQLite and PostgreSQL both run (``database.py`` holds the connections: stdlib
``sqlite3`` for a file, SQLAlchemy + psycopg 3 for ``postgresql://``). SQLite runs
in WAL mode with ``synchronous=NORMAL`` (durable across a process crash); its file
is created with mode 0600.

The first write that fails (disk full, file made read-only, database gone) is
reported once to the ``on_failure`` listeners (the engine stops the run) and the
background flusher stops; what was queued stays queued for one last ``flush()``.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3stow.errors import ConfigError, LedgerError
from s3stow.ledger.database import Database, LedgerReplaced, database_url, open_database
from s3stow.logs import redact
from s3stow.models import PartRecord, Status, UploadResult

__all__ = [
    "ItemRecord",
    "Ledger",
    "LedgerEntry",
    "MultipartState",
    "database_url",
    "open_ledger",
    "open_ledger_database",
    "write_records",
]
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
            f"cannot open the ledger {redact(target)}: {_first_line(exc)}", hint=hint
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
            + (" (a read-only file system)" if _read_only(folder) else ""),
            hint=f"{_PATH_FIX} in a folder you can write, or make {folder} writable",
        )
    if path.exists() and not os.access(path, os.R_OK | os.W_OK):
        raise ConfigError(
            f"the ledger {path} cannot be written: this user cannot read and write it",
            hint=f"make {path} readable and writable for this user, or {_PATH_FIX} of its own",
        )


def _read_only(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False


def _database_errors() -> tuple[type[BaseException], ...]:
    """What opening a ledger can raise (evaluated when an error is being matched, so
    SQLAlchemy's errors are included once SQLAlchemy has been imported)."""
    errors: tuple[type[BaseException], ...] = (OSError, ModuleNotFoundError, sqlite3.Error)
    sqlalchemy_exc = sys.modules.get("sqlalchemy.exc")
    if sqlalchemy_exc is not None:
        errors += (sqlalchemy_exc.SQLAlchemyError,)
    return errors


# The item columns a LedgerEntry is made of, in its field order.
_ENTRY_COLUMNS = (
    "bucket", "key", "source_path", "size", "mtime_ns", "status", "checksum_algorithm",
    "checksum", "etag", "attempts", "error_class", "error_message", "run_id", "store",
)  # fmt: skip
_ENTRY_SELECT = f"SELECT {', '.join(_ENTRY_COLUMNS)} FROM items"
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
                for row in session.fetch_all(_ENTRY_COLUMNS, rest, params):
                    found[row[1]] = _entry_of(row)
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
            yield _entry_of(row)

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
                    _write_batch(session, batch)
            except self.database.errors as exc:
                with self._lock:
                    self._pending[:0] = batch
                error = LedgerError(f"cannot write the ledger: {_first_line(exc)}", hint=_fix(exc))
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
                message = f"cannot {verb} the ledger: {_first_line(exc)}"
                raise LedgerError(message, hint=hint) from exc
            error = LedgerError(f"cannot write the ledger: {_first_line(exc)}", hint=_fix(exc))
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
    _write_batch(session, batch)


def _write_batch(session: Any, batch: list[tuple[str, Any]]) -> None:
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
            "mtime_ns": mtime_ns,
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


def _entry_of(row: tuple[Any, ...]) -> LedgerEntry:
    """A ``LedgerEntry`` from a row of ``_ENTRY_SELECT`` (in ``LedgerEntry`` order)."""
    bucket, key, source_path, size, mtime_ns, status, *rest = row
    return LedgerEntry(bucket, key, source_path, size, mtime_ns, _STATUS[status], *rest)


def default_ledger_path(state_dir: str | os.PathLike[str]) -> str:
    return str(Path(state_dir) / "ledger.db")


def _first_line(exc: BaseException) -> str:
    return redact(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
