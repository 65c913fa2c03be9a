"""The ``Ledger``: reads item state in batches and writes outcomes in batches.

Writes are queued and committed together by a background flusher (every
``flush_interval`` seconds or ``batch_size`` records), so the ledger is never the
bottleneck; ``flush()`` forces a commit and is called before reading state that
may still be queued, and at the end of a run. SQLite runs in WAL mode with
``synchronous=NORMAL`` (durable across a process crash); its file is created
with mode 0600. PostgreSQL URLs (``postgresql://``) use psycopg 3.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    create_engine,
    delete,
    event,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.exc import SQLAlchemyError

from s3stow.errors import LedgerError
from s3stow.ledger import schema
from s3stow.logs import redact
from s3stow.models import PartRecord, Status, UploadResult

log = logging.getLogger(__name__)
_LOOKUP_CHUNK = 500


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
    parts: tuple[PartRecord, ...] = ()


def database_url(target: str) -> str:
    """Map a path or URL to an SQLAlchemy URL (``postgresql://`` -> psycopg 3)."""
    if target.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + target.split("://", 1)[1]
    if "://" in target:
        return target
    return "sqlite:///" + str(Path(target).expanduser())


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_ledger(target: str, **kwargs: Any) -> Ledger:
    """Open (creating if needed) the ledger at a path or database URL."""
    url = database_url(target)
    try:
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                path.touch(mode=0o600)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        schema.metadata.create_all(engine)
        _add_missing_columns(engine)
    except (SQLAlchemyError, OSError, ModuleNotFoundError) as exc:
        raise LedgerError(
            f"cannot open the ledger {redact(target)}: {redact(str(exc).splitlines()[0])}",
            hint="check the --ledger path or URL (PostgreSQL needs the 'postgres' extra)",
        ) from exc
    return Ledger(engine, **kwargs)


def _add_missing_columns(engine: Engine) -> None:
    """Additive migration: columns added to the schema since a ledger was created are
    added to its tables (nullable), so an older ledger keeps working."""
    inspector = inspect(engine)
    with engine.begin() as conn:
        for table in schema.metadata.sorted_tables:
            present = {c["name"] for c in inspector.get_columns(table.name)}
            for column in table.columns:
                if column.name not in present:
                    kind = column.type.compile(dialect=engine.dialect)
                    conn.execute(
                        text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
                    )
                    log.info("ledger: added column %s.%s", table.name, column.name)


class Ledger:
    """Batched reads and writes of the ledger tables."""

    def __init__(
        self, engine: Engine, *, flush_interval: float = 0.25, batch_size: int = 1000
    ) -> None:
        self.engine = engine
        self._insert = _upsert_for(engine.dialect.name)
        self._pending: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._flush_interval = flush_interval
        self._batch_size = batch_size
        self._stop = threading.Event()
        self._flusher = threading.Thread(target=self._run_flusher, name="ledger", daemon=True)
        self._flusher.start()

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
            insert(schema.runs).values(
                run_id=run_id,
                command=command,
                bucket=bucket,
                prefix=prefix,
                sources=json.dumps(list(sources)),
                settings=json.dumps(settings, default=str),
                status="running",
                started_at=time.time(),
            )
        )

    def finish_run(self, run_id: str, *, status: str, summary: dict[str, Any]) -> None:
        self.flush()
        self._execute(
            update(schema.runs)
            .where(schema.runs.c.run_id == run_id)
            .values(status=status, finished_at=time.time(), summary=json.dumps(summary))
        )

    def run_info(self, run_id: str) -> dict[str, Any] | None:
        with self._connect() as conn:
            row = conn.execute(select(schema.runs).where(schema.runs.c.run_id == run_id)).first()
        return dict(row._mapping) if row else None

    # ---- items --------------------------------------------------------------
    def lookup(self, bucket: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """Return the entries for ``keys`` in ``bucket`` (missing keys are absent)."""
        found: dict[str, LedgerEntry] = {}
        table = schema.items
        try:
            with self._connect() as conn:
                for start in range(0, len(keys), _LOOKUP_CHUNK):
                    chunk = keys[start : start + _LOOKUP_CHUNK]
                    rows = conn.execute(
                        select(*_ENTRY_COLUMNS).where(
                            table.c.bucket == bucket, table.c.key.in_(chunk)
                        )
                    )
                    for row in rows:  # unpacked by position: a no-op run reads every entry
                        found[row[1]] = _entry_of(row)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot read the ledger: {_first_line(exc)}") from exc
        return found

    def items(
        self, *, statuses: Iterable[Status] | None = None, run_id: str | None = None
    ) -> Iterator[LedgerEntry]:
        self.flush()
        table = schema.items
        query = select(*_ENTRY_COLUMNS).order_by(table.c.id)
        if statuses is not None:
            query = query.where(table.c.status.in_([s.value for s in statuses]))
        if run_id is not None:
            query = query.where(table.c.run_id == run_id)
        with self._connect() as conn:
            for row in conn.execute(query):
                yield _entry_of(row)

    def record(
        self, result: UploadResult, *, mtime_ns: int, run_id: str, group: str | None = None
    ) -> None:
        """Queue the outcome of one item (``group``: its folder type or top directory)."""
        self._queue("item", (result, mtime_ns, run_id, time.time(), group))

    def items_under(self, bucket: str, prefix: str) -> Iterator[LedgerEntry]:
        """Every item of ``bucket`` whose key starts with ``prefix``, by key."""
        self.flush()
        table = schema.items
        query = select(*_ENTRY_COLUMNS).where(table.c.bucket == bucket).order_by(table.c.key)
        if prefix:
            query = query.where(table.c.key.startswith(prefix, autoescape=True))
        with self._connect() as conn:
            for row in conn.execute(query):
                yield _entry_of(row)

    # ---- multipart ------------------------------------------------------------
    def multipart_state(self, bucket: str, key: str) -> MultipartState | None:
        self.flush()
        with self._connect() as conn:
            row = conn.execute(
                select(schema.multipart).where(
                    schema.multipart.c.bucket == bucket, schema.multipart.c.key == key
                )
            ).first()
            if row is None:
                return None
            part_rows = conn.execute(
                select(schema.parts)
                .where(schema.parts.c.upload_id == row.upload_id)
                .order_by(schema.parts.c.number)
            ).all()
        return MultipartState(
            bucket=row.bucket,
            key=row.key,
            upload_id=row.upload_id,
            source_path=row.source_path,
            size=row.size,
            mtime_ns=row.mtime_ns,
            part_size=row.part_size,
            checksum_algorithm=row.checksum_algorithm,
            parts=tuple(PartRecord(p.number, p.etag, p.checksum, p.size) for p in part_rows),
        )

    def begin_multipart(self, state: MultipartState) -> None:
        """Durably record a new upload id before any part is sent."""
        self.forget_multipart(state.bucket, state.key)
        self._execute(
            insert(schema.multipart).values(
                bucket=state.bucket,
                key=state.key,
                upload_id=state.upload_id,
                source_path=state.source_path,
                size=state.size,
                mtime_ns=state.mtime_ns,
                part_size=state.part_size,
                checksum_algorithm=state.checksum_algorithm,
                created_at=time.time(),
            )
        )

    def record_part(self, upload_id: str, part: PartRecord) -> None:
        """Record a completed part durably, now: parts are large and few, and a part
        known to the ledger is never sent again after a crash."""
        self._queue("part", (upload_id, part))
        self.flush()

    def forget_multipart(self, bucket: str, key: str) -> None:
        """Drop the multipart state of ``key`` (after completion or abort)."""
        self.flush()
        with self._write_lock, self._begin() as conn:
            row = conn.execute(
                select(schema.multipart.c.upload_id).where(
                    schema.multipart.c.bucket == bucket, schema.multipart.c.key == key
                )
            ).first()
            if row is not None:
                conn.execute(delete(schema.parts).where(schema.parts.c.upload_id == row.upload_id))
                conn.execute(
                    delete(schema.multipart).where(
                        schema.multipart.c.bucket == bucket, schema.multipart.c.key == key
                    )
                )

    # ---- batching -------------------------------------------------------------
    def _queue(self, kind: str, payload: Any) -> None:
        with self._lock:
            self._pending.append((kind, payload))
            full = len(self._pending) >= self._batch_size
        if full:
            self.flush()

    def _run_flusher(self) -> None:
        while not self._stop.wait(self._flush_interval):
            try:
                self.flush()
            except LedgerError as exc:
                log.error("%s", exc)

    def flush(self) -> None:
        """Commit every queued write now, in one transaction."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                with self._begin() as conn:
                    self._write_batch(conn, batch)
            except SQLAlchemyError as exc:
                with self._lock:
                    self._pending[:0] = batch
                raise LedgerError(
                    f"cannot write the ledger: {redact(str(exc).splitlines()[0])}"
                ) from exc

    def _write_batch(self, conn: Any, batch: list[tuple[str, Any]]) -> None:
        table = schema.items
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
            result, mtime_ns, run_id, now, group = payload
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
            statement = self._insert(table)
            excluded = statement.excluded
            statement = statement.on_conflict_do_update(
                index_elements=[table.c.bucket, table.c.key],
                set_={
                    **{
                        name: excluded[name]
                        for name in (
                            "source_path",
                            "size",
                            "mtime_ns",
                            "checksum_algorithm",
                            "checksum",
                            "etag",
                            "version_id",
                            "status",
                            "grp",
                            "ext",
                            "error_class",
                            "error_message",
                            "run_id",
                            "updated_at",
                        )
                    },
                    "attempts": table.c.attempts + excluded.attempts,
                },
            )
            conn.execute(statement, list(item_rows.values()))
        if attempt_rows:
            conn.execute(insert(schema.attempts), attempt_rows)
        if part_rows:
            statement = self._insert(schema.parts)
            statement = statement.on_conflict_do_update(
                index_elements=[schema.parts.c.upload_id, schema.parts.c.number],
                set_={n: statement.excluded[n] for n in ("etag", "checksum", "size")},
            )
            conn.execute(statement, list(part_rows.values()))

    # ---- plumbing -------------------------------------------------------------
    def _connect(self) -> Any:
        try:
            return self.engine.connect()
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot read the ledger: {redact(str(exc).splitlines()[0])}"
            ) from exc

    def _begin(self) -> Any:
        return self.engine.begin()

    def _execute(self, statement: Any) -> None:
        try:
            with self._write_lock, self._begin() as conn:
                conn.execute(statement)
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot write the ledger: {redact(str(exc).splitlines()[0])}"
            ) from exc

    def close(self) -> None:
        """Flush, stop the flusher and release connections."""
        self._stop.set()
        self._flusher.join(timeout=5)
        self.flush()
        self.engine.dispose()


def _upsert_for(dialect: str) -> Any:
    """The dialect's ``insert`` (with ON CONFLICT), imported only for the dialect in use."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


_ENTRY_COLUMNS = tuple(
    schema.items.c[name]
    for name in (
        "bucket", "key", "source_path", "size", "mtime_ns", "status", "checksum_algorithm",
        "checksum", "etag", "attempts", "error_class", "error_message", "run_id",
    )
)  # fmt: skip
_STATUS = {status.value: status for status in Status}


def _entry_of(row: tuple[Any, ...]) -> LedgerEntry:
    """A ``LedgerEntry`` from a row of ``_ENTRY_COLUMNS`` (in ``LedgerEntry`` order)."""
    bucket, key, source_path, size, mtime_ns, status, *rest = row
    return LedgerEntry(bucket, key, source_path, size, mtime_ns, _STATUS[status], *rest)


def default_ledger_path(state_dir: str | os.PathLike[str]) -> str:
    return str(Path(state_dir) / "ledger.db")


def _first_line(exc: BaseException) -> str:
    return redact(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
