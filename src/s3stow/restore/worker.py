"""One decided restore item to its outcome: ``RestoreWorker``.

A local file already at the destination is compared with the object first
(``check.local_matches``): the same content is kept and recorded (``local-match``);
a different one is replaced only with ``--overwrite``, else reported as
``local-exists``, so local data is never lost. An archived object goes through
``glacier.state`` (report, request, or wait). Everything else is fetched and
verified (``download.fetch``). Every outcome becomes an ``UploadResult`` whose
``error_class`` names what went wrong: ``checksum-mismatch``, ``md5-mismatch``,
``changed-remotely`` (the object changed during the download), ``replaced-since-run``
(``--run``: the object is no longer the one the upload run recorded), ``local-exists``,
``archived``, ``restore-pending``, an S3 error code, or the OS error. Credentials,
permission and missing-bucket errors are fatal for the run, as in an upload, and so is
an endpoint that stopped answering (``transfer/breaker.py``).
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
from dataclasses import dataclass, field
from pathlib import Path

from s3stow.errors import (
    AuthError,
    BucketMissingError,
    Interrupted,
    LedgerError,
    S3StowError,
    TransferError,
)
from s3stow.ledger.restores import RestoreEntry, RestoreLedger
from s3stow.models import Decision, Reason, Status, UploadResult
from s3stow.report.observer import Observer
from s3stow.restore import glacier
from s3stow.restore.check import ensure_listed, local_matches, stat
from s3stow.restore.download import fetch
from s3stow.restore.glacier import GlacierOptions
from s3stow.restore.paths import Folders, UnsafePath
from s3stow.restore.plan import RestoreItem
from s3stow.transfer.breaker import EndpointBreaker
from s3stow.transfer.context import TransferContext
from s3stow.transfer.limits import StreamLimiter

log = logging.getLogger(__name__)
REPLACED = "replaced-since-run"  # restore --run: the run's object was replaced since


@dataclass(frozen=True, slots=True)
class RestoreOptions:
    """What a restore may do beyond fetching: replace files, handle archived objects."""

    overwrite: bool = False
    glacier: GlacierOptions = field(default_factory=GlacierOptions)


class RestoreWorker:
    """Processes one decided item at a time; shared by the file pool's threads."""

    def __init__(
        self,
        *,
        options: RestoreOptions,
        observer: Observer,
        stop: threading.Event,
        restores: RestoreLedger | None,
        streams: StreamLimiter | None = None,
        breaker: EndpointBreaker | None = None,
    ) -> None:
        self.breaker = breaker  # an endpoint that stopped answering stops the run
        self.options = options
        self.streams = streams  # the run's limit on ranges in flight
        self.observer = observer
        self.stop = stop
        self.restores = restores
        self.fatal_error: S3StowError | None = None
        self.folders = Folders()  # made and checked by this run (a new run: a new one)
        self._lock = threading.Lock()

    def process(
        self,
        ctx: TransferContext,
        decision: Decision,
        item: RestoreItem,
        entry: RestoreEntry | None,
    ) -> UploadResult:
        if self.stop.is_set():
            return UploadResult(item.path, item.bucket, item.key, Status.PLANNED)
        try:
            if decision.reason == Reason.LOCAL_EXISTS:
                kept = self._existing(ctx, item)
                if kept is not None:
                    return kept
            if decision.reason == Reason.ARCHIVED or glacier.archived(item.info):
                verdict = glacier.state(ctx, item, self.options.glacier)
                if verdict != glacier.READABLE:
                    return self._archived(item, verdict)
            self.observer.on_file_start(item.source, item.key)
            try:
                got = fetch(
                    ctx,
                    item,
                    restores=self.restores,
                    entry=entry,
                    folders=self.folders,
                    streams=self.streams,
                )
            except TransferError as exc:
                if exc.code != "InvalidObjectState":  # an archived object the plan did not see
                    raise
                verdict = glacier.state(ctx, item, self.options.glacier)
                if verdict == glacier.READABLE:
                    raise
                return self._archived(item, verdict)
            if self.breaker is not None:
                self.breaker.success()
            return UploadResult(
                item.path,
                item.bucket,
                item.key,
                Status.DONE,
                size=item.info.size,
                etag=got.etag,
                checksum=got.value,
                checksum_algorithm=got.algorithm,
                bytes_sent=got.received,
                reason=decision.reason,
                tier=got.tier,
            )
        except Interrupted:
            return UploadResult(item.path, item.bucket, item.key, Status.PLANNED)
        except (AuthError, BucketMissingError, LedgerError) as exc:
            self.fail_run(exc)  # a ledger write too: a range not recorded is not resumable
            return item.failed(getattr(exc, "code", type(exc).__name__), _first_line(exc))
        except TransferError as exc:
            if self._endpoint_gone(exc):  # the run's error, not this file's
                return UploadResult(item.path, item.bucket, item.key, Status.PLANNED)
            return _transfer_failed(item, exc)
        except UnsafePath as exc:
            return item.failed("unsafe-path", f"{exc}; not written")
        except OSError as exc:
            return item.failed(type(exc).__name__, f"{item.path}: {exc.strerror or exc}")
        except S3StowError as exc:
            return item.failed(type(exc).__name__, _first_line(exc))

    def _endpoint_gone(self, exc: TransferError) -> bool:
        """Count ``exc`` in the endpoint breaker (``transfer/breaker.py``), as an upload
        does; whether the run had already stopped for its endpoint (the item is left
        pending)."""
        if self.breaker is None:
            return False
        return self.breaker.left_pending(exc, fail_run=self.fail_run)

    def fail_run(self, exc: S3StowError) -> None:
        """Stop the run for ``exc`` (the first such error is the run's: exit 3); what is
        in flight finishes, as after Ctrl+C."""
        with self._lock:
            self.fatal_error = self.fatal_error or for_restore(exc)
        self.stop.set()

    def poll(self, ctx: TransferContext, item: RestoreItem) -> bool:
        """Whether an archived object has become readable (one HEAD)."""
        return not glacier.archived_unreadable(stat(ctx, item))

    def _existing(self, ctx: TransferContext, item: RestoreItem) -> UploadResult | None:
        """A kept result for a local file in the way, or ``None`` to download over it."""
        blocker = _file_above(item.path)
        if blocker is not None:
            return item.failed(
                "local-exists", f"{blocker} is a file where a folder is needed; not replaced"
            )
        if os.path.isdir(item.path):
            return item.failed("local-exists", f"{item.path} is a folder; not replaced")
        equal, tier = local_matches(ctx, item)
        if equal:
            return UploadResult(
                item.path,
                item.bucket,
                item.key,
                Status.SKIPPED,
                size=item.info.size,
                etag=item.info.etag,
                reason=Reason.LOCAL_MATCH,
                tier=tier,
                attempts=0,
            )
        if self.options.overwrite:
            log.info("replacing %s: it differs from the object (--overwrite)", item.path)
            return None
        why = "differs from the object" if equal is False else "has the same size, but the object"
        if equal is None:
            why += " has no checksum to prove it is the same"
        return item.failed(
            "local-exists", f"{item.path} {why}; kept (pass --overwrite to replace it)"
        )

    def _archived(self, item: RestoreItem, verdict: str) -> UploadResult:
        return item.failed(verdict, glacier.message(item, verdict, self.options.glacier))


def for_restore(exc: S3StowError) -> S3StowError:
    """``exc`` said for a restore: a missing bucket's hint (an upload's: create it) says
    what to check instead; a restore reads a bucket, and an empty new one has nothing."""
    if isinstance(exc, BucketMissingError):
        exc.hint = (
            "check the bucket's name, --region and --endpoint-url (a restore creates no bucket)"
        )
    return exc


def since_run(ctx: TransferContext, item: RestoreItem) -> UploadResult | None:
    """``restore --run --dry-run``: the failure the real run would report for an object
    replaced or deleted since the upload run recorded it (one HEAD, a read), else
    ``None``: the object is still the run's."""
    try:
        ensure_listed(item, stat(ctx, item))
    except TransferError as exc:
        return _transfer_failed(item, exc)
    return None


def _transfer_failed(item: RestoreItem, exc: TransferError) -> UploadResult:
    """The result of a failed request: an object changed or deleted since it was
    planned is said as such, any other failure by its code."""
    if exc.code == "PreconditionFailed":
        return _changed(item)
    if exc.code == "NoSuchKey":
        return _deleted(item)
    return item.failed(exc.code, _first_line(exc))


def _changed(item: RestoreItem) -> UploadResult:
    """The object is not the one the plan named (another ETag): what the user can do
    depends on where the plan's ETag came from."""
    where = f"s3://{item.bucket}/{item.key}"
    if item.run is None:  # the listing: the object changed since, the next listing has it
        return item.failed(
            "changed-remotely",
            f"{where} changed while it was being restored (its ETag is no longer the one "
            "listed); nothing written; run again to restore the new version",
        )
    # restore --run: the ledger's ETag; running again finds the same replacement
    folder = shlex.quote(str(item.path.parent))
    return item.failed(
        REPLACED,
        f"{where} was replaced since upload run {item.run} stored it (its ETag is not "
        "the one the run recorded); nothing written. To restore the current object: "
        f"s3stow restore {shlex.quote(where)} {folder} (without --run); the version the "
        "run stored is gone unless the bucket keeps versions "
        f"(s3stow bucket check {item.bucket} says whether it does)",
    )


def _deleted(item: RestoreItem) -> UploadResult:
    """The object is gone since the plan named it."""
    where = f"s3://{item.bucket}/{item.key}"
    if item.run is None and not item.info.etag:  # archive restore: a row's URL, never listed
        why = "does not exist (no object has this key); nothing written"
    elif item.run is None:
        why = "no longer exists (deleted since it was listed); nothing written"
    else:
        why = (
            f"was deleted since upload run {item.run} stored it; nothing written. The "
            "version the run stored is gone unless the bucket keeps versions "
            f"(s3stow bucket check {item.bucket} says whether it does)"
        )
    return item.failed("NoSuchKey", f"{where} {why}")


def _file_above(path: Path) -> Path | None:
    """The nearest folder above ``path`` that is in fact something else (a file), if any
    (``--overwrite`` never turns a file into a folder)."""
    for parent in path.parents:
        if os.path.isdir(parent):
            return None
        if os.path.lexists(parent):
            return parent
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
