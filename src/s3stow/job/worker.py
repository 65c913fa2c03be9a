"""``JobWorker``: claim items, upload them through the engine, record outcomes.

A heartbeat thread extends this worker's leases every ``lease / 3`` seconds and
updates its row in ``job_workers``. When nothing is claimable the worker waits while
other workers still hold items (their leases may expire if they died) and stops when
every item is done or failed. The upload itself is ``Uploader.upload_planned``:
the same comparison, verification and PostgreSQL ledger as ``upload``, so an item
whose worker died mid-multipart is resumed from the ledger by whoever claims it next.
With ``split_above``, a claimed file at least that large is split into parts that every
worker claims (``job/split.py``); workers serve parts and completions before new items.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from s3stow.errors import TransferError
from s3stow.job.queue import Claimed, JobQueue
from s3stow.job.split import SplitUploads
from s3stow.keys import Target
from s3stow.models import Decision, PlannedUpload, Reason, SourceFile, Status, UploadResult
from s3stow.report.observer import Observer
from s3stow.transfer.engine import Uploader, new_run_id

log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class WorkerStats:
    claimed: int = 0
    done: int = 0
    failed: int = 0
    lost_leases: int = 0
    parts_sent: int = 0


class _Outcomes(Observer):
    def __init__(self) -> None:
        self.by_key: dict[str, tuple[str, str | None, str | None]] = {}

    def on_decision(self, decision: Decision) -> None:
        if decision.reason == Reason.LEDGER_DONE:
            self.by_key[decision.item.key] = ("done", None, None)

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        if result.status == Status.PLANNED:
            return
        state = "done" if result.status == Status.DONE else "failed"
        self.by_key[result.key] = (state, result.error_class, result.error)


class JobWorker:
    """Works one job until it is finished or the worker is stopped."""

    def __init__(
        self,
        queue: JobQueue,
        uploader: Uploader,
        target: Target,
        *,
        batch: int = 64,
        lease: float = 300.0,
        poll: float = 2.0,
        name: str | None = None,
        split_above: int | None = None,
    ) -> None:
        self.queue = queue
        self.uploader = uploader
        self.target = target
        self.batch = batch
        self.lease = lease
        self.poll = poll
        self.name = name or worker_id()
        self.split_above = split_above
        self.split: SplitUploads | None = None
        self._run_id = new_run_id()  # ledger run of this worker's split-upload records
        self.stats = WorkerStats()
        self.outcomes = _Outcomes()
        uploader.add_observer(self.outcomes)

    def run(self) -> WorkerStats:
        stop = self.uploader.stop
        beat_stop = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat, args=(beat_stop,), daemon=True, name="job-heartbeat"
        )
        self._beat()
        beat.start()
        try:
            with ExitStack() as stack:
                if self.split_above is not None:
                    ctx = stack.enter_context(self.uploader.transfer_context(run_id=self._run_id))
                    self.split = SplitUploads(
                        self.queue.split,
                        ctx,
                        self.target,
                        worker=self.name,
                        lease=self.lease,
                        observer=self.uploader.observer,
                    )
                    self._start_split_run()
                while not stop.is_set():
                    if self.split is not None and self._serve_parts():
                        continue
                    claimed = self.queue.claim(self.name, limit=self.batch, lease=self.lease)
                    if not claimed:
                        if self.queue.remaining() == 0:
                            break
                        stop.wait(self.poll)  # others hold items; their leases may expire
                        continue
                    self.stats.claimed += len(claimed)
                    self._work(claimed)
                    if self.uploader.fatal_error is not None:
                        break
        finally:
            beat_stop.set()
            beat.join(timeout=5)
            self.queue.release(self.name)
            if self.split is not None:
                self.stats.parts_sent = self.split.parts_sent
                self.stats.done += self.split.done
                self.stats.failed += self.split.failed
                self._finish_split_run()
            self._beat()
        return self.stats

    def _start_split_run(self) -> None:
        ledger = self.uploader.ledger
        if ledger is not None and not self.uploader.settings.dry_run:
            ledger.start_run(
                self._run_id,
                command="job-parts",
                bucket=self.target.bucket,
                prefix=self.target.prefix,
                sources=[],
                settings=self.uploader.settings.model_dump(mode="json"),
            )

    def _finish_split_run(self) -> None:
        ledger = self.uploader.ledger
        if ledger is not None and not self.uploader.settings.dry_run and self.split is not None:
            ledger.flush()
            ledger.finish_run(
                self._run_id,
                status="done" if not self.split.failed else "failed",
                summary={
                    "parts_sent": self.split.parts_sent,
                    "done": self.split.done,
                    "failed": self.split.failed,
                },
            )

    def _serve_parts(self) -> bool:
        """Complete a split upload or send claimed parts; False when there was neither."""
        assert self.split is not None
        if self.split.complete_ready():
            return True
        limit = max(1, self.uploader.settings.concurrency)
        parts = self.queue.split.claim_parts(self.name, limit=limit, lease=self.lease)
        if parts:
            self.split.work_parts(parts)
        return bool(parts)

    def _open_split(self, item: Claimed, source: SourceFile) -> UploadResult | None:
        """Split a large claimed file into parts for every worker; a result when it
        cannot be (already uploaded, or the upload could not be created)."""
        assert self.split is not None
        ledger = self.uploader.ledger
        if ledger is not None and not self.uploader.settings.force:
            entry = ledger.lookup(self.target.bucket, [item.key]).get(item.key)
            if (
                entry is not None
                and entry.status == Status.DONE
                and (entry.size, entry.mtime_ns) == (source.size, source.mtime_ns)
            ):
                self.outcomes.by_key[item.key] = ("done", None, None)
                return None
        try:
            self.split.open(item.id, source, item.key)
        except TransferError as exc:
            return UploadResult(
                source.path,
                self.target.bucket,
                item.key,
                Status.FAILED,
                error_class=exc.code or "TransferError",
                error=str(exc),
            )
        return None

    def _work(self, claimed: list[Claimed]) -> None:
        items: list[PlannedUpload | UploadResult] = []
        self.outcomes.by_key.clear()
        ids = {c.key: c.id for c in claimed}
        for item in claimed:
            path = Path(item.path)
            try:
                info = path.stat()
            except OSError:
                items.append(
                    UploadResult(
                        path,
                        self.target.bucket,
                        item.key,
                        Status.FAILED,
                        error_class="SourceMissing",
                        error=f"{path} is not readable on this host",
                    )
                )
                continue
            source = SourceFile(
                path, item.rel_path, info.st_size, info.st_mtime_ns, path.parent, item.grp or ""
            )
            if self.split is not None and source.size >= (self.split_above or 0):
                failed = self._open_split(item, source)
                if failed is not None:
                    items.append(failed)
                continue
            items.append(PlannedUpload(source, self.target.bucket, item.key))
        if items:
            # No HEAD per item: the items were just planned and the ledger knows what
            # s3stow uploaded before; a PUT is verified, so trusting it halves requests.
            self.uploader.upload_planned(items, self.target, command="job", check_remote=False)
        results = [
            (ids[key], state, cls, err)
            for key, (state, cls, err) in self.outcomes.by_key.items()
            if key in ids
        ]
        kept = self.queue.record(self.name, results)
        self.stats.lost_leases += len(results) - kept
        self.stats.done += sum(1 for r in results if r[1] == "done")
        self.stats.failed += sum(1 for r in results if r[1] == "failed")

    def _beat(self) -> None:
        try:
            self.queue.heartbeat(
                self.name, lease=self.lease, done=self.stats.done, failed=self.stats.failed
            )
        except Exception as exc:  # noqa: BLE001 - a missed beat is retried; leases are long
            log.warning("job heartbeat failed: %s", exc)

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease / 3):
            self._beat()
