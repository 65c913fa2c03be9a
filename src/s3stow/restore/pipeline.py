"""One restore run, from its run row to its summary: ``RestoreRun``.

The objects found (a listing, a run's items, explicit items) are planned in batches of
16, 32, 64, 128, then 256 (``batched``: the first GETs wait for 16 listed objects, later
batches cost one ledger lookup per 256), decided from the ledger and the disk
(``plan.decide``), and handed to the run's file threads (``FileThreads``), at most the
limit plus ``concurrency`` files submitted: while the queue is full the main thread
waits for half of the files queued ahead (one wake-up per that many files, not per
file). Each outcome comes back to the main thread and is recorded there
(``outcomes.Outcomes``). A ``--run`` dry run asks, with a HEAD per object on the file
threads, whether each object is still the run's; ``--wait`` polls the archived objects
(``glacier.Backoff``) and fetches those that became readable. The run's transfers share
one ``TransferContext`` (store, limiter, part pool, stop event).
"""

from __future__ import annotations

import itertools
import logging
import operator
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING

from s3stow.errors import LedgerError, S3StowError
from s3stow.ledger.restores import RestoreEntry
from s3stow.models import Decision, Reason, SourceFile, Status, Target, UploadResult
from s3stow.restore import glacier
from s3stow.restore.outcomes import Outcomes, Received, Worked
from s3stow.restore.paths import Folders
from s3stow.restore.plan import RestoreItem, RestorePlanner, RestoreRefusal, decide
from s3stow.restore.report import RestoreSummary
from s3stow.restore.worker import for_restore, since_run
from s3stow.transfer.context import TransferContext, transfer_context
from s3stow.transfer.filethreads import FileThreads

if TYPE_CHECKING:
    from s3stow.restore.engine import Restorer

log = logging.getLogger(__name__)
_BATCH = 256  # objects planned and decided together (one ledger lookup per batch)
_FIRST_BATCH = 16  # the first batch; each next one doubles up to _BATCH
Found = RestoreItem | RestoreRefusal | UploadResult | None
# the file threads run ``function(*args)`` (``operator.call``): a file's ``_work``, a
# dry run's ``since_run``, a waiting object's ``poll``; each outcome comes back with
# its item
_Files = FileThreads[RestoreItem, object]


class RestoreRun:
    """One run of a ``Restorer``: its summary, the ledger's run row, the pipeline."""

    def __init__(
        self, restorer: Restorer, summary: RestoreSummary, *, planner: RestorePlanner | None
    ) -> None:
        self.restorer = restorer
        self.settings = restorer.settings
        self.summary = summary
        self.planner = planner
        self.stop = restorer.stop
        recorded = restorer.restores if not self.settings.dry_run else None
        self.outcomes = Outcomes(
            summary,
            restores=recorded,
            observer=restorer.observer,
            stop=self.stop,
            glacier_options=restorer.options.glacier,
        )
        self.received = Received()

    def run(
        self, target: Target, root: Path, found: Iterator[Found], *, command: str, label: str | None
    ) -> RestoreSummary:
        """The run, start to end: its row in the ledger, the pipeline, the summary
        (also when the pipeline raised: a missing bucket, no permission)."""
        restorer, summary, settings = self.restorer, self.summary, self.settings
        ledger = restorer.ledger if not settings.dry_run else None
        started = time.monotonic()
        restorer.worker.folders = Folders()  # each run checks its folders afresh
        errors_before = getattr(restorer.store, "transient_errors", 0)
        shown = label or (target.url if target.bucket else str(root))
        restorer.observer.on_start(summary.run_id, shown)
        if ledger is not None:
            ledger.start_run(
                summary.run_id,
                command=command,
                bucket=target.bucket,
                prefix=target.prefix,
                sources=[str(root)],
                settings=settings.dump(json=True),
            )
        try:
            self._pipeline(found)
        except S3StowError as exc:  # e.g. the listing: a missing bucket, no permission
            summary.fatal = str(for_restore(exc))
            raise
        finally:
            summary.elapsed = time.monotonic() - started
            transient = getattr(restorer.store, "transient_errors", 0)
            summary.transient_errors = transient - errors_before
            limiter, streams = restorer.limiter, restorer.streams
            summary.throttled = limiter.throttle_events
            summary.concurrency = limiter.limit
            summary.concurrency_peak = limiter.peak
            summary.streams = streams.limit
            summary.streams_peak = streams.peak
            summary.interrupted = self.stop.is_set() and restorer.fatal_error is None
            summary.not_selected = self.planner.not_selected if self.planner is not None else 0
            self.received.close(summary)
            if restorer.fatal_error is not None:
                summary.fatal = str(restorer.fatal_error)
            try:
                if self.outcomes.restores is not None:
                    self.outcomes.restores.flush()
                if ledger is not None:
                    status = (
                        "interrupted"
                        if summary.interrupted
                        else ("done" if summary.ok else "failed")
                    )
                    ledger.finish_run(summary.run_id, status=status, summary=summary.totals())
            except LedgerError as exc:  # the run's last writes: said, and the run fails
                restorer.worker.fail_run(exc)
                summary.interrupted = False
                summary.fatal = str(restorer.fatal_error)
            restorer.observer.on_finish(summary)
        return summary

    # ---- the pipeline ---------------------------------------------------------------------
    def _pipeline(self, found: Iterator[Found]) -> None:
        outcomes, summary, observer = self.outcomes, self.summary, self.restorer.observer
        restores = self.restorer.restores  # read in a dry run too: what is restored is skipped
        budget = self.settings.limit
        with self._context() as ctx, _Files(operator.call, self.settings.concurrency) as files:
            for batch in batched(found):
                if self.stop.is_set():
                    break
                checks: list[tuple[Decision, RestoreItem]] = []
                items = self._admit(batch)
                # found by the listing so far (the progress display's walk), refusals too
                observer.on_walk(summary.files, summary.bytes_total, False)
                for item, (decision, entry) in zip(
                    items, decide(items, ledger=restores), strict=True
                ):
                    if decision.upload and budget is not None:
                        if budget <= 0:  # left for the next run, not skipped
                            decision = Decision(decision.item, False, Reason.LIMIT)
                        budget -= 1
                    observer.on_decision(decision)
                    if decision.reason == Reason.LIMIT:
                        summary.not_started += 1
                        continue
                    if not decision.upload:
                        summary.skipped += 1
                        summary.count_group(item.source.group, "skipped")
                        continue
                    if self.settings.dry_run:
                        if item.run is not None and decision.reason != Reason.LOCAL_EXISTS:
                            # --run: is the object still the run's? (a HEAD, read-only)
                            checks.append((decision, item))
                        else:
                            summary.would_restore.append(decision)
                        continue
                    if self.stop.is_set():
                        break
                    self._hand_out(files, ctx, decision, item, entry)
                self._still_the_runs(files, ctx, checks)
                self._drain(files, block=False)
            else:
                observer.on_walk(summary.files, summary.bytes_total, True)
            while files.in_flight:
                self._drain(files, block=True)
            backoff = glacier.Backoff(self.restorer.options.glacier.poll_interval)
            while outcomes.waiting and not self.stop.wait(backoff.next()):
                for item in self._poll(ctx, files):
                    self._hand_out(files, ctx, Decision(item.planned, True, Reason.ARCHIVED), item)
                while files.in_flight:
                    self._drain(files, block=True)
        outcomes.still_pending()  # stopped while waiting

    def _hand_out(
        self,
        files: _Files,
        ctx: TransferContext,
        decision: Decision,
        item: RestoreItem,
        entry: RestoreEntry | None = None,
    ) -> None:
        """Submit one file to the file threads; while they hold as many as they should
        (``room``), first wait for half of the files queued ahead and record them."""
        limit, ahead = self.restorer.limiter.limit, self.settings.concurrency
        room = files.room(limit, ahead)
        if files.in_flight >= room:  # full: wait for half of the files queued ahead
            low = room - max(1, ahead // 2)
            while files.in_flight > low and not self.stop.is_set():
                self._drain(files, block=True, want=files.in_flight - low)
        files.grow(self.restorer.limiter.limit)  # one thread per request the limit admits
        files.submit((self._work, ctx, decision, item, entry), item)

    def _admit(self, batch: list[Found]) -> list[RestoreItem]:
        """Count a batch's objects; report its refusals; return the items to decide."""
        summary, outcomes, observer = self.summary, self.outcomes, self.restorer.observer
        items = []
        for thing in batch:
            if thing is None:
                continue
            summary.files += 1
            if isinstance(thing, UploadResult):  # refused with no local path to name
                outcomes.settle(thing, None)
                continue
            summary.bytes_total += thing.source.size
            observer.on_discovered(thing.source)
            if isinstance(thing, RestoreRefusal):  # counted in its folder's group
                outcomes.settle(thing.result, None, source=thing.source)
                continue
            items.append(thing)
        return items

    def _still_the_runs(
        self, files: _Files, ctx: TransferContext, checks: list[tuple[Decision, RestoreItem]]
    ) -> None:
        """``restore --run --dry-run``: each object the real run would fetch, still the
        upload run's (would be restored) or replaced or deleted since (reported)."""
        checked = each(files, since_run, ctx, [item for _, item in checks])
        for (decision, item), refused in zip(checks, checked, strict=True):
            if isinstance(refused, BaseException):
                raise refused
            if refused is None:
                self.summary.would_restore.append(decision)
            else:
                assert isinstance(refused, UploadResult)
                self.outcomes.settle(refused, item)

    def _poll(self, ctx: TransferContext, files: _Files) -> list[RestoreItem]:
        """HEAD every waiting object once; return those now readable."""
        outcomes = self.outcomes
        waiting, outcomes.waiting = outcomes.waiting, []
        ready = []
        poll = self.restorer.worker.poll
        for item, readable in zip(waiting, each(files, poll, ctx, waiting), strict=True):
            if isinstance(readable, S3StowError):
                code = getattr(readable, "code", type(readable).__name__)
                outcomes.settle(item.failed(code, str(readable).splitlines()[0]), item)
                continue
            if isinstance(readable, BaseException):
                raise readable
            if readable:
                ready.append(item)
            else:
                outcomes.waiting.append(item)
        if ready:
            log.info("%d restored object(s) now readable", len(ready))
        return ready

    def _drain(self, files: _Files, *, block: bool, want: int = 1) -> None:
        """Record every finished file; with ``block``, wait for at least one (for
        ``want``, while that many are in flight, unless half a second passes first).
        A file's work that raised raises here, as it would from a future."""
        settle = self.outcomes.settle
        for item, worked in files.collect(block=block, want=want):
            if isinstance(worked, BaseException):
                raise worked
            assert isinstance(worked, Worked)
            try:
                settle(worked.result, item, worked=worked)
            except LedgerError as exc:  # stop as an upload does: the summary still said
                self.restorer.worker.fail_run(exc)

    def _work(
        self,
        ctx: TransferContext,
        decision: Decision,
        item: RestoreItem,
        entry: RestoreEntry | None,
    ) -> Worked:
        """One file's outcome and, when the run records it, its ledger row (in the
        file's thread)."""
        result = self.restorer.worker.process(ctx, decision, item, entry)
        recorded = self.outcomes.restores is not None and result.status != Status.PLANNED
        return Worked(result, item.record(result) if recorded else None)

    def _context(self) -> AbstractContextManager[TransferContext]:
        """What the run's transfers share; the bytes they receive counted by group."""
        restorer, received, observer = self.restorer, self.received, self.restorer.observer

        def on_bytes(source: SourceFile, count: int) -> None:
            received.add(source, count)
            observer.on_bytes(source, count)

        def on_resumed(source: SourceFile, count: int) -> None:
            received.add_resumed(count)
            observer.on_resumed(source, count)

        return transfer_context(
            self.settings,
            store=restorer.store,
            ledger=restorer.ledger if not self.settings.dry_run else None,
            limiter=restorer.limiter,
            stop=self.stop,
            run_id=self.summary.run_id,
            on_bytes=on_bytes,
            on_resumed=on_resumed,
        )


def each(
    files: _Files,
    function: Callable[[TransferContext, RestoreItem], object],
    ctx: TransferContext,
    items: list[RestoreItem],
) -> list[object]:
    """``function(ctx, item)`` for every item on the file threads (nothing else in flight:
    a dry run submits no file, and the polls wait for the files to be done); the
    outcomes in the items' order, an exception raised as the outcome."""
    if not items:
        return []
    assert not files.in_flight
    for item in items:
        files.submit((function, ctx, item), item)
    outcomes: dict[int, object] = {}
    while files.in_flight:
        for item, outcome in files.collect(block=True, want=files.in_flight):
            outcomes[id(item)] = outcome
    return [outcomes[id(item)] for item in items]


def batched(found: Iterator[Found]) -> Iterator[list[Found]]:
    """Batches of 16, 32, 64, 128, then 256 objects: the first GETs go out as soon as
    the first 16 objects are listed (the first listing page, a short one while the
    fast path learns), not once 256 are; later batches are large, so the ledger is
    asked once per 256 objects."""
    size = _FIRST_BATCH
    while batch := list(itertools.islice(found, size)):
        yield batch
        size = min(_BATCH, size * 2)
