"""The upload pipeline and the library API: ``Uploader``.

discover -> plan keys -> compare (ledger, then one listing) -> transfer (with
retry) -> record (ledger) -> report (observers). Discovery and key planning run
ahead in their own thread (``RunAhead``, up to 10,000 files ahead) and stream in
batches, so the first upload starts before the tree is fully listed; at most
``limit + concurrency`` files are in flight at once, on ``limit`` threads
(``FileThreads``: a queue, no future per file; each outcome is recorded here, in the
run's thread). Parts of large files run in a second pool; ``RequestLimiter`` caps
the requests of both at its ``limit``: ``concurrency`` at first, growing up to
``max_concurrency`` while files/s rises with it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any

from s3stow.config import Settings
from s3stow.errors import ConfigError, Interrupted, LedgerError, S3StowError, SourceError
from s3stow.ledger import Ledger, LedgerEntry
from s3stow.models import (
    INFORMATIONAL_SKIPS,
    Decision,
    Duplicate,
    PlannedUpload,
    Reason,
    Refused,
    RunSummary,
    Skipped,
    SourceFile,
    Status,
    Target,
    UploadResult,
    new_run_id,
)
from s3stow.plan.ahead import RunAhead
from s3stow.plan.collisions import KeyClaims
from s3stow.plan.compare import RemoteIndex, decide
from s3stow.plan.discover import check_sources, discover
from s3stow.plan.keys import build_key, checked_target, local_key, parse_target
from s3stow.plan.ownfiles import working_files
from s3stow.plan.planner import Planner, describe_sources, key_claims
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
_BATCH = 256
# refusals recorded under their key (SourceGone: a retry found the file gone)
_OWN_KEY = frozenset({"UnsafeKey", "SourceMissing", "SourceGone"})


_Files = FileThreads[SourceFile, UploadResult]


def _file_threads(worker: FileWorker, ctx: TransferContext) -> _Files:
    """The file threads of one run: ``worker.process(ctx, decision, listed)`` each."""
    return FileThreads(functools.partial(worker.process, ctx), ctx.settings.concurrency)


class Uploader:
    """Uploads files and trees to S3, verified, recorded and resumable."""

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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Uploader:
        """Build from ``S3STOW_*`` and the seed upload component's variables.

        ``BUCKET_NAME`` (required unless a target is given later), ``PREFIX``,
        ``MAX_RETRIES`` (file-level retries) and ``RETRY_BASE_DELAY``.
        """
        from s3stow.transfer.envcompat import settings_and_target_from_env

        settings, target = settings_and_target_from_env(env)
        return cls(settings, default_target=target, **kwargs)

    # ---- public API -----------------------------------------------------------------
    def check_bucket_access(self, bucket: str | None = None) -> None:
        """Raise ``AuthError``/``BucketMissingError`` unless the bucket is reachable."""
        self.store.head_bucket(bucket or self._target(None).bucket)

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

    def add_observer(self, observer: Observer) -> None:
        """Also report this run's events to ``observer``."""
        self.observer.observers.append(observer)

    def request_stop(self) -> None:
        """Stop starting new work; in-flight requests finish (first Ctrl+C)."""
        self.stop.set()

    def upload_file(
        self, path: str | Path, key: str | None = None, *, target: str | Target | None = None
    ) -> UploadResult:
        """Upload one file (to ``key``, or prefix + file name) and return its result."""
        resolved = self._target(target)
        path = Path(path)
        check_sources([path])
        if path.is_dir():  # discovery would walk it: one file is asked for
            raise SourceError(
                f"source {path} is a directory", hint="upload_tree uploads a directory"
            )
        found = next(iter(discover([path])))
        if isinstance(found, Skipped):
            return UploadResult(
                path,
                resolved.bucket,
                key or "",
                Status.FAILED,
                error_class=found.error_class,
                error=found.reason,
            )
        if key is None:
            planned = Planner(self.settings, resolved).plan(found)
            if isinstance(planned, Refused):  # an unsafe key, a file unreadable for its key
                return planned.result(resolved.bucket)
            if planned is None:
                return UploadResult(
                    path,
                    resolved.bucket,
                    "",
                    Status.FAILED,
                    error_class="NotSelected",
                    error="not selected (include/exclude patterns, sizes, ages, types)",
                )
            item = planned
        else:
            item = PlannedUpload(found, resolved.bucket, build_key("", key))
        claims = KeyClaims()
        folded, unsafe = self._fold_backslashes([item], claims)
        if unsafe:
            return unsafe[0].result(item.bucket)
        item = folded[0]
        known = self.ledger.lookup(item.bucket, [item.key]) if self.ledger is not None else {}
        _, refused = claims.settle([item], known)
        if refused:
            return refused[0].result(item.bucket)
        try:
            self._check_bucket(item.bucket, near=item.key)
            with self._pools() as ctx:
                result = self.worker.transfer(ctx, item, Reason.NEW)
        finally:
            self.probes.settle()
        if self.ledger is not None:
            self.ledger.record(
                result,
                mtime_ns=found.mtime_ns,
                run_id=ctx.run_id,
                group=found.group,
                store=self._store_of(result),
            )
            self.ledger.flush()
        if self.fatal_error is not None:
            raise self.fatal_error
        return result

    def upload_tree(
        self,
        sources: str | Path | Iterable[str | Path],
        target: str | Target | None = None,
        *,
        run_id: str | None = None,
    ) -> RunSummary:
        """Upload every file under ``sources`` (one path or several); the summary says
        what happened to each. An empty (or blank) ``str`` source is refused
        (``ConfigError``): ``Path("")`` is the current folder, so a variable left empty
        would upload it; give ``"."`` for that."""
        from s3stow.localfiles import given_path

        given = [sources] if isinstance(sources, str | Path) else list(sources)
        fix = "name the file or folder to upload"
        paths = [
            given_path(s, what="the source path", fix=fix) if isinstance(s, str) else s
            for s in given
        ]
        resolved = self._target(target)
        planner = Planner(self.settings, resolved)
        roots = check_sources(planner.sources(paths))
        summary = RunSummary(run_id or new_run_id())
        remote = RemoteIndex(
            self.store,
            resolved.bucket,
            planner.template.static_prefix,
            before_first_use=lambda key: self._check_bucket(resolved.bucket, near=key),
        )
        own = working_files(self.settings, self.ledger)
        found = discover(roots, follow_symlinks=self.settings.follow_symlinks, own=own)

        def batches(ahead: RunAhead) -> Iterator[list[PlannedUpload]]:
            for batch in ahead:
                yield self._plan(batch, planner, summary)
            summary.walk_complete = True  # the run took every batch (else it stopped)

        summary.walk_complete = False
        with RunAhead(found, planner.plan, on_walk=self.observer.on_walk) as ahead:
            self._run(
                summary,
                resolved,
                batches(ahead),
                remote=remote,
                claims=planner.claims,
                command="upload",
                sources=describe_sources(roots),
            )
        for pattern in planner.unmatched_includes():
            log.warning("--include %r matched no file", pattern)
        return summary

    def upload_planned(
        self,
        items: Iterable[PlannedUpload | UploadResult],
        target: Target,
        *,
        command: str = "retry",
        run_id: str | None = None,
        check_remote: bool = True,
        claims: KeyClaims | None = None,
    ) -> RunSummary:
        """Upload explicit (file, key) pairs through the same pipeline (retry, archive).

        ``items`` may mix planned uploads with ``UploadResult`` refusals (missing
        file, unsafe key) found while producing them: those are counted, reported
        and recorded like any other failure. Objects the ledger does not know are
        checked with a HEAD each, not a listing (``check_remote=False``: not at all;
        such keys are simply uploaded and verified). ``claims``: the key owners of a
        longer session (``watch``), so collisions across calls are refused too.
        """
        summary = RunSummary(run_id or new_run_id())
        remote = RemoteIndex(
            self.store,
            target.bucket,
            target.prefix,
            by_head=True,
            trust_ledger=not check_remote,
            before_first_use=lambda key: self._check_bucket(target.bucket, near=key),
        )
        stream = iter(items)

        def batches() -> Iterator[list[PlannedUpload]]:
            files = size = 0
            while chunk := list(itertools.islice(stream, _BATCH)):
                batch = []
                for item in chunk:
                    summary.files += 1
                    if isinstance(item, UploadResult):
                        self._record_refusal(item, summary, mtime_ns=0, group=None)
                        self._count(summary, item, None)
                        continue
                    summary.bytes_total += item.source.size
                    self.observer.on_discovered(item.source)
                    files, size = files + 1, size + item.source.size
                    batch.append(item)
                self.observer.on_walk(files, size, False)
                yield batch
            self.observer.on_walk(files, size, True)

        self._run(
            summary,
            target,
            batches(),
            remote=remote,
            claims=claims or key_claims(self.settings),
            command=command,
            sources=[command],
        )
        return summary

    # ---- pipeline -------------------------------------------------------------------
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

    def _plan(
        self, batch: list[tuple[SourceFile | Skipped, Any]], planner: Planner, summary: RunSummary
    ) -> list[PlannedUpload]:
        """Count, report and record a batch of found paths, each with what the planner
        made of it (in ``RunAhead``'s thread); return the files to compare."""
        planned = []
        bucket = planner.target.bucket
        for found, outcome in batch:
            if isinstance(found, Skipped):
                self.observer.on_skipped_path(found)
                summary.files += 1
                why = INFORMATIONAL_SKIPS.get(found.error_class)
                if why is not None:
                    log.info("skipped %s: %s", found.path, found.reason)
                    summary.skip_reasons[why] = summary.skip_reasons.get(why, 0) + 1
                    summary.skipped += 1
                    continue
                failure = UploadResult(
                    found.path,
                    bucket,
                    "",  # it has no key: the ledger knows it by its path
                    Status.FAILED,
                    error_class=found.error_class,
                    error=found.reason,
                )
                self._record_refusal(failure, summary, mtime_ns=0, group=None)
                self._count(summary, failure, None)
                continue
            if outcome is None:
                summary.not_selected += 1
                continue
            summary.files += 1
            summary.bytes_total += found.size
            self.observer.on_discovered(found)
            if isinstance(outcome, Refused):
                self._refuse(summary, outcome, bucket)
                continue
            planned.append(outcome)
        return planned

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

    # ---- plumbing ---------------------------------------------------------------------
    def _target(self, target: str | Target | None) -> Target:
        if isinstance(target, Target):  # checked as a URL's: Target("b", "a//b") refused
            return checked_target(target)
        if target is not None:
            return parse_target(target)
        if self.default_target is None:
            raise ConfigError(  # a usage error (exit 2), as on the command line
                "no destination given",
                hint="pass s3://BUCKET/PREFIX, or Uploader(..., default_target=Target(...))",
            )
        return checked_target(self.default_target)

    def transfer_context(
        self, *, run_id: str | None = None
    ) -> AbstractContextManager[TransferContext]:
        """The store, limits, retry policy and part pool this uploader's transfers share
        (for callers that drive transfers themselves, such as split job uploads)."""
        return self._pools(run_id=run_id)

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
