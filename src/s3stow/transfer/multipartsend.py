"""Sending a multipart upload: one part and the completion.

``send_part`` hashes a byte range of the file, sends it as one UploadPart (retried) and
checks S3's answer; ``complete_verified`` completes an upload from its parts (with the
full-object checksum combined from the parts' own, ``full_checksum``) and proves the
object by HEAD (``verify_object``). No ledger here: ``multipart.py`` records and resumes
one host's uploads around these steps, and a job's split uploads (``job/split.py``),
whose parts many workers send, use them as they are.
"""

from __future__ import annotations

import base64

from s3stow.errors import TransferError
from s3stow.localfiles import FileIdentity
from s3stow.models import PartRecord, PlannedUpload, SourceFile, Status, UploadResult
from s3stow.store import checksums
from s3stow.transfer.bodies import blame_the_file, check_etag, prepare_body
from s3stow.transfer.context import TransferContext


def send_part(
    ctx: TransferContext,
    bucket: str,
    key: str,
    *,
    upload_id: str,
    number: int,
    source: SourceFile,
    offset: int,
    length: int,
    identity: FileIdentity | None = None,
) -> PartRecord:
    """Hash ``length`` bytes of ``source`` at ``offset``, send them as part ``number``
    (retried) and check S3's answer: the ETag against the MD5 where that proves
    something, the checksum when echoed (a mismatch is ``SourceChanged`` when the file
    moved since ``identity`` was taken)."""
    body = prepare_body(ctx, source, offset, length, bucket=bucket, key=key)
    digest = None if ctx.compat else body.digest

    def send() -> PartRecord:
        try:  # a validating server refuses a body that is not what was hashed (BadDigest)
            put = ctx.store.upload_part(
                bucket,
                key,
                upload_id=upload_id,
                number=number,
                body=body.data,
                digest=digest,
                content_md5=body.content_md5,
            )
            ctx.limiter.on_success()
            if ctx.checks_etag(bucket, key) and ctx.settings.sse != "aws:kms":
                check_etag(put.etag, body, what=f"{key} part {number}")
            if digest is not None and put.checksum is not None and put.checksum != digest.b64:
                raise TransferError(
                    f"part {number} of {key}: S3 stored checksum {put.checksum}, sent {digest.b64}",
                    code="ChecksumMismatch",
                    transient=True,
                )
        except TransferError as exc:
            blamed = blame_the_file(source, body, exc, identity)
            if blamed is exc:
                raise  # keeps its own cause (the botocore error)
            raise blamed from exc
        return PartRecord(number, put.etag, digest.b64 if digest else None, length)

    return ctx.retry.run(send, what=f"{key} part {number}")


def full_checksum(ctx: TransferContext, parts: list[PartRecord]) -> str | None:
    algorithm = ctx.settings.checksum
    if ctx.compat or algorithm == "none" or any(p.checksum is None for p in parts):
        return None
    values = [p.checksum for p in parts if p.checksum is not None]
    if algorithm == "sha256":
        return checksums.composite_sha256(values)
    crcs = [
        (int.from_bytes(base64.b64decode(v), "big"), p.size)
        for v, p in zip(values, parts, strict=True)
    ]
    return checksums.combine_parts(algorithm, crcs)


def complete_verified(
    ctx: TransferContext,
    item: PlannedUpload,
    *,
    upload_id: str,
    parts: list[PartRecord],
    algorithm: str | None,
) -> UploadResult:
    """Complete the upload from ``parts`` (retried) and verify the object by HEAD."""
    full = full_checksum(ctx, parts)

    def complete() -> UploadResult:
        try:
            with ctx.limiter.slot():
                put = ctx.store.complete_multipart(
                    item.bucket,
                    item.key,
                    upload_id=upload_id,
                    parts=[(p.number, p.etag, p.checksum) for p in parts],
                    algorithm=algorithm,
                    full_checksum=full,
                    if_none_match=ctx.settings.no_clobber,
                )
            etag, version = put.etag, put.version_id
        except TransferError as exc:
            # An ambiguous Complete (applied, answer lost) retried on a server that then
            # says NoSuchUpload: the object decides.
            if exc.code != "NoSuchUpload":
                raise
            etag, version = "", None
        info = verify_object(ctx, item, full)
        return UploadResult(
            path=item.source.path,
            bucket=item.bucket,
            key=item.key,
            status=Status.DONE,
            size=item.source.size,
            etag=etag or info,
            checksum=full,
            checksum_algorithm=ctx.settings.checksum if full else None,
            version_id=version,
            bytes_sent=sum(p.size for p in parts),
        )

    return ctx.retry.run(complete, what=f"{item.key} complete")


def verify_object(ctx: TransferContext, item: PlannedUpload, full: str | None) -> str:
    """HEAD the completed object: size must match, and the checksum when we have one."""
    with ctx.limiter.slot():
        info = ctx.store.head_object(item.bucket, item.key)
    if info is None:
        raise TransferError(
            f"{item.key} is missing after CompleteMultipartUpload", code="NoSuchKey", transient=True
        )
    if info.size != item.source.size:
        raise TransferError(
            f"{item.key}: S3 has {info.size} bytes, the file has {item.source.size}",
            code="SizeMismatch",
        )
    if full is not None and info.checksum is not None:
        stored = info.checksum.split("-")[0]
        if stored != full.split("-")[0]:
            raise TransferError(
                f"{item.key}: S3 full-object checksum {info.checksum} != local {full}",
                code="ChecksumMismatch",
            )
    elif full is not None and not ctx.compat:
        raise TransferError(
            f"S3 did not return a checksum for {item.key}", code="ChecksumNotAcknowledged"
        )
    return info.etag


__all__ = ["complete_verified", "full_checksum", "send_part", "verify_object"]
