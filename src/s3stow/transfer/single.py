"""Upload of a file below the multipart threshold as one verified PutObject.

The file is read once; the checksum is computed from the very bytes sent and
travels with the request so S3 verifies it; the acknowledged checksum must
echo ours (or, in compatibility mode, the ETag must equal the Content-MD5).
"""

from __future__ import annotations

import hashlib

from s3stow import checksums
from s3stow.errors import TransferError
from s3stow.models import PlannedUpload, Status, UploadResult
from s3stow.transfer.context import (
    TransferContext,
    check_etag,
    ensure_unchanged,
    md5_b64,
    read_range,
)


def put_single(ctx: TransferContext, item: PlannedUpload) -> UploadResult:
    """Upload ``item`` in one request; raise ``TransferError`` on failure."""
    source = item.source
    algorithm = ctx.settings.checksum
    with ctx.limiter.slot(), ctx.budget.hold(source.size):  # slot first: see multipart
        data = read_range(source, 0, source.size)
        ensure_unchanged(source)
        digest = checksums.compute(algorithm, data)
        sha = hashlib.sha256(data).hexdigest() if ctx.settings.sha256_metadata else None
        options = ctx.write_options(source, sha256_hex=sha)
        content_md5 = md5_b64(data) if ctx.compat else None

        def send() -> UploadResult:
            put = ctx.store.put_object(
                item.bucket,
                item.key,
                data,
                digest=None if ctx.compat else digest,
                options=options,
                content_md5=content_md5,
            )
            ctx.limiter.on_success()
            _verify_ack(ctx, item, put.etag, put.checksum, digest, data)
            return UploadResult(
                path=source.path,
                bucket=item.bucket,
                key=item.key,
                status=Status.DONE,
                size=source.size,
                etag=put.etag,
                checksum=digest.b64 if digest else None,
                checksum_algorithm=algorithm if digest else None,
                version_id=put.version_id,
                bytes_sent=source.size,
            )

        result = ctx.retry.run(send, what=item.key)
    ctx.on_bytes(source, source.size)
    ensure_unchanged(source)
    return result


def _verify_ack(
    ctx: TransferContext,
    item: PlannedUpload,
    etag: str,
    acked: str | None,
    digest: checksums.Digest | None,
    data: bytes,
) -> None:
    if ctx.etag_check and ctx.settings.sse != "aws:kms":
        check_etag(etag, data, what=item.key)
    if digest is not None and not ctx.compat:
        if acked is None:
            raise TransferError(
                f"S3 did not acknowledge a checksum for {item.key}",
                code="ChecksumNotAcknowledged",
                hint="the server may not support additional checksums; set checksum_compat: true",
            )
        if acked != digest.b64:
            raise TransferError(
                f"checksum mismatch for {item.key}: sent {digest.b64}, S3 stored {acked}",
                code="ChecksumMismatch",
                transient=True,
            )
