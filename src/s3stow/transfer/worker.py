"""One file's journey through the transfer stage: ``FileWorker``.

Given the compare stage's decision, a worker proves a listed remote object
equal (then nothing is sent), or uploads the file (single PUT or multipart) and
turns every outcome into an ``UploadResult``: done, changed, failed with the
error class, or planned (interrupted before an outcome). Authentication and
missing-bucket errors are fatal for the run, and so is a ledger that cannot be
written (what cannot be recorded would be sent again by the next run), and an
endpoint that stopped answering (``breaker.py``: files failed in a row with no answer
from it): the worker records the first one and sets the stop event; a single 403
after earlier successes is retried once.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace

from s3stow.config import Settings
from s3stow.errors import (
    AuthError,
    BucketMissingError,
    Interrupted,
    LedgerError,
    S3StowError,
    SourceChanged,
)
from s3stow.models import Decision, PlannedUpload, Reason, SourceFile, Status, UploadResult
from s3stow.plan.compare import remote_matches
from s3stow.report.observer import Observer
from s3stow.store.base import ObjectInfo, ObjectStore
from s3stow.transfer.breaker import EndpointBreaker
from s3stow.transfer.context import TransferContext
from s3stow.transfer.multipart import abort_stale, put_multipart
from s3stow.transfer.single import put_single

log = logging.getLogger(__name__)


class FileWorker:
    """Processes one decided file at a time; shared by the file pool's threads."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ObjectStore,
        observer: Observer,
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.store = store
        self.observer = observer
        self.stop = stop
        self.fatal_error: S3StowError | None = None
        self._auth_retried = False
        self._any_success = False
        self._lock = threading.Lock()
        self.breaker = EndpointBreaker(
            settings.concurrency, store=store, endpoint=settings.endpoint_url
        )

    def fail_run(self, exc: S3StowError) -> None:
        """Make ``exc`` the run's fatal error (the first one stays) and stop new work."""
        with self._lock:
            self.fatal_error = self.fatal_error or exc
        self.stop.set()

    def on_bytes(self, source: SourceFile, count: int) -> None:
        self._any_success = True
        self.breaker.success()
        self.observer.on_bytes(source, count)

    def process(
        self, ctx: TransferContext, decision: Decision, listed: ObjectInfo | None
    ) -> UploadResult:
        """Upload ``decision``'s file, unless S3's object at its key (``listed``) proves
        it is there already. Only uploads and listed objects come here: the engine counts
        a skip with nothing to prove (the ledger's) itself."""
        item = decision.item
        if listed is not None:
            proof = self.prove_remote(item, decision)
            if proof is not None:
                if proof.reason == Reason.REMOTE_MATCH:
                    self._abort_stale(ctx, item)
                return proof
            decision = Decision(item, True, Reason.CHANGED)
        return self.transfer(ctx, item, decision.reason)

    def _abort_stale(self, ctx: TransferContext, item: PlannedUpload) -> None:
        """An unfinished upload of an earlier run for a key proven in S3: aborted and
        forgotten (a failure to is only a warning: the file is done either way)."""
        try:
            abort_stale(ctx, item)
        except S3StowError as exc:
            log.warning("could not clean the unfinished upload of %s: %s", item.key, exc)

    def prove_remote(self, item: PlannedUpload, decision: Decision) -> UploadResult | None:
        """A DONE result when S3 already holds this file's content, else ``None``."""
        try:
            info = self.store.head_object(item.bucket, item.key)
            if info is None:
                return None
            if decision.reason == Reason.NO_CLOBBER:
                log.info(
                    "not uploaded %s: s3://%s/%s exists (--no-clobber)",
                    item.source.path,
                    item.bucket,
                    item.key,
                )
                return UploadResult(
                    item.source.path,
                    item.bucket,
                    item.key,
                    Status.SKIPPED,
                    size=item.source.size,
                    reason=Reason.NO_CLOBBER,
                )
            source = item.source
            equal, tier, local = remote_matches(
                item,
                info,
                settings=self.settings,
                progress=lambda n: self.observer.on_hashed(source, n),
            )
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

    def transfer(self, ctx: TransferContext, item: PlannedUpload, reason: Reason) -> UploadResult:
        source = item.source
        if self.stop.is_set():
            return UploadResult(source.path, item.bucket, item.key, Status.PLANNED)
        self.observer.on_file_start(source, item.key)
        upload = put_multipart if source.size > self.settings.multipart_threshold else put_single
        attempts = 1
        while True:
            try:
                result = replace(upload(ctx, item), attempts=attempts, reason=reason)
                self.breaker.success()
                return result
            except Interrupted:
                return UploadResult(source.path, item.bucket, item.key, Status.PLANNED)
            except LedgerError as exc:  # no outcome: the run stops, this file is not failed
                self.fail_run(exc)
                return UploadResult(source.path, item.bucket, item.key, Status.PLANNED)
            except SourceChanged as exc:
                return _failure(item, exc, Status.CHANGED, attempts)
            except (AuthError, BucketMissingError) as exc:
                if isinstance(exc, AuthError) and self._may_retry_auth():
                    attempts += 1
                    continue
                self.fail_run(exc)
                return _failure(item, exc, Status.FAILED, attempts)
            except (S3StowError, OSError) as exc:
                if self.breaker.left_pending(exc, fail_run=self.fail_run):  # the run's error
                    return UploadResult(source.path, item.bucket, item.key, Status.PLANNED)
                return _failure(item, exc, Status.FAILED, attempts)

    def _may_retry_auth(self) -> bool:
        """A single 403 after earlier successes is retried once per run; then fatal."""
        with self._lock:
            if self._auth_retried or not self._any_success:
                return False
            self._auth_retried = True
            return True


def _failure(item: PlannedUpload, exc: Exception, status: Status, attempts: int) -> UploadResult:
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
