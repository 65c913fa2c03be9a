"""``SplitUploads``: a worker's side of part-level claiming (one huge file, many hosts).

A worker that claims an item at least ``split_above`` bytes large does not upload it
alone: it creates the multipart upload and records one work row per part
(``SplitQueue.open``). Every worker then claims parts before new items, reads its
byte ranges from the shared file, checksums them (the same algorithm as the rest of
the job), sends them and records each part's ETag and checksum. Whoever claims the
completion once every part is done combines the part checksums into the full-object
checksum, completes the upload, verifies the object with a HEAD (size and checksum)
and records it in the ledger; only then is the item done. A part whose file changed
size or mtime fails the whole upload (aborted, reported ``SourceChanged``); a part that
keeps failing fails it after ``max_part_attempts`` claims.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future
from pathlib import Path

from s3stow import checksums
from s3stow.errors import SourceChanged, TransferError
from s3stow.job.splitqueue import ClaimedPart, SplitFile, SplitQueue
from s3stow.keys import Target
from s3stow.models import PartRecord, PlannedUpload, SourceFile, Status, UploadResult
from s3stow.report.observer import Observer
from s3stow.store.body import UNREADABLE
from s3stow.transfer.bodies import buffered_size
from s3stow.transfer.context import TransferContext
from s3stow.transfer.multipart import complete_verified, send_part
from s3stow.transfer.parts import choose_part_size, part_ranges

log = logging.getLogger(__name__)


def _source(path: str, rel_path: str, size: int, mtime_ns: int, grp: str | None) -> SourceFile:
    file = Path(path)
    return SourceFile(file, rel_path, size, mtime_ns, file.parent, grp or "")


class SplitUploads:
    """Opens, sends the parts of, and completes split uploads for one worker."""

    def __init__(
        self,
        queue: SplitQueue,
        ctx: TransferContext,
        target: Target,
        *,
        worker: str,
        lease: float,
        max_part_attempts: int = 5,
        observer: Observer | None = None,
    ) -> None:
        self.queue = queue
        self.observer = observer  # told each split file's outcome, as the engine's files
        self.ctx = ctx
        self.target = target
        self.worker = worker
        self.lease = lease
        self.max_part_attempts = max_part_attempts
        self.parts_sent = 0
        self.done = 0
        self.failed = 0

    # ---- open ---------------------------------------------------------------------
    def open(self, item_id: int, source: SourceFile, key: str) -> None:
        """Create the multipart upload of a claimed item and publish its parts."""
        ctx = self.ctx
        part_size = choose_part_size(source.size, ctx.settings.part_size)
        algorithm = None if ctx.compat else ctx.settings.checksum
        sha = checksums.sha256_hex(str(source.path)) if ctx.settings.sha256_metadata else None
        options = ctx.write_options(source, sha256_hex=sha)

        def create() -> str:
            with ctx.limiter.slot():
                return ctx.store.create_multipart(
                    self.target.bucket, key, algorithm=algorithm, options=options
                )

        upload_id = ctx.retry.run(create, what=key)
        ranges = part_ranges(source.size, part_size)
        kept, old = self.queue.open(
            self.worker,
            item_id,
            upload_id=upload_id,
            part_size=part_size,
            ranges=ranges,
            size=source.size,
            mtime_ns=source.mtime_ns,
            checksum_algorithm=algorithm,
        )
        if not kept:
            log.info("lost the lease on %s before splitting it; aborting %s", key, upload_id)
            self._abort(key, upload_id)
        elif old is not None:
            self._abort(key, old)  # an earlier split of a file that changed since
        else:
            log.info("split %s into %d parts for all workers", key, len(ranges))

    # ---- parts ----------------------------------------------------------------------
    def work_parts(self, parts: list[ClaimedPart]) -> None:
        """Send claimed parts concurrently; record each outcome."""
        futures: list[Future[None]] = [
            self.ctx.part_pool.submit(self._part, part) for part in parts
        ]
        for future in futures:
            future.result()

    def _part(self, part: ClaimedPart) -> None:
        ctx, file = self.ctx, part.file
        if ctx.stop.is_set():
            return  # released at exit
        source = _source(file.path, file.rel_path, file.size, file.mtime_ns, file.grp)
        try:
            info = os.stat(source.path)
            if (info.st_size, info.st_mtime_ns) != (file.size, file.mtime_ns):
                raise SourceChanged(f"{source.path} changed since its upload was split")
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
            if exc.code == "NoSuchUpload":
                return  # completed or aborted by someone else meanwhile
            if exc.code in UNREADABLE:  # the shared file became unreadable: no retry helps
                self._fail(file, "SourceChanged", str(exc))
                return
            log.warning("part %d of %s failed: %s", part.number, file.key, exc)
            if self.queue.part_failed(
                self.worker, part, error=str(exc)[:500], max_attempts=self.max_part_attempts
            ):
                self._fail(file, exc.code or "PartFailed", f"part {part.number}: {exc}")
            return
        if self.queue.part_done(self.worker, part, etag=sent.etag, checksum=sent.checksum):
            self.parts_sent += 1
            ctx.on_bytes(source, part.length)

    # ---- completion --------------------------------------------------------------
    def complete_ready(self) -> bool:
        """Complete one upload whose parts are all done; False when there is none."""
        claimed = self.queue.claim_completion(self.worker, lease=self.lease)
        if claimed is None:
            return False
        file, done = claimed
        source = _source(file.path, file.rel_path, file.size, file.mtime_ns, file.grp)
        item = PlannedUpload(source, self.target.bucket, file.key)
        records = [PartRecord(p.number, p.etag, p.checksum, p.length) for p in done]
        try:
            result = complete_verified(
                self.ctx,
                item,
                upload_id=file.upload_id,
                parts=records,
                algorithm=file.checksum_algorithm,
            )
        except TransferError as exc:
            if exc.transient:  # retries exhausted on a passing fault: any worker may retry
                log.warning("completing %s failed for now: %s", item.key, exc)
                self.queue.unclaim_completion(self.worker, file.item_id)
                self.ctx.stop.wait(1.0)
                return True
            self._record(item, Status.FAILED, error_class=exc.code, error=str(exc))
            if self.queue.finish(
                self.worker, file.item_id, ok=False, error_class=exc.code, error=str(exc)
            ):
                self.failed += 1
                self._abort(item.key, file.upload_id)
            return True
        self._record(item, Status.DONE, etag=result.etag, checksum=result.checksum)
        if self.queue.finish(self.worker, file.item_id, ok=True, error_class=None, error=None):
            self.done += 1
        return True

    # ---- helpers --------------------------------------------------------------------
    def _record(
        self,
        item: PlannedUpload,
        status: Status,
        *,
        etag: str | None = None,
        checksum: str | None = None,
        error_class: str | None = None,
        error: str | None = None,
    ) -> None:
        result = UploadResult(
            path=item.source.path,
            bucket=item.bucket,
            key=item.key,
            status=status,
            size=item.source.size,
            etag=etag,
            checksum=checksum,
            checksum_algorithm=self.ctx.settings.checksum if checksum else None,
            error_class=error_class,
            error=error,
            bytes_sent=item.source.size if status == Status.DONE else 0,
        )
        if self.observer is not None:
            self.observer.on_result(result, item.source)
        if self.ctx.ledger is None:
            return
        self.ctx.ledger.record(
            result, mtime_ns=item.source.mtime_ns, run_id=self.ctx.run_id, group=item.source.group
        )

    def _fail(self, file: SplitFile, error_class: str, error: str) -> None:
        upload_id = self.queue.fail(file.item_id, error_class=error_class, error=error)
        if upload_id is not None:
            log.warning("split upload of %s failed: %s", file.key, error)
            self.failed += 1
            self._abort(file.key, upload_id)
            source = _source(file.path, file.rel_path, file.size, file.mtime_ns, file.grp)
            item = PlannedUpload(source, self.target.bucket, file.key)
            self._record(item, Status.FAILED, error_class=error_class, error=error)

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            with self.ctx.limiter.slot():
                self.ctx.store.abort_multipart(self.target.bucket, key, upload_id=upload_id)
        except TransferError as exc:
            log.warning("could not abort upload %s of %s: %s", upload_id, key, exc)
