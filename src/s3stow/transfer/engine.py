"""The library API: ``Uploader``.

``upload_file`` (one file), ``upload_tree`` (files and trees) and ``upload_planned``
(explicit (file, key) pairs: retry, archive) turn what they are given into batches of
planned uploads for the run's pipeline (``UploadPipeline``, ``pipeline.py``). For a
tree, discovery and key planning run ahead in their own thread (``RunAhead``, up to
10,000 files ahead) and stream in batches, so the first upload starts before the tree
is fully listed; each found path is counted, reported and recorded here (``_plan``).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from s3stow.errors import ConfigError, SourceError
from s3stow.models import (
    INFORMATIONAL_SKIPS,
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
from s3stow.plan.compare import RemoteIndex
from s3stow.plan.discover import check_sources, discover
from s3stow.plan.keys import build_key, checked_target, parse_target
from s3stow.plan.ownfiles import working_files
from s3stow.plan.planner import Planner, describe_sources, key_claims
from s3stow.report.observer import Observer
from s3stow.transfer.context import TransferContext
from s3stow.transfer.pipeline import UploadPipeline

log = logging.getLogger(__name__)
_BATCH = 256


class Uploader(UploadPipeline):
    """Uploads files and trees to S3, verified, recorded and resumable."""

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
