"""``JobLedger``: the ledger as a job worker uses it.

Two differences from ``Ledger``. An item's outcome is not written when the engine
reports it: it is held until the worker records the item in the job queue, which
writes the ledger row in the same transaction that checks the worker still holds the
item, so a worker that lost its lease writes nothing (no ``failed`` over another
worker's ``done``). And every other ledger step (lookups, multipart state, runs) runs
through ``JobDatabase``: retried through dropped connections up to the worker's
patience. Each is safe to run twice (upserts, deletes, reads; a run row is looked up
before it is inserted again).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import Any

from s3stow.errors import LedgerError
from s3stow.job.db import JobDatabase, transient
from s3stow.ledger.database import Database
from s3stow.ledger.rows import ItemRecord, LedgerEntry, MultipartState
from s3stow.ledger.sql import Ledger
from s3stow.models import PartRecord, UploadResult


class JobLedger(Ledger):
    """A worker's ledger: outcomes held for the job queue, steps retried."""

    def __init__(self, database: Database, *, db: JobDatabase) -> None:
        self.db = db
        self._held: dict[tuple[str, str], ItemRecord] = {}
        self._held_lock = threading.Lock()
        super().__init__(database)

    def _failed(self, exc: LedgerError) -> LedgerError:
        """A write that failed on a dropped connection is not the run's end here: every
        step runs through ``JobDatabase.call``, which retries it and stops the worker
        only when the database stays away past its patience."""
        cause = sys.exc_info()[1]  # called while the database's own error is handled
        if cause is not None and transient(cause):
            return exc
        return super()._failed(exc)

    # ---- outcomes: held for the job queue ------------------------------------------------
    def record(
        self,
        result: UploadResult,
        *,
        mtime_ns: int,
        run_id: str,
        group: str | None = None,
        store: str | None = None,
    ) -> None:
        record = ItemRecord(result, mtime_ns, run_id, group, store)
        with self._held_lock:
            self._held[(result.bucket, result.key)] = record

    def clear_held(self) -> None:
        """Forget held outcomes (a new batch starts; none of an earlier one may leak in)."""
        with self._held_lock:
            self._held.clear()

    def take(self, bucket: str, key: str) -> ItemRecord | None:
        """The held outcome of ``key`` (removed: it is written with the item, or not at all)."""
        with self._held_lock:
            return self._held.pop((bucket, key), None)

    # ---- every other step: retried ---------------------------------------------------------
    def start_run(self, run_id: str, **kwargs: Any) -> None:
        tried = False

        def attempt() -> None:
            nonlocal tried
            if tried and super(JobLedger, self).run_info(run_id) is not None:
                return  # the first try committed
            tried = True
            super(JobLedger, self).start_run(run_id, **kwargs)

        self.db.call(attempt, what="ledger: start a run")

    def finish_run(self, run_id: str, *, status: str, summary: dict[str, Any]) -> None:
        self.db.call(
            lambda: super(JobLedger, self).finish_run(run_id, status=status, summary=summary),
            what="ledger: finish a run",
        )

    def lookup(self, bucket: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        return self.db.call(
            lambda: super(JobLedger, self).lookup(bucket, keys), what="ledger: look up items"
        )

    def flush(self) -> None:
        with self._lock:
            if not self._pending:
                return  # the flusher's idle ticks touch no database
        self.db.call(super().flush, what="ledger: write")

    def multipart_state(self, bucket: str, key: str) -> MultipartState | None:
        return self.db.call(
            lambda: super(JobLedger, self).multipart_state(bucket, key),
            what="ledger: read a multipart upload",
        )

    def begin_multipart(self, state: MultipartState) -> None:
        self.db.call(
            lambda: super(JobLedger, self).begin_multipart(state),
            what="ledger: record a multipart upload",
        )

    def record_part(self, upload_id: str, part: PartRecord) -> None:
        self.db.call(
            lambda: super(JobLedger, self).record_part(upload_id, part),
            what="ledger: record a part",
        )

    def forget_multipart(self, bucket: str, key: str) -> None:
        self.db.call(
            lambda: super(JobLedger, self).forget_multipart(bucket, key),
            what="ledger: forget a multipart upload",
        )

    def close(self) -> None:
        """As ``Ledger.close``; with the database given up on, without the last flush."""
        if self.db.unreachable is None:
            super().close()
            return
        self._stop.set()
        self._flusher.join(timeout=5)
        self.database.close()
