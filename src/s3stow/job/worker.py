"""``JobWorker``: claim items, upload them through the engine, record outcomes.

A heartbeat thread extends this worker's leases every ``lease / 3`` seconds and
updates its row in ``job_workers``. Before claiming new items the worker serves split
uploads (``split.py``): uploads left to abort, completions and restarts, parts. When
nothing is claimable it waits while other workers still hold work (their leases may
expire if they died) and stops when every item is done, failed or gone. The upload
itself is ``Uploader.upload_planned``: the same comparison, verification and ledger as
``upload``, so an item whose worker died mid-multipart is resumed from the ledger by
whoever claims it next. Outcomes go to the job queue with their ledger rows, written
only if this worker still holds the item at the version it claimed; an outcome it
lost is counted apart (``lost_leases``), is not a failure, and when this worker wrote
the object after the file changed, the item is queued again if the winner already
recorded it done (the stale object may have replaced the winner's).
The worker's ``run_id`` names its ledger runs as a watch's do: ``<run_id>.<n>`` for
the n-th batch, ``<run_id>.parts`` for split uploads.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from s3stow.errors import TransferError
from s3stow.job.ledger import JobLedger
from s3stow.job.queue import JobQueue, Outcome
from s3stow.job.rows import Claimed
from s3stow.job.split import SplitUploads
from s3stow.ledger.rows import ItemRecord
from s3stow.localfiles import FileIdentity, stored_ns
from s3stow.models import (
    Decision,
    PlannedUpload,
    Reason,
    SourceFile,
    Status,
    Target,
    UploadResult,
    new_run_id,
)
from s3stow.report.observer import Observer
from s3stow.transfer.engine import Uploader

log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class WorkerStats:
    claimed: int = 0
    done: int = 0
    failed: int = 0
    gone: int = 0
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
        if uploader.ledger is not None and not isinstance(uploader.ledger, JobLedger):
            raise TypeError("a job worker records through a JobLedger")
        self.queue = queue
        self.uploader = uploader
        self.ledger: JobLedger | None = uploader.ledger
        self.target = target
        self.batch = batch
        self.lease = lease
        self.poll = poll
        self.name = name or worker_id()
        self.split_above = split_above
        self.split: SplitUploads | None = None
        # This worker's run id, the one ``stats``, ``restore`` and ``retry --run`` take:
        # like a watch's, it has no row of its own; each batch of items is recorded as
        # run ``<id>.<n>``, the split uploads' records as ``<id>.parts``.
        self.run_id = new_run_id()
        self._run_id = f"{self.run_id}.parts"
        self._batches = 0
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
            with self.uploader.transfer_context(run_id=self._run_id) as ctx:
                self.split = SplitUploads(
                    self.queue.split,
                    ctx,
                    self.target,
                    worker=self.name,
                    lease=self.lease,
                    requeue=self.queue.requeue_done,
                    observer=self.uploader.observer,
                )
                self._start_split_run()
                while not stop.is_set():
                    if self.split.serve():
                        continue
                    claimed = self.queue.claim(self.name, limit=self.batch, lease=self.lease)
                    if not claimed:
                        if self.queue.remaining() == 0:
                            break
                        stop.wait(self.poll)  # others hold work; their leases may expire
                        continue
                    self.stats.claimed += len(claimed)
                    self._work(claimed)
                    if self.uploader.fatal_error is not None:
                        break
        finally:
            beat_stop.set()
            beat.join(timeout=5)
            self._wind_down()
        if self.queue.db.unreachable is not None:
            raise self.queue.db.unreachable
        return self.stats

    def _wind_down(self) -> None:
        if self.split is not None:
            self.stats.parts_sent = self.split.parts_sent
            self.stats.done += self.split.done
            self.stats.failed += self.split.failed
            self.stats.lost_leases += self.split.lost
        if self.queue.db.unreachable is not None:
            return  # nothing to give back: the claims expire with their leases
        self.queue.release(self.name)
        self._finish_split_run()
        self._beat()

    def _start_split_run(self) -> None:
        ledger = self.ledger
        if ledger is not None and not self.uploader.settings.dry_run:
            ledger.start_run(
                self._run_id,
                command="job-parts",
                bucket=self.target.bucket,
                prefix=self.target.prefix,
                sources=[],
                settings=self.uploader.settings.dump(json=True),
            )

    def _finish_split_run(self) -> None:
        ledger = self.ledger
        if ledger is not None and not self.uploader.settings.dry_run and self.split is not None:
            ledger.finish_run(
                self._run_id,
                status="done" if not self.split.failed else "failed",
                summary={
                    "parts_sent": self.split.parts_sent,
                    "done": self.split.done,
                    "failed": self.split.failed,
                },
            )

    # ---- items ------------------------------------------------------------------------
    def _work(self, claimed: list[Claimed]) -> None:
        outcomes: list[Outcome] = []
        planned: dict[str, tuple[Claimed, SourceFile]] = {}
        settled: set[int] = set()  # split, or lost before it could be
        self.outcomes.by_key.clear()
        if self.ledger is not None:
            self.ledger.clear_held()
        for item in claimed:
            path = Path(item.path)
            try:
                info = path.stat()
            except OSError as exc:
                outcomes.append(self._missing(item, path, exc))
                continue
            source = SourceFile(
                path, item.rel_path, info.st_size, info.st_mtime_ns, path.parent, item.grp or ""
            )
            unfolded = self._unfolded(item, source)
            if unfolded is not None:
                outcomes.append(unfolded)
                continue
            if self.split_above is not None and source.size >= self.split_above:
                outcome = self._open_split(item, source, FileIdentity.of(info).without_device())
                if outcome is None:
                    settled.add(item.id)
                else:
                    outcomes.append(outcome)
                continue
            planned[item.key] = (item, source)
        if planned:
            # No HEAD per item: the items were just planned and the ledger knows what
            # s3stow uploaded before; a PUT is verified, so trusting it halves requests.
            uploads = [PlannedUpload(s, self.target.bucket, k) for k, (_, s) in planned.items()]
            self._batches += 1
            self.uploader.upload_planned(
                uploads,
                self.target,
                command="job",
                run_id=f"{self.run_id}.{self._batches}",
                check_remote=False,
            )
        for key, (state, error_class, error) in self.outcomes.by_key.items():
            if key in planned:
                record = self.ledger.take(self.target.bucket, key) if self.ledger else None
                outcomes.append(Outcome(planned[key][0], state, error_class, error, record))
        answered = settled | {o.item.id for o in outcomes}
        release = [c for c in claimed if c.id not in answered]
        kept, lost = self.queue.record(self.name, outcomes, release=release)
        for outcome in kept:
            setattr(self.stats, outcome.state, getattr(self.stats, outcome.state) + 1)
        self.stats.lost_leases += len(lost)
        for outcome in lost:
            log.info("%s: lost to another worker before its outcome was recorded", outcome.item.key)
            if outcome.item.key in planned:
                self._after_lost(outcome, planned[outcome.item.key][1])

    def _missing(self, item: Claimed, path: Path, exc: OSError) -> Outcome:
        """A claimed file that cannot be stat'ed: ``gone`` when its source directory is
        here but the file is not (deleted since the plan); otherwise a failure."""
        parts = len(PurePosixPath(item.rel_path).parts)
        root = path.parents[parts - 1] if 0 < parts <= len(path.parents) else None
        if isinstance(exc, FileNotFoundError) and root is not None and root.is_dir():
            return Outcome(item, "gone")
        error = f"{path} is not readable on this host: {exc.strerror}"
        if root is not None and not root.is_dir():
            error += f" ({root} is missing: is the shared file system mounted here?)"
        result = UploadResult(
            path, self.target.bucket, item.key, Status.FAILED, error_class="SourceMissing",
            error=error,
        )  # fmt: skip
        record = ItemRecord(result, 0, self._run_id, item.grp)
        return Outcome(item, "failed", "SourceMissing", error, record)

    def _unfolded(self, item: Claimed, source: SourceFile) -> Outcome | None:
        """A key whose '\\' the server stores as '/' but the plan kept (it could not ask
        the server): failed, never sent under a key the ledger and the other workers
        would not know (the upload path would fold it, and two files could meet)."""
        probes = self.uploader.probes
        if "\\" not in item.key or not probes.folds_backslash(self.target.bucket, near=item.key):
            return None
        error = (
            f"key {item.key!r} holds a '\\' that {probes.server_name()} stores as '/', and "
            "the job was planned without asking it: run `s3stow job plan` again "
            "(it folds such keys)"
        )
        result = UploadResult(
            source.path, self.target.bucket, item.key, Status.FAILED, error_class="UnsafeKey",
            error=error,
        )  # fmt: skip
        log.warning("%s: %s", source.path, error)
        record = ItemRecord(result, source.mtime_ns, self._run_id, item.grp)
        return Outcome(item, "failed", "UnsafeKey", error, record)

    def _open_split(
        self, item: Claimed, source: SourceFile, identity: FileIdentity
    ) -> Outcome | None:
        """Split a large claimed file into parts for every worker; an outcome when it
        need not or cannot be (already uploaded, or the upload could not be created)."""
        assert self.split is not None
        ledger = self.ledger
        if ledger is not None and not self.uploader.settings.force:
            entry = ledger.lookup(self.target.bucket, [item.key]).get(item.key)
            if (
                entry is not None
                and entry.status == Status.DONE
                and (entry.size, entry.mtime_ns) == (source.size, stored_ns(source.mtime_ns))
                and entry.recorded_on(self.uploader.store.store_id())
            ):
                return Outcome(item, "done")
        try:
            if not self.split.open(item, source, identity, item.key):
                self.stats.lost_leases += 1
        except TransferError as exc:
            result = UploadResult(
                source.path, self.target.bucket, item.key, Status.FAILED,
                error_class=exc.code or "TransferError", error=str(exc),
            )  # fmt: skip
            record = ItemRecord(result, source.mtime_ns, self._run_id, source.group)
            return Outcome(item, "failed", result.error_class, result.error, record)
        return None

    def _after_lost(self, outcome: Outcome, source: SourceFile) -> None:
        """This worker may have written the object after losing the item; if the file is
        not what it sent, that object may have replaced the winner's newer one."""
        wrote = outcome.state == "done" or outcome.error_class == "SourceChanged"
        if not wrote:
            return
        try:
            changed = FileIdentity(source.size, source.mtime_ns).changes(
                FileIdentity.at(source.path)
            )
        except OSError:
            return  # deleted: the next plan marks it gone
        if (changed or outcome.error_class == "SourceChanged") and self.queue.requeue_done(
            outcome.item.id
        ):
            log.warning("%s changed while a stale upload of it ran: queued again", source.path)

    # ---- heartbeat --------------------------------------------------------------------
    def _beat(self) -> None:
        try:
            self.queue.heartbeat(
                self.name,
                lease=self.lease,
                done=self.stats.done,
                failed=self.stats.failed,
                lost=self.stats.lost_leases,
            )
        except Exception as exc:  # noqa: BLE001 - a missed beat is retried; leases are long
            log.warning("job heartbeat failed: %s", exc)

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.lease / 3):
            self._beat()
