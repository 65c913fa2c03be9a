"""Upload of a file below the multipart threshold as one verified PutObject.

The checksum travels with the request so S3 verifies it, and the acknowledged
checksum must echo ours. Where the MD5 is computed (custom endpoints, compatibility
mode) it travels too, as Content-MD5, so a server rejects damaged bytes before
storing them, and the ETag must equal it. A small file is read once and sent from
that buffer; a larger one is hashed in one pass and streamed from the file
(``transfer.bodies``). The file's identity is taken before its first byte is read and
checked before the request and after S3's answer: a file that changed meanwhile is
``SourceChanged``, never done.
"""

from __future__ import annotations

from s3stow.errors import TransferError
from s3stow.models import PlannedUpload, Status, UploadResult
from s3stow.store import checksums
from s3stow.transfer.bodies import Body, blame_the_file, buffered_size, check_etag, prepare_body
from s3stow.transfer.context import TransferContext, ensure_unchanged, open_identity


def put_single(ctx: TransferContext, item: PlannedUpload) -> UploadResult:
    """Upload ``item`` in one request; raise ``TransferError`` on failure."""
    source = item.source
    algorithm = ctx.settings.checksum
    with ctx.limiter.slot(), ctx.budget.hold(buffered_size(source.size)):  # slot first
        identity = open_identity(source)
        body = prepare_body(
            ctx,
            source,
            0,
            source.size,
            bucket=item.bucket,
            key=item.key,
            sha256=ctx.settings.sha256_metadata,
        )
        ensure_unchanged(source, identity)
        # the body may hash SHA-256 for its signature or checksum: metadata only if asked
        sha = body.sha256_hex if ctx.settings.sha256_metadata else None
        options = ctx.write_options(source, sha256_hex=sha)
        digest = body.digest

        def send() -> UploadResult:
            try:  # a validating server refuses a body that is not what was hashed (BadDigest)
                put = ctx.store.put_object(
                    item.bucket,
                    item.key,
                    body.data,
                    digest=None if ctx.compat else digest,
                    options=options,
                    content_md5=body.content_md5,
                )
                ctx.limiter.on_success()
                _verify_ack(ctx, item, put.etag, put.checksum, digest, body)
            except TransferError as exc:
                blamed = blame_the_file(source, body, exc, identity)
                if blamed is exc:
                    raise  # keeps its own cause (the botocore error)
                raise blamed from exc
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
    ensure_unchanged(source, identity)  # after the last byte, before done
    return result


def _verify_ack(
    ctx: TransferContext,
    item: PlannedUpload,
    etag: str,
    acked: str | None,
    digest: checksums.Digest | None,
    body: Body,
) -> None:
    if ctx.checks_etag(item.bucket, item.key) and ctx.settings.sse != "aws:kms":
        check_etag(etag, body, what=item.key)
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
