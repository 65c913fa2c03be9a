"""One upload run through the stages: ``UploadPipeline``, the base of ``Uploader``.

discover -> plan keys -> compare (ledger, then one listing) -> transfer (with
retry) -> record (ledger) -> report (observers). The batches a run is given (from
``Uploader``, ``engine.py``) are folded, claimed and compared here; at most
``limit + concurrency`` files are in flight at once, on ``limit`` threads
(``FileThreads``: a queue, no future per file; each outcome is recorded here, in the
run's thread). Parts of large files run in a second pool; ``RequestLimiter`` caps
the requests of both at its ``limit``: ``concurrency`` at first, growing up to
``max_concurrency`` while files/s rises with it. The run's ledger row is opened and
closed here, and every outcome and refusal counted, reported and recorded.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path

from s3stow.config import Settings
from s3stow.errors import Interrupted, LedgerError, S3StowError
from s3stow.ledger import Ledger, LedgerEntry
from s3stow.models import (
    Decision,
    Duplicate,
    PlannedUpload,
    Reason,
    Refused,
    RunSummary,
    SourceFile,
    Status,
    Target,
    UploadResult,
    new_run_id,
)
from s3stow.plan.collisions import KeyClaims
from s3stow.plan.compare import RemoteIndex, decide
from s3stow.plan.keys import local_key
from s3stow.report.observer import Fanout, Observer
from s3stow.store.base import ObjectStore
from s3stow.store.layers import run_store
from s3stow.store.observed import RequestObserver
from s3stow.transfer.context import TransferContext, transfer_context
from s3stow.transfer.filethreads import FileThreads
from s3stow.transfer.limits import RequestLimiter
from s3stow.transfer.probes import ServerProbes
from s3stow.transfer.tally import Tally
from s3stow.transfer.worker import FileWorker

log = logging.getLogger(__name__)
# refusals recorded under their key (SourceGone: a retry found the file gone)
_OWN_KEY = frozenset({"UnsafeKey", "SourceMissing", "SourceGone"})


_Files = FileThreads[SourceFile, UploadResult]


def _file_threads(worker: FileWorker, ctx: TransferContext) -> _Files:
    """The file threads of one run: ``worker.process(ctx, decision, listed)`` each."""
    return FileThreads(functools.partial(worker.process, ctx), ctx.settings.concurrency)


class UploadPipeline:
    """What an ``Uploader``'s runs share (settings, limiter, store, ledger, observers,
    stop event, worker, tally) and one run through the stages."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ObjectStore | None = None,
        ledger: Ledger | None = None,
        observers: Iterable[Observer] = (),
        default_target: Target | None = None,
        request_observer: RequestObserver | None = None,
    ) -> None:
        self.settings = settings
        self.limiter = RequestLimiter(
            settings.concurrency, ceiling=settings.concurrency_ceiling, slow_start=True
        )
        self.store: ObjectStore = run_store(
            settings,
            store=store,
            on_throttle=self.limiter.on_throttle,
            request_observer=request_observer,  # --metrics-port
        )
        self.ledger = ledger
        self.probes = ServerProbes(settings, store=self.store, ledger=ledger)
        self.observer = Fanout(list(observers))
        self.default_target = default_target
        self.stop = threading.Event()
        self._checked: set[str] = set()
        self.worker = FileWorker(
            self.settings, store=self.store, observer=self.observer, stop=self.stop
        )
        self.tally = Tally()
        if ledger is not None:  # the first failed ledger write stops the run
            ledger.on_failure(self.worker.fail_run)

    def _check_bucket(self, bucket: str, *, near: str = "") -> None:
        """HEAD the bucket once, before the first request that needs it (fail fast on
        credentials, permissions and a missing bucket; a no-op run sends nothing).

        ``near``: a key the run is about to decide or send. Once HeadBucket passed, the
        checksum probe the transfers would wait for is started beside it in a thread
        of its own (``ServerProbes.start_checksum_probe``), so its round trips overlap
        the rest of the listing and the first decisions instead of following them; a
        transfer still waits for its answer before it reads its file (whether to
        compute an MD5). Never before HeadBucket: a PUT to a missing bucket creates it
        on SeaweedFS, even a refused one."""
        if bucket not in self._checked:
            self.store.head_bucket(bucket)
            self._checked.add(bucket)
            if near:
                self.probes.start_checksum_probe(bucket, near=near)

    def _run(
        self,
        summary: RunSummary,
        target: Target,
        batches: Iterator[list[PlannedUpload]],
        *,
        remote: RemoteIndex,
        claims: KeyClaims,
        command: str,
        sources: list[str],
    ) -> None:
        started = time.monotonic()
        errors_before = getattr(self.store, "transient_errors", 0)
        throttled_before = self.limiter.throttle_events
        mark = self.tally.mark()
        self.observer.on_start(summary.run_id, target.url)
        if self.ledger is not None and not self.settings.dry_run:
            self.ledger.start_run(
                summary.run_id,
                command=command,
                bucket=target.bucket,
                prefix=target.prefix,
                sources=sources,
                settings=self.settings.dump(json=True),
            )
        try:
            self._pipeline(batches, remote, claims, summary)
        except Interrupted:
            raise
        except S3StowError as exc:  # e.g. the bucket check: the run failed, and says so
            self.worker.fail_run(exc)  # (summary, status file, ledger row: not "done")
            raise
        finally:
            self.probes.settle()  # a probe started early answers (and is cached) first
            summary.elapsed = time.monotonic() - started
            summary.transient_errors = getattr(self.store, "transient_errors", 0) - errors_before
            summary.throttled = self.limiter.throttle_events - throttled_before
            summary.concurrency = self.limiter.limit
            summary.concurrency_peak = self.limiter.peak
            self.tally.close(summary, mark)
            self._finish_ledger(summary)
            self.observer.on_finish(summary)

    def _finish_ledger(self, summary: RunSummary) -> None:
        """Commit what is queued and close the run's row; a ledger that cannot be
        written makes the run fatal (exit 3), and the summary still reaches the user."""
        self._settle_outcome(summary)
        if self.ledger is None:
            return
        try:
            self.ledger.flush()
            if not self.settings.dry_run:
                status = (
                    "interrupted" if summary.interrupted else ("done" if summary.ok else "failed")
                )
                self.ledger.finish_run(summary.run_id, status=status, summary=summary.totals())
        except LedgerError as exc:
            self.worker.fail_run(exc)
            self._settle_outcome(summary)

    def _settle_outcome(self, summary: RunSummary) -> None:
        summary.interrupted = self.stop.is_set() and self.fatal_error is None
        summary.fatal = str(self.fatal_error) if self.fatal_error is not None else None

    def _pipeline(
        self,
        batches: Iterator[list[PlannedUpload]],
        remote: RemoteIndex,
        claims: KeyClaims,
        summary: RunSummary,
    ) -> None:
        budget_left = self.settings.limit
        limiter = self.limiter
        # As many file threads as the limit admits requests (one request per thread),
        # and as many files again queued for them.
        ahead = self.settings.concurrency
        with self._pools(run_id=summary.run_id) as ctx, _file_threads(self.worker, ctx) as files:
            for batch in batches:
                if self.stop.is_set():
                    break
                if batch:
                    bucket = batch[0].bucket
                    batch, unsafe = self._fold_backslashes(batch, claims)
                    for refusal in unsafe:
                        self._refuse(summary, refusal, bucket)
                try:
                    known = self._known(batch)
                except LedgerError as exc:
                    self.worker.fail_run(exc)
                    break
                planned = self._claim(batch, known, claims, summary)
                for decision, listed in decide(
                    planned, ledger=self.ledger, known=known, remote=remote, settings=self.settings
                ):
                    if decision.upload and budget_left is not None:
                        if budget_left <= 0:  # left for the next run, not skipped
                            decision = Decision(decision.item, False, Reason.LIMIT)
                        budget_left -= 1
                    self.observer.on_decision(decision)
                    source = decision.item.source
                    if decision.reason == Reason.LIMIT:
                        summary.not_started += 1
                        continue
                    if not decision.upload and listed is None:
                        summary.skipped += 1
                        summary.count_group(source.group, "skipped")
                        continue
                    if self.settings.dry_run and decision.upload:
                        summary.would_upload.append(decision)
                        continue
                    while (
                        files.in_flight >= files.room(limiter.limit, ahead)
                        and not self.stop.is_set()
                    ):
                        self._drain(files, summary, block=True)
                    if self.stop.is_set():
                        break
                    self._check_bucket(decision.item.bucket, near=decision.item.key)
                    files.grow(limiter.limit)
                    files.submit((decision, listed), source)
                self._drain(files, summary, block=False)
            while files.in_flight:
                self._drain(files, summary, block=True)

    def _fold_backslashes(
        self, batch: list[PlannedUpload], claims: KeyClaims
    ) -> tuple[list[PlannedUpload], list[Refused]]:
        """On a server that stores a key's ``\\`` as ``/``, the batch with such keys
        folded (``KeyClaims.fold``); the server is asked only when a key holds one."""
        bucket = batch[0].bucket if batch else ""
        return self.probes.fold_keys(batch, claims, before_send=lambda: self._check_bucket(bucket))

    def _known(self, batch: list[PlannedUpload]) -> dict[str, LedgerEntry]:
        """The ledger's entries for a batch's keys (one lookup serves collisions and
        the compare stage)."""
        if self.ledger is None or not batch:
            return {}
        return self.ledger.lookup(batch[0].bucket, [item.key for item in batch])

    def _claim(
        self,
        batch: list[PlannedUpload],
        known: dict[str, LedgerEntry],
        claims: KeyClaims,
        summary: RunSummary,
    ) -> list[PlannedUpload]:
        """The batch without the files whose key another file owns (each refused)."""
        kept, refused = claims.settle(batch, known)
        for refusal in refused:
            self._refuse(summary, refusal, batch[0].bucket)
        return kept

    def _refuse(self, summary: RunSummary, outcome: Refused | Duplicate, bucket: str) -> None:
        """Count and report a planned file that is not uploaded: a refusal (unsafe key,
        collision; recorded, so ``retry --list`` shows it) or a deduplicated duplicate."""
        source = outcome.source
        if isinstance(outcome, Duplicate):
            log.info("deduplicated %s: same content as %s", source.path, outcome.first)
            why = Reason.DEDUPLICATED.value
            summary.skip_reasons[why] = summary.skip_reasons.get(why, 0) + 1
            self._count(summary, outcome.result(bucket), source)
            return
        failure = outcome.result(bucket)
        self._record_refusal(failure, summary, mtime_ns=source.mtime_ns, group=source.group)
        self._count(summary, failure, source)

    def _record_refusal(
        self, result: UploadResult, summary: RunSummary, *, mtime_ns: int, group: str | None
    ) -> None:
        """Record a failure found before any transfer, so ``retry --list`` shows it.

        An unsafe key or a missing file's key is the item's own; a collision's key is
        another file's and a name that is not UTF-8 has none: those are recorded under
        the file's ``local_key``, so no object's row is overwritten.
        """
        if self.ledger is not None and not self.settings.dry_run and result.status == Status.FAILED:
            own = result.key and result.error_class in _OWN_KEY
            key = result.key if own else local_key(result.path)
            self.ledger.record(
                replace(result, key=key, path=Path(local_key(result.path))),
                mtime_ns=mtime_ns,
                run_id=summary.run_id,
                group=group,
            )

    def _drain(self, files: _Files, summary: RunSummary, *, block: bool) -> None:
        """Record every finished file; with ``block``, wait for at least one. A file's
        work that raised raises here, as it did from its future."""
        for source, outcome in files.collect(block=block):
            if isinstance(outcome, BaseException):
                raise outcome
            if outcome.status == Status.PLANNED:  # interrupted before an outcome
                continue
            if self.ledger is not None and not self.settings.dry_run:
                self.ledger.record(
                    outcome,
                    mtime_ns=source.mtime_ns,
                    run_id=summary.run_id,
                    group=source.group,
                    store=self._store_of(outcome),
                )
            self._count(summary, outcome, source)

    def _store_of(self, result: UploadResult) -> str | None:
        """The store a ``done`` outcome was reached against: the ledger's row proves the
        object there alone. Other outcomes prove nothing, so none is asked for."""
        return self.store.store_id() if result.status == Status.DONE else None

    def _count(self, summary: RunSummary, result: UploadResult, source: SourceFile | None) -> None:
        self.tally.count(summary, result, source)
        self.observer.on_result(result, source)

    def _pools(self, *, run_id: str | None = None) -> AbstractContextManager[TransferContext]:
        return transfer_context(
            self.settings,
            store=self.store,
            ledger=None if self.settings.dry_run else self.ledger,
            limiter=self.limiter,
            stop=self.stop,
            run_id=run_id or new_run_id(),
            on_bytes=self._on_bytes,
            on_resumed=self._on_resumed,
            on_hashed=self.observer.on_hashed,
            probes=self.probes,
        )

    def _on_bytes(self, source: SourceFile, count: int) -> None:
        self.tally.add_sent(source, count)
        self.worker.on_bytes(source, count)

    def _on_resumed(self, source: SourceFile, count: int) -> None:
        self.tally.add_resumed(count)
        self.observer.on_resumed(source, count)

    @property
    def fatal_error(self) -> S3StowError | None:
        """The fatal (auth/bucket) error that stopped the run, if any."""
        return self.worker.fatal_error
