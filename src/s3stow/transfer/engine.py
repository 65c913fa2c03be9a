"""The upload pipeline and the library API: ``Uploader``.

discover -> plan keys -> compare (ledger, then one listing) -> transfer (with
retry) -> record (ledger) -> report (observers). Discovery streams in batches,
so the first upload starts before the tree is fully listed; at most
``2 x concurrency`` files are in flight at once. Parts of large files run in a
second pool; ``RequestLimiter`` caps the requests of both at ``concurrency``.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from s3stow.compare import RemoteIndex, decide, remote_matches
from s3stow.config import Settings
from s3stow.discover import check_sources, discover
from s3stow.errors import AuthError, BucketMissingError, Interrupted, S3StowError, TransferError
from s3stow.keys import Target, build_key, parse_target
from s3stow.ledger import Ledger
from s3stow.models import (
    Decision,
    PlannedUpload,
    Reason,
    RunSummary,
    Skipped,
    Source,
    SourceFile,
    Status,
    UploadResult,
)
from s3stow.plan import Planner, Refused, describe_sources
from s3stow.report.observer import Fanout, Observer
from s3stow.store.base import ObjectInfo, ObjectStore
from s3stow.store.dryrun import DryRunStore
from s3stow.store.s3 import S3Store
from s3stow.transfer.context import SourceChanged, TransferContext
from s3stow.transfer.limits import MemoryBudget, RequestLimiter
from s3stow.transfer.multipart import put_multipart
from s3stow.transfer.retry import RetryPolicy
from s3stow.transfer.single import put_single

log = logging.getLogger(__name__)
_BATCH = 256
_INFORMATIONAL = frozenset({"Symlink", "SpecialFile"})


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


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
    ) -> None:
        self.settings = settings
        self.limiter = RequestLimiter(settings.concurrency)
        real = store or S3Store.from_settings(settings, on_throttle=self.limiter.on_throttle)
        self.store: ObjectStore = DryRunStore(real) if settings.dry_run else real
        self.ledger = ledger
        self.observer = Fanout(list(observers))
        self.default_target = default_target
        self.stop = threading.Event()
        self.fatal_error: S3StowError | None = None
        self._auth_retried = False
        self._any_success = False
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Uploader:
        """Build from ``S3STOW_*`` and the seed upload component's variables.

        ``BUCKET_NAME`` (required unless a target is given later), ``PREFIX``,
        ``MAX_RETRIES`` (file-level retries) and ``RETRY_BASE_DELAY``.
        """
        from s3stow.envcompat import settings_and_target_from_env

        settings, target = settings_and_target_from_env(env)
        return cls(settings, default_target=target, **kwargs)

    # ---- public API -----------------------------------------------------------------
    def check_bucket_access(self, bucket: str | None = None) -> None:
        """Raise ``AuthError``/``BucketMissingError`` unless the bucket is reachable."""
        self.store.head_bucket(bucket or self._target(None).bucket)

    def request_stop(self) -> None:
        """Stop starting new work; in-flight requests finish (first Ctrl+C)."""
        self.stop.set()

    def upload_file(
        self, path: str | Path, key: str | None = None, *, target: str | Target | None = None
    ) -> UploadResult:
        """Upload one file (to ``key``, or prefix + file name) and return its result."""
        resolved = self._target(target)
        path = Path(path)
        found = next(iter(discover(check_sources([path]))))
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
            if planned is None or isinstance(planned, Refused):
                reason = planned.reason if planned is not None else "not selected"
                return UploadResult(
                    path, resolved.bucket, "", Status.FAILED, error_class="UnsafeKey", error=reason
                )
            item = planned
        else:
            item = PlannedUpload(found, resolved.bucket, build_key("", key))
        with self._pools() as ctx:
            result = self._transfer(ctx, item, Reason.NEW)
        if self.ledger is not None:
            self.ledger.record(result, mtime_ns=found.mtime_ns, run_id=ctx.run_id)
            self.ledger.flush()
        if self.fatal_error is not None:
            raise self.fatal_error
        return result

    def upload_tree(
        self,
        sources: Iterable[str | Path],
        target: str | Target | None = None,
        *,
        run_id: str | None = None,
    ) -> RunSummary:
        """Upload every file under ``sources``; the summary says what happened to each."""
        resolved = self._target(target)
        planner = Planner(self.settings, resolved)
        roots = check_sources(planner.sources([Path(s) for s in sources]))
        summary = RunSummary(run_id or new_run_id())
        started = time.monotonic()
        self.observer.on_start(summary.run_id, resolved.url)
        self.store.head_bucket(resolved.bucket)
        if self.ledger is not None and not self.settings.dry_run:
            self.ledger.start_run(
                summary.run_id,
                command="upload",
                bucket=resolved.bucket,
                prefix=resolved.prefix,
                sources=describe_sources(roots),
                settings=self.settings.model_dump(mode="json"),
            )
        try:
            self._pipeline(roots, planner, summary)
        finally:
            summary.elapsed = time.monotonic() - started
            summary.interrupted = self.stop.is_set() and self.fatal_error is None
            if self.fatal_error is not None:
                summary.fatal = str(self.fatal_error)
            if self.ledger is not None:
                self.ledger.flush()
                if not self.settings.dry_run:
                    status = (
                        "interrupted"
                        if summary.interrupted
                        else ("done" if summary.ok else "failed")
                    )
                    self.ledger.finish_run(summary.run_id, status=status, summary=summary.totals())
            self.observer.on_finish(summary)
        return summary

    # ---- pipeline -------------------------------------------------------------------
    def _pipeline(self, roots: list[Path | Source], planner: Planner, summary: RunSummary) -> None:
        target = planner.target
        remote = RemoteIndex(self.store, target.bucket, planner.template.static_prefix)
        budget_left = self.settings.limit
        pending: dict[Future[UploadResult], SourceFile] = {}
        max_pending = 2 * self.settings.concurrency
        with (
            self._pools(run_id=summary.run_id) as ctx,
            ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="file") as files,
        ):
            for batch in _batched(discover(roots, follow_symlinks=self.settings.follow_symlinks)):
                if self.stop.is_set():
                    break
                planned = self._plan(batch, planner, summary)
                for decision, listed in decide(
                    planned, ledger=self.ledger, remote=remote, settings=self.settings
                ):
                    self.observer.on_decision(decision)
                    source = decision.item.source
                    if not decision.upload and listed is None:
                        summary.skipped += 1
                        summary.count_group(source.group, "skipped")
                        continue
                    if decision.upload and budget_left is not None:
                        if budget_left <= 0:
                            summary.skipped += 1
                            continue
                        budget_left -= 1
                    if self.settings.dry_run and decision.upload:
                        summary.would_upload.append(decision)
                        continue
                    while len(pending) >= max_pending and not self.stop.is_set():
                        self._drain(pending, summary, block=True)
                    if self.stop.is_set():
                        break
                    future = files.submit(self._process, ctx, decision, listed)
                    pending[future] = source
                self._drain(pending, summary, block=False)
            while pending:
                self._drain(pending, summary, block=True)

    def _plan(
        self, batch: list[SourceFile | Skipped], planner: Planner, summary: RunSummary
    ) -> list[PlannedUpload]:
        planned = []
        bucket = planner.target.bucket
        for found in batch:
            if isinstance(found, Skipped):
                self.observer.on_skipped_path(found)
                summary.files += 1
                if found.error_class in _INFORMATIONAL:
                    summary.skipped += 1
                else:
                    self._count(
                        summary,
                        UploadResult(
                            found.path,
                            bucket,
                            "",
                            Status.FAILED,
                            error_class=found.error_class,
                            error=found.reason,
                        ),
                        None,
                    )
                continue
            outcome = planner.plan(found)
            if outcome is None:
                continue
            summary.files += 1
            summary.bytes_total += found.size
            self.observer.on_discovered(found)
            if isinstance(outcome, Refused):
                self._count(
                    summary,
                    UploadResult(
                        found.path,
                        bucket,
                        outcome.key,
                        Status.FAILED,
                        size=found.size,
                        error_class=outcome.error_class,
                        error=outcome.reason,
                    ),
                    found,
                )
                continue
            planned.append(outcome)
        return planned

    def _drain(
        self, pending: dict[Future[UploadResult], SourceFile], summary: RunSummary, *, block: bool
    ) -> None:
        if not pending:
            return
        done, _ = wait(pending, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for future in done:
            source = pending.pop(future)
            result = future.result()
            if result.status == Status.PLANNED:  # interrupted before an outcome
                continue
            if self.ledger is not None and not self.settings.dry_run:
                self.ledger.record(result, mtime_ns=source.mtime_ns, run_id=summary.run_id)
            self._count(summary, result, source)

    def _count(self, summary: RunSummary, result: UploadResult, source: SourceFile | None) -> None:
        group = source.group if source is not None else "(none)"
        if result.status == Status.DONE and result.reason == Reason.REMOTE_MATCH:
            summary.skipped += 1
            summary.count_group(group, "skipped")
        elif result.status == Status.DONE:
            summary.uploaded += 1
            summary.bytes_uploaded += result.bytes_sent
            summary.count_group(group, "uploaded", result.bytes_sent)
        elif result.status == Status.SKIPPED:
            summary.skipped += 1
            summary.count_group(group, "skipped")
        else:
            if result.status == Status.CHANGED:
                summary.changed += 1
            else:
                summary.failed += 1
            summary.failures.append(result)
            summary.count_group(group, "failed")
        self.observer.on_result(result, source)

    # ---- one file ---------------------------------------------------------------------
    def _process(
        self, ctx: TransferContext, decision: Decision, listed: ObjectInfo | None
    ) -> UploadResult:
        item = decision.item
        if listed is not None:
            proof = self._prove_remote(item, decision)
            if proof is not None:
                return proof
            decision = Decision(item, True, Reason.CHANGED)
        if not decision.upload:
            return UploadResult(
                item.source.path,
                item.bucket,
                item.key,
                Status.SKIPPED,
                size=item.source.size,
                reason=decision.reason,
            )
        return self._transfer(ctx, item, decision.reason)

    def _prove_remote(self, item: PlannedUpload, decision: Decision) -> UploadResult | None:
        try:
            info = self.store.head_object(item.bucket, item.key)
            if info is None:
                return None
            if decision.reason == Reason.NO_CLOBBER:
                return UploadResult(
                    item.source.path,
                    item.bucket,
                    item.key,
                    Status.SKIPPED,
                    size=item.source.size,
                    reason=Reason.NO_CLOBBER,
                )
            equal, tier, local = remote_matches(item, info, settings=self.settings)
        except (S3StowError, OSError) as exc:
            log.info("cannot prove %s matches: %s; uploading it", item.key, exc)
            return None
        if not equal:
            return None
        log.debug("%s already in S3 (matched by %s)", item.key, tier)
        return UploadResult(
            item.source.path,
            item.bucket,
            item.key,
            Status.DONE,
            size=item.source.size,
            etag=info.etag,
            checksum=local,
            checksum_algorithm=self.settings.checksum if local else None,
            reason=Reason.REMOTE_MATCH,
            attempts=0,
        )

    def _transfer(self, ctx: TransferContext, item: PlannedUpload, reason: Reason) -> UploadResult:
        source = item.source
        if self.stop.is_set():
            return UploadResult(source.path, item.bucket, item.key, Status.PLANNED)
        self.observer.on_file_start(source, item.key)
        upload = put_multipart if source.size > self.settings.multipart_threshold else put_single
        attempts = 1
        while True:
            try:
                result = upload(ctx, item)
                return _with(result, attempts=attempts, reason=reason)
            except Interrupted:
                return UploadResult(source.path, item.bucket, item.key, Status.PLANNED)
            except SourceChanged as exc:
                return self._failure(item, exc, Status.CHANGED, attempts)
            except (AuthError, BucketMissingError) as exc:
                if isinstance(exc, AuthError) and self._may_retry_auth():
                    attempts += 1
                    continue
                with self._lock:
                    self.fatal_error = self.fatal_error or exc
                self.stop.set()
                return self._failure(item, exc, Status.FAILED, attempts)
            except TransferError as exc:
                return self._failure(item, exc, Status.FAILED, attempts)
            except S3StowError as exc:
                return self._failure(item, exc, Status.FAILED, attempts)
            except OSError as exc:
                return self._failure(item, exc, Status.FAILED, attempts)

    def _may_retry_auth(self) -> bool:
        """A single 403 after earlier successes is retried once per run; then fatal."""
        with self._lock:
            if self._auth_retried or not self._any_success:
                return False
            self._auth_retried = True
            return True

    def _failure(
        self, item: PlannedUpload, exc: Exception, status: Status, attempts: int
    ) -> UploadResult:
        code = getattr(exc, "code", None) or type(exc).__name__
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return UploadResult(
            item.source.path,
            item.bucket,
            item.key,
            status,
            size=item.source.size,
            error_class=code,
            error=message,
            attempts=attempts,
        )

    # ---- plumbing ---------------------------------------------------------------------
    def _target(self, target: str | Target | None) -> Target:
        if isinstance(target, Target):
            return target
        if target is not None:
            return parse_target(target)
        if self.default_target is None:
            raise S3StowError("no destination given", hint="pass s3://BUCKET/PREFIX")
        return self.default_target

    def _pools(self, *, run_id: str | None = None) -> _Pools:
        return _Pools(self, run_id or new_run_id())

    def _on_bytes(self, source: SourceFile, count: int) -> None:
        self._any_success = True
        self.observer.on_bytes(source, count)


class _Pools:
    """Context manager owning the part pool and the shared transfer context."""

    def __init__(self, uploader: Uploader, run_id: str) -> None:
        self.uploader = uploader
        self.run_id = run_id
        self.pool: ThreadPoolExecutor | None = None

    def __enter__(self) -> TransferContext:
        u = self.uploader
        s = u.settings
        self.pool = ThreadPoolExecutor(s.concurrency, thread_name_prefix="part")
        return TransferContext(
            settings=s,
            store=u.store,
            ledger=None if s.dry_run else u.ledger,
            limiter=u.limiter,
            budget=MemoryBudget(s.memory_limit),
            retry=RetryPolicy(
                retries=s.file_retries,
                base_delay=s.retry_base_delay,
                max_delay=s.retry_max_delay,
                stop=u.stop,
            ),
            stop=u.stop,
            part_pool=self.pool,
            run_id=self.run_id,
            on_bytes=u._on_bytes,
        )

    def __exit__(self, *exc: object) -> None:
        assert self.pool is not None
        self.pool.shutdown(wait=True, cancel_futures=True)


def _batched(found: Iterator[SourceFile | Skipped]) -> Iterator[list[SourceFile | Skipped]]:
    while batch := list(itertools.islice(found, _BATCH)):
        yield batch


def _with(result: UploadResult, *, attempts: int, reason: Reason) -> UploadResult:
    from dataclasses import replace

    return replace(result, attempts=attempts, reason=reason)
