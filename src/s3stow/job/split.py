"""``SplitUploads``: a worker's side of part-level claiming (one huge file, many hosts).

A worker that claims an item at least the job's split threshold does not upload it
alone: it creates the multipart upload and records one work row per part
(``SplitQueue.open``), with the file's identity (size, mtime, inode change time,
inode: ``localfiles.FileIdentity``). Every worker then serves, before new items: uploads left to
abort, completions and restarts, then parts. A part is read from the shared file,
checksummed and sent only while the file keeps its identity; its ETag and checksum
are recorded only while its upload still has the id it was sent to. The completer
checks the file's identity once more right before Complete, combines the part
checksums into the full-object checksum, completes the upload, verifies the object
with a HEAD (size and checksum) and records it done with its ledger row, all as
compare-and-set on the versions it claimed. A changed file fails the upload
(``SourceChanged``, aborted); a part failing ``max_part_attempts`` times fails it; an
upload that vanished (``NoSuchUpload``: a lifecycle rule, an operator, a restarted
server) is started again with a new id up to ``max_restarts`` times, then fails.
A completer that finds it lost the item after Complete re-queues the item if the file
changed meanwhile (its object may have replaced a newer one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

from s3stow.errors import SourceChanged, TransferError
from s3stow.job.rows import Claimed, ClaimedPart, SplitFile, UploadWork
from s3stow.job.splitqueue import SplitQueue
from s3stow.ledger.rows import ItemRecord
from s3stow.localfiles import FileIdentity
from s3stow.models import PartRecord, PlannedUpload, SourceFile, Status, Target, UploadResult
from s3stow.report.observer import Observer
from s3stow.store import checksums
from s3stow.store.body import UNREADABLE
from s3stow.transfer.bodies import buffered_size
from s3stow.transfer.context import TransferContext
from s3stow.transfer.multipartsend import complete_verified, send_part
from s3stow.transfer.parts import choose_part_size, part_ranges

log = logging.getLogger(__name__)
VANISHED = "NoSuchUpload"


def _source(file: SplitFile) -> SourceFile:
    path = Path(file.path)
    return SourceFile(path, file.rel_path, file.size, file.mtime_ns, path.parent, file.grp or "")


def check_identity(path: str | Path, expected: FileIdentity) -> None:
    """Raise ``SourceChanged`` unless the file still has ``expected``'s identity."""
    try:
        changed = expected.changes(FileIdentity.at(path))
    except OSError as exc:
        raise SourceChanged(f"cannot read {path}: {exc.strerror}") from None
    if changed:
        raise SourceChanged(f"{path} changed since its upload was split: {', '.join(changed)}")


class SplitUploads:
    """Opens, sends the parts of, completes, restarts and aborts split uploads."""

    def __init__(
        self,
        queue: SplitQueue,
        ctx: TransferContext,
        target: Target,
        *,
        worker: str,
        lease: float,
        requeue: Callable[[int], bool] | None = None,
        max_part_attempts: int = 5,
        max_restarts: int = 3,
        observer: Observer | None = None,
    ) -> None:
        self.queue = queue
        self.observer = observer  # told each split file's outcome, as the engine's files
        self.ctx = ctx
        self.target = target
        self.worker = worker
        self.lease = lease
        self.requeue = requeue
        self.max_part_attempts = max_part_attempts
        self.max_restarts = max_restarts
        self.parts_sent = 0
        self.done = 0
        self.failed = 0
        self.lost = 0

    # ---- open ---------------------------------------------------------------------
    def create(self, key: str, source: SourceFile) -> str:
        """A new multipart upload for ``key`` (retried)."""
        ctx = self.ctx
        algorithm = None if ctx.compat else ctx.settings.checksum
        sha = checksums.sha256_hex(str(source.path)) if ctx.settings.sha256_metadata else None
        options = ctx.write_options(source, sha256_hex=sha)

        def create() -> str:
            with ctx.limiter.slot():
                return ctx.store.create_multipart(
                    self.target.bucket, key, algorithm=algorithm, options=options
                )

        return ctx.retry.run(create, what=key)

    def open(self, item: Claimed, source: SourceFile, identity: FileIdentity, key: str) -> bool:
        """Create the multipart upload of a claimed item and publish its parts; False
        when the item was lost meanwhile (the new upload is then left to abort)."""
        part_size = choose_part_size(source.size, self.ctx.settings.part_size)
        upload_id = self.create(key, source)
        ranges = part_ranges(source.size, part_size)
        kept = self.queue.open(
            self.worker,
            item,
            upload_id=upload_id,
            part_size=part_size,
            ranges=ranges,
            identity=identity,
            checksum_algorithm=None if self.ctx.compat else self.ctx.settings.checksum,
        )
        if kept:
            log.info("split %s into %d parts for all workers", key, len(ranges))
        else:
            log.info("lost %s before splitting it; its new upload is left to abort", key)
            self.queue.orphans.add(upload_id, key, "its opener lost the item")
        return kept

    # ---- serving ----------------------------------------------------------------------
    def serve(self) -> bool:
        """Abort orphans, complete or restart one upload, or send claimed parts; False
        when there was nothing of the kind."""
        if self.abort_orphans():
            return True
        work = self.queue.completions.claim_work(self.worker, lease=self.lease)
        if work is not None:
            if work.kind == "restart":
                self._restart(work.file)
            else:
                self._complete(work)
            return True
        limit = max(1, self.ctx.settings.concurrency)
        parts = self.queue.claim_parts(self.worker, limit=limit, lease=self.lease)
        if parts:
            futures: list[Future[None]] = [self.ctx.part_pool.submit(self._part, p) for p in parts]
            for future in futures:
                future.result()
        return bool(parts)

    def abort_orphans(self) -> bool:
        orphans = self.queue.orphans.claim(self.worker, lease=self.lease)
        for orphan in orphans:
            try:
                with self.ctx.limiter.slot():
                    self.ctx.store.abort_multipart(
                        self.target.bucket, orphan.key, upload_id=orphan.upload_id
                    )
            except TransferError as exc:
                if exc.code != VANISHED:  # completed, aborted or expired already: fine
                    if self.queue.orphans.failed(
                        orphan.upload_id, max_attempts=5, retry_after=min(self.lease, 30.0)
                    ):
                        log.warning(
                            "gave up aborting upload %s of %s (%s): %s; a lifecycle rule for "
                            "incomplete multipart uploads removes it",
                            orphan.upload_id, orphan.key, orphan.reason, exc,
                        )  # fmt: skip
                    continue
            log.info("aborted upload %s of %s (%s)", orphan.upload_id, orphan.key, orphan.reason)
            self.queue.orphans.aborted(orphan.upload_id)
        return bool(orphans)

    # ---- parts ----------------------------------------------------------------------
    def _part(self, part: ClaimedPart) -> None:
        ctx, file = self.ctx, part.file
        if ctx.stop.is_set():
            return  # released at exit
        source = _source(file)
        try:
            check_identity(source.path, file.identity)
            with ctx.limiter.slot(), ctx.budget.hold(buffered_size(part.length)):
                sent = send_part(
                    ctx,
                    self.target.bucket,
                    file.key,
                    upload_id=file.upload_id,
                    number=part.number,
                    source=source,
                    offset=part.offset,
                    length=part.length,
                )
        except SourceChanged as exc:
            self._fail(file, "SourceChanged", str(exc))
            return
        except OSError as exc:  # the shared file vanished or became unreadable
            self._fail(file, "SourceChanged", f"cannot read {source.path}: {exc.strerror}")
            return
        except TransferError as exc:
            if exc.code in UNREADABLE:  # the shared file became unreadable: no retry helps
                self._fail(file, "SourceChanged", str(exc))
                return
            if exc.code == VANISHED or self._vanished(file):
                self._restart_vanished(file)
                return
            log.warning("part %d of %s failed: %s", part.number, file.key, exc)
            verdict = self.queue.part_failed(
                self.worker, part, error=str(exc)[:500], max_attempts=self.max_part_attempts
            )
            if verdict == "fail":
                self._fail(file, exc.code or "PartFailed", f"part {part.number}: {exc}")
            return
        if self.queue.part_done(self.worker, part, etag=sent.etag, checksum=sent.checksum):
            self.parts_sent += 1
            ctx.on_bytes(source, part.length)
        else:
            self.lost += 1
            log.info("part %d of %s was sent after this worker lost it", part.number, file.key)

    def _vanished(self, file: SplitFile) -> bool:
        """Ask S3 whether ``file``'s upload still exists (after a failure whose error code
        does not say: some servers answer 500 for an aborted upload)."""
        try:
            with self.ctx.limiter.slot():
                self.ctx.store.list_parts(self.target.bucket, file.key, upload_id=file.upload_id)
        except TransferError as exc:
            return exc.code == VANISHED
        return False

    # ---- restart ------------------------------------------------------------------------
    def _restart_vanished(self, file: SplitFile) -> None:
        work = self.queue.completions.request_restart(
            self.worker, file, lease=self.lease, max_restarts=self.max_restarts
        )
        if work == "exhausted":
            self._fail(
                file,
                VANISHED,
                f"the multipart upload of {file.key} vanished {file.restarts + 1} times, "
                f"started again {file.restarts} times (a lifecycle rule that aborts incomplete "
                "uploads, an operator, or a server that lost it); given up",
            )
        elif isinstance(work, UploadWork):
            self._restart(work.file)

    def _restart(self, file: SplitFile) -> None:
        log.warning(
            "the multipart upload of %s vanished (NoSuchUpload); starting it again with a "
            "new upload (restart %d of at most %d)",
            file.key, file.restarts + 1, self.max_restarts,
        )  # fmt: skip
        try:
            upload_id = self.create(file.key, _source(file))
        except TransferError as exc:
            log.warning("cannot restart the upload of %s: %s", file.key, exc)
            self._fail(file, exc.code or "TransferError", str(exc))
            return
        if not self.queue.completions.restarted(self.worker, file, upload_id=upload_id):
            self.queue.orphans.add(upload_id, file.key, "its restarter lost the restart")

    # ---- completion --------------------------------------------------------------------
    def _complete(self, work: UploadWork) -> None:
        file = work.file
        item = PlannedUpload(_source(file), self.target.bucket, file.key)
        records = [PartRecord(p.number, p.etag, p.checksum, p.length) for p in work.parts]
        try:
            check_identity(file.path, file.identity)  # as late as possible before Complete
            result = complete_verified(
                self.ctx,
                item,
                upload_id=file.upload_id,
                parts=records,
                algorithm=file.checksum_algorithm,
            )
        except SourceChanged as exc:
            self._finish(file, item, ok=False, error_class="SourceChanged", error=str(exc))
            return
        except TransferError as exc:
            if self._vanished(file):
                self._restart_vanished(file)
            elif exc.transient:  # retries exhausted on a passing fault: any worker may retry
                log.warning("completing %s failed for now: %s", item.key, exc)
                self.queue.completions.unclaim(self.worker, file)
                self.ctx.stop.wait(1.0)
            else:
                error_class = exc.code or "TransferError"
                self._finish(file, item, ok=False, error_class=error_class, error=str(exc))
            return
        self._finish(file, item, ok=True, result=result)

    def _finish(
        self,
        file: SplitFile,
        item: PlannedUpload,
        *,
        ok: bool,
        result: UploadResult | None = None,
        error_class: str | None = None,
        error: str | None = None,
    ) -> None:
        if result is None:
            result = self._result(item, Status.FAILED, error_class=error_class, error=error)
        store = self.ctx.store.store_id() if result.status == Status.DONE else None
        record = ItemRecord(result, file.mtime_ns, self.ctx.run_id, file.grp, store)
        kept = self.queue.completions.finish(
            self.worker, file, ok=ok, error_class=error_class, error=error, record=record
        )
        if not kept:
            self.lost += 1
            log.warning("%s: this worker lost the item before recording it", file.key)
            if ok:
                self._after_lost_completion(file)
        elif ok:
            self.done += 1
        else:
            self.failed += 1
            log.warning("split upload of %s failed: %s", file.key, error)
        if kept:
            self._tell(result, item)

    def _tell(self, result: UploadResult, item: PlannedUpload) -> None:
        """The observers hear a split file's outcome as they hear the engine's files."""
        if self.observer is not None:
            self.observer.on_result(result, item.source)

    def _after_lost_completion(self, file: SplitFile) -> None:
        """The object was completed from parts of the file as it was when split; if the
        file changed since, that object may have replaced a newer one: upload it again."""
        try:
            check_identity(file.path, file.identity)
        except SourceChanged:
            if self.requeue is not None and self.requeue(file.item_id):
                log.warning("%s changed while its stale upload completed: queued again", file.key)

    # ---- helpers --------------------------------------------------------------------
    def _result(
        self, item: PlannedUpload, status: Status, *, error_class: str | None, error: str | None
    ) -> UploadResult:
        return UploadResult(
            path=item.source.path,
            bucket=item.bucket,
            key=item.key,
            status=status,
            size=item.source.size,
            error_class=error_class,
            error=error,
            bytes_sent=item.source.size if status == Status.DONE else 0,
        )

    def _fail(self, file: SplitFile, error_class: str, error: str) -> None:
        item = PlannedUpload(_source(file), self.target.bucket, file.key)
        result = self._result(item, Status.FAILED, error_class=error_class, error=error)
        record = ItemRecord(result, file.mtime_ns, self.ctx.run_id, file.grp)
        failed = self.queue.completions.fail(
            self.worker, file, error_class=error_class, error=error, record=record
        )
        if failed:
            log.warning("split upload of %s failed: %s", file.key, error)
            self.failed += 1
            self._tell(result, item)
