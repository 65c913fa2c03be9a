"""Multipart upload of one large file, resumable part by part.

The upload id is recorded in the ledger before any part is sent, and each
completed part (number, ETag, checksum) after S3 acknowledges it. On the next
run the same upload id is reused: ListParts is checked against the ledger and
only missing parts are sent. Parts are read and hashed independently (the
full-object CRC is combined from the part CRCs, so resumed parts are not re-read)
and uploaded concurrently in the shared part pool (each part's request and the
Complete are ``multipartsend.py``'s, shared with a job's split uploads). The file's identity
(``localfiles.FileIdentity``) is taken before the first part is read, recorded with the
upload id, and compared after the last part is sent, before Complete: a file that
changed (even rewritten in place with its mtime put back) is ``SourceChanged`` and its
upload aborted. An upload whose file changed between runs, whose object would be
created otherwise (``upload_options``: metadata, content type, SSE, storage class), or
whose id S3 no longer knows, is aborted and started afresh; an upload interrupted or
failed for transient reasons is kept for the next run to resume, unless a later run
proves the object in S3 without it (``abort_stale``: aborted and forgotten).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, wait
from dataclasses import replace

from s3stow.config import Settings
from s3stow.errors import Interrupted, LedgerError, SourceChanged, TransferError
from s3stow.ledger import MultipartState
from s3stow.localfiles import FileIdentity
from s3stow.models import PartRecord, PlannedUpload, UploadResult
from s3stow.store import checksums
from s3stow.store.base import PartInfo
from s3stow.transfer.bodies import buffered_size, prepare_body
from s3stow.transfer.context import TransferContext, ensure_unchanged, open_identity
from s3stow.transfer.parts import choose_part_size, part_ranges

log = logging.getLogger(__name__)


def put_multipart(ctx: TransferContext, item: PlannedUpload) -> UploadResult:
    """Upload ``item`` as a multipart upload, resuming a previous one if possible."""
    source = item.source
    algorithm = ctx.settings.checksum
    part_size = choose_part_size(source.size, ctx.settings.part_size)
    identity = open_identity(source)
    state, done = _resume_state(ctx, item, part_size, identity)
    if state is None:
        sha = None
        if ctx.settings.sha256_metadata:  # one more read of the whole file, shown as hashing
            hashed = ctx.on_hashed
            sha = checksums.sha256_hex(
                str(source.path),
                progress=(lambda n: hashed(source, n)) if hashed is not None else None,
            )
        options = ctx.write_options(source, sha256_hex=sha)
        algo = None if ctx.compat else algorithm

        def create() -> str:
            with ctx.limiter.slot():
                return ctx.store.create_multipart(
                    item.bucket, item.key, algorithm=algo, options=options
                )

        upload_id = ctx.retry.run(create, what=item.key)
        state = MultipartState(
            bucket=item.bucket,
            key=item.key,
            upload_id=upload_id,
            source_path=str(source.path),
            size=source.size,
            mtime_ns=source.mtime_ns,
            part_size=part_size,
            checksum_algorithm=algo,
            ctime_ns=identity.ctime_ns,
            file_id=identity.file_id,
            options=upload_options(ctx.settings),
        )
        if ctx.ledger is not None:
            try:
                ctx.ledger.begin_multipart(state)
            except LedgerError:  # nothing sent, and no run could resume it: leave nothing
                _abort(ctx, item, state, recorded=False)
                raise
    resumed = sum(p.size for p in done.values())
    if resumed:
        ctx.on_resumed(source, resumed)
        log.info("resuming %s: %d parts already uploaded", item.key, len(done))
    futures: list[Future[PartRecord]] = []
    for number, offset, length in part_ranges(source.size, part_size):
        if number not in done:
            futures.append(
                ctx.part_pool.submit(_send_part, ctx, item, state, identity, number, offset, length)
            )
    try:
        for future in futures:
            part = future.result()
            done[part.number] = part
    except BaseException as exc:
        for future in futures:
            future.cancel()
        wait(futures)
        if isinstance(exc, SourceChanged):  # no run can resume it: leave nothing behind
            _abort(ctx, item, state)
        raise
    try:
        ensure_unchanged(source, identity)  # after the last byte, before Complete
    except SourceChanged:
        _abort(ctx, item, state)
        raise
    result = _complete(ctx, item, state, done)
    # The object is the version the parts were read from; a change since is reported,
    # never done, and the next run uploads the new bytes.
    ensure_unchanged(source, identity)
    return replace(result, bytes_sent=source.size - resumed)


def upload_options(settings: Settings) -> str:
    """What a multipart upload is created with beyond the file's bytes and identity:
    parts sent under other settings (``--metadata``, ``--content-type``, ``--sse``,
    ``--storage-class``, ``--sha256-metadata``) would complete an object without them."""
    return json.dumps(
        {
            "content_type": settings.content_type,
            "metadata": sorted(settings.metadata.items()),
            "sha256_metadata": settings.sha256_metadata,
            "sse": settings.sse,
            "sse_kms_key_id": settings.sse_kms_key_id,
            "storage_class": settings.storage_class,
        },
        sort_keys=True,
    )


def _resume_state(
    ctx: TransferContext, item: PlannedUpload, part_size: int, identity: FileIdentity
) -> tuple[MultipartState | None, dict[int, PartRecord]]:
    if ctx.ledger is None:
        return None, {}
    state = ctx.ledger.multipart_state(item.bucket, item.key)
    if state is None:
        return None, {}
    source = item.source
    wanted_algo = None if ctx.compat else ctx.settings.checksum
    recorded = FileIdentity.recorded(state.size, state.mtime_ns, state.ctime_ns, state.file_id)
    if (
        recorded.changes(identity)
        or state.part_size != part_size
        or state.checksum_algorithm != wanted_algo
        or state.source_path != str(source.path)
        or (state.options is not None and state.options != upload_options(ctx.settings))
    ):
        log.info("not resuming %s: the file or settings changed; aborting the old upload", item.key)
        _abort(ctx, item, state)
        return None, {}
    try:
        with ctx.limiter.slot():
            listed = {
                p.number: p
                for p in ctx.store.list_parts(item.bucket, item.key, upload_id=state.upload_id)
            }
    except TransferError as exc:
        if exc.code != "NoSuchUpload":
            raise
        ctx.ledger.forget_multipart(item.bucket, item.key)
        return None, {}
    done = {
        p.number: p
        for p in state.parts
        if p.number in listed
        and listed[p.number].etag == p.etag
        and listed[p.number].size == p.size
    }
    for number, offset, length in part_ranges(source.size, part_size):
        part = listed.get(number)
        if number not in done and part is not None and part.size == length:
            adopted = _adopt(ctx, item, state, part, offset)
            if adopted is not None:
                done[number] = adopted
    return state, done


def _adopt(
    ctx: TransferContext,
    item: PlannedUpload,
    state: MultipartState,
    part: PartInfo,
    offset: int,
) -> PartRecord | None:
    """A part S3 has but the ledger missed (crash before the commit): keep it only if
    its ETag is provably the MD5 of the local bytes at its offset."""
    if "-" in part.etag or ctx.settings.sse == "aws:kms":
        return None
    with ctx.budget.hold(buffered_size(part.size)):
        body = prepare_body(ctx, item.source, offset, part.size, md5=True)
    if body.md5_hex != part.etag:
        return None
    digest = None if ctx.compat else body.digest
    record = PartRecord(part.number, part.etag, digest.b64 if digest else None, part.size)
    if ctx.ledger is not None:
        ctx.ledger.record_part(state.upload_id, record)
    log.info(
        "adopted part %d of %s already in S3 (ETag matches the local MD5)", part.number, item.key
    )
    return record


def _send_part(
    ctx: TransferContext,
    item: PlannedUpload,
    state: MultipartState,
    identity: FileIdentity,
    number: int,
    offset: int,
    length: int,
) -> PartRecord:
    # imported here: every upload imports this module (the worker), only a file sent in
    # parts needs the sending (a one-file upload imports one module fewer)
    from s3stow.transfer.multipartsend import send_part

    if ctx.stop.is_set():
        raise Interrupted("interrupted before sending a part")
    # The request slot is taken before the part is read, so buffered parts never
    # exceed the requests in flight (parts are streamed from the file: one chunk each).
    with ctx.limiter.slot(), ctx.budget.hold(buffered_size(length)):
        part = send_part(
            ctx,
            item.bucket,
            item.key,
            upload_id=state.upload_id,
            number=number,
            source=item.source,
            offset=offset,
            length=length,
            identity=identity,
        )
    if ctx.ledger is not None:
        ctx.ledger.record_part(state.upload_id, part)
    ctx.on_bytes(item.source, length)
    return part


def _complete(
    ctx: TransferContext, item: PlannedUpload, state: MultipartState, done: dict[int, PartRecord]
) -> UploadResult:
    from s3stow.transfer.multipartsend import complete_verified  # as in _send_part

    result = complete_verified(
        ctx,
        item,
        upload_id=state.upload_id,
        parts=[done[n] for n in sorted(done)],
        algorithm=state.checksum_algorithm,
    )
    if ctx.ledger is not None:
        ctx.ledger.forget_multipart(item.bucket, item.key)
    return result


def abort_stale(ctx: TransferContext, item: PlannedUpload) -> None:
    """Abort and forget the upload the ledger recorded for ``item``'s key, if any, once
    its object is proven in S3 by other means (the compare stage's ``remote-match``):
    no run would complete it, and S3 keeps its parts until it is aborted. An id S3 no
    longer knows (completed before a crash could record it, aborted, expired) is fine."""
    if ctx.ledger is None:
        return
    state = ctx.ledger.multipart_state(item.bucket, item.key)
    if state is None:
        return
    try:
        with ctx.limiter.slot():
            ctx.store.abort_multipart(item.bucket, item.key, upload_id=state.upload_id)
    except TransferError as exc:
        if exc.code != "NoSuchUpload":
            log.warning(
                "%s is in S3 already, but its unfinished upload %s could not be aborted: %s; "
                "the next run tries again (or a lifecycle rule for incomplete uploads aborts it)",
                item.key, state.upload_id, exc,
            )  # fmt: skip
            return
    log.info("aborted upload %s of %s: its object is in S3 already", state.upload_id, item.key)
    ctx.ledger.forget_multipart(item.bucket, item.key)


def _abort(
    ctx: TransferContext, item: PlannedUpload, state: MultipartState, *, recorded: bool = True
) -> None:
    try:
        with ctx.limiter.slot():
            ctx.store.abort_multipart(item.bucket, item.key, upload_id=state.upload_id)
    except TransferError as exc:
        log.warning("could not abort upload %s of %s: %s", state.upload_id, item.key, exc)
    if ctx.ledger is not None and recorded:
        ctx.ledger.forget_multipart(item.bucket, item.key)


__all__ = ["abort_stale", "put_multipart", "upload_options"]
