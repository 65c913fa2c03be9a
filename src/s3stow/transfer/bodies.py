"""The body of one PutObject or UploadPart, with every hash its request needs.

A range below ``STREAM_ABOVE`` is read into memory once and hashed from that
buffer (small files: one read, no second pass). A larger range is hashed in one
chunked pass and then streamed from the file by the store (``FileRange``), so a
64 MiB part costs one 1 MiB buffer, not 64 MiB. The hashes computed are exactly
those the request needs: the checksum S3 verifies, the MD5 when the ETag is
checked or Content-MD5 is sent, the SHA-256 when the payload is signed (as
botocore signs it for that bucket: plain http, or ``payload_signing_enabled``) or
stored as metadata.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from s3stow.errors import SourceChanged, TransferError
from s3stow.localfiles import FileIdentity
from s3stow.models import SourceFile
from s3stow.store import checksums
from s3stow.store.body import FileRange, hash_range, read_range
from s3stow.store.checksums import Digest
from s3stow.transfer.context import TransferContext, ensure_unchanged
from s3stow.units import MiB

STREAM_ABOVE = 1 * MiB  # bodies at least this large are streamed, not buffered
# What a server (or our ETag check) says when the bytes sent do not match their hashes.
DIGEST_ERRORS = ("ChecksumMismatch", "BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch")


@dataclass(frozen=True, slots=True)
class Body:
    """A request body and its hashes."""

    data: bytes | FileRange
    digest: Digest | None  # the configured checksum (sent to S3 unless in compatibility mode)
    md5_hex: str | None  # for the ETag check and Content-MD5
    sha256_hex: str | None  # of these bytes, when asked for

    @property
    def content_md5(self) -> str | None:
        if self.md5_hex is None:
            return None
        return base64.b64encode(bytes.fromhex(self.md5_hex)).decode("ascii")


def buffered_size(length: int) -> int:
    """Memory a body of ``length`` bytes will hold (for the memory budget)."""
    return length if length < STREAM_ABOVE else 0


def prepare_body(
    ctx: TransferContext,
    source: SourceFile,
    offset: int,
    length: int,
    *,
    bucket: str | None = None,
    key: str = "",
    sha256: bool = False,
    md5: bool = False,
) -> Body:
    """Hash ``length`` bytes of ``source`` at ``offset`` for one request to ``bucket``.

    ``sha256``/``md5`` ask for those hashes beyond what the request itself needs."""
    algorithm = None if ctx.settings.checksum == "none" else ctx.settings.checksum
    want_md5 = md5 or ctx.checks_etag(bucket, key)
    if length < STREAM_ABOVE:
        data = read_range(source.path, offset, length)
        return Body(
            data,
            checksums.compute(algorithm, data) if algorithm else None,
            hashlib.md5(data, usedforsecurity=False).hexdigest() if want_md5 else None,
            hashlib.sha256(data).hexdigest() if sha256 else None,
        )
    crc = algorithm if algorithm and checksums.is_full_object(algorithm) else None
    want_sha = sha256 or algorithm == "sha256" or (bucket is not None and ctx.signs_payload(bucket))
    hashes = hash_range(source.path, offset, length, crc=crc, sha256=want_sha, md5=want_md5)
    digest: Digest | None = None
    if crc is not None and hashes.crc is not None:
        digest = checksums.digest_of_crc(crc, hashes.crc)
    elif algorithm == "sha256" and hashes.sha256 is not None:
        digest = checksums.digest_of_sha256(hashes.sha256)
    sha_hex = hashes.sha256.hex() if hashes.sha256 is not None else None
    return Body(
        FileRange(source.path, offset, length, sha256_hex=sha_hex),
        digest,
        hashes.md5_hex,
        sha_hex,
    )


def check_etag(etag: str, body: Body, *, what: str) -> None:
    """Raise a transient ``ChecksumMismatch`` when a plain ETag is not the MD5 sent.

    Catches bytes changed in flight on servers that do not validate checksums."""
    if etag and "-" not in etag and body.md5_hex is not None and etag != body.md5_hex:
        raise TransferError(
            f"{what}: S3's ETag {etag} is not the MD5 of the bytes sent (corrupted in flight?)",
            code="ChecksumMismatch",
            transient=True,
        )


def blame_the_file(
    source: SourceFile, body: Body, exc: TransferError, identity: FileIdentity | None = None
) -> TransferError:
    """A streamed body is read twice (hashed, then sent): a checksum mismatch on it is
    ``SourceChanged`` when the file moved in between (against ``identity``, taken when
    the upload started), else ``exc`` unchanged."""
    if exc.code in DIGEST_ERRORS and not isinstance(body.data, bytes):
        try:
            ensure_unchanged(source, identity)
        except SourceChanged as changed:
            return changed
    return exc
