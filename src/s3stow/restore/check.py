"""Verification of restored bytes, in the tier order upload and verify use (``proof.py``).

A downloaded file is renamed into place only when the strongest proof its object
allows holds: S3's checksum (full-object; or COMPOSITE, recomputed over the part
layout: part 1's size from a HEAD, and every part's when the uniform layout does not
reproduce the value), else the ``sha256`` metadata, else a single-part ETag (an MD5
unless KMS or a customer key encrypted the object), else the size. A file already at
the destination is compared the same way (``local_matches``). The file's mtime comes
from the ``mtime`` metadata s3stow stores, else from the object's LastModified.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from s3stow.errors import TransferError
from s3stow.restore.plan import RestoreItem
from s3stow.store.base import ObjectInfo
from s3stow.store.proof import Proof, choose_proof, hash_file
from s3stow.transfer.context import TransferContext

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ChecksumMismatch(TransferError):
    """The bytes read are not the object's, by its strongest proof (not retried)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="checksum-mismatch")


def proof_for(info: ObjectInfo) -> Proof:
    """The proof a restore checks: any stored checksum algorithm, composite included."""
    return choose_proof(info, etag_is_md5=(info.sse or "AES256") == "AES256", composite=True)


def stat(ctx: TransferContext, item: RestoreItem, *, part_number: int | None = None) -> ObjectInfo:
    """HEAD the item's object (retried, within the request limit); gone is an error."""

    def head() -> ObjectInfo | None:
        with ctx.limiter.slot():
            return ctx.store.stat_object(item.bucket, item.key, part_number=part_number)

    info = ctx.retry.run(head, what=item.key)
    if info is None:
        raise TransferError(f"s3://{item.bucket}/{item.key} no longer exists", code="NoSuchKey")
    return info


def ensure_listed(item: RestoreItem, info: ObjectInfo) -> None:
    """The object a HEAD found is the one listed (or the one ``--run``'s upload run
    recorded): another ETag is a ``PreconditionFailed``, as a GET with ``If-Match`` gets."""
    listed = item.info.etag.strip('"')
    if listed and info.etag.strip('"') != listed:
        raise TransferError(
            f"s3://{item.bucket}/{item.key} has ETag {info.etag}, not {item.info.etag}",
            code="PreconditionFailed",
        )


def part_sizes(
    ctx: TransferContext, item: RestoreItem, size: int, parts: int, *, exact: bool = False
) -> list[int]:
    """The sizes of the object's parts: uniform from part 1's (what s3stow and most
    tools upload), or with ``exact`` each part's own (one HEAD per part)."""
    if parts <= 1:
        return [size]
    if exact:
        return [stat(ctx, item, part_number=n).size for n in range(1, parts + 1)]
    first = stat(ctx, item, part_number=1).size
    last = size - (parts - 1) * first
    if not 0 < last <= first:
        return part_sizes(ctx, item, size, parts, exact=True)
    return [first] * (parts - 1) + [last]


def settle(
    ctx: TransferContext,
    item: RestoreItem,
    proof: Proof,
    value: str | None,
    *,
    path: Path,
    size: int,
    layout: list[int] | None = None,
) -> str | None:
    """The proven value of the file at ``path``; ``ChecksumMismatch`` when it does not
    hold. ``value``: computed while downloading (``None``: read the file now)."""
    if not proof.content:
        return None
    if value is None:
        if proof.parts and layout is None:
            layout = part_sizes(ctx, item, size, proof.parts)
        value = hash_file(str(path), proof, layout=layout or ())
    if proof.matches(value):
        return value
    if proof.parts:  # a layout that is not uniform: each part's size, then once more
        exact = part_sizes(ctx, item, size, proof.parts, exact=True)
        if exact != layout:
            value = hash_file(str(path), proof, layout=exact)
            if proof.matches(value):
                return value
    raise ChecksumMismatch(
        f"checksum-mismatch on s3://{item.bucket}/{item.key}: by {proof.tier} "
        f"({proof.algorithm}) S3 has {proof.expected}, the bytes read give {value}; "
        "not written"
    )


def check_md5(item: RestoreItem, value: str | None) -> None:
    """The media table's ``md5_sum``, where the item has one."""
    if item.expect_md5 and (value or "").lower() != item.expect_md5.lower():
        raise TransferError(
            f"md5-mismatch on s3://{item.bucket}/{item.key}: md5_sum is {item.expect_md5}, "
            f"the bytes read give {value}; not written",
            code="md5-mismatch",
        )


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def object_mtime_ns(info: ObjectInfo) -> int | None:
    """The modification time to give the restored file, in nanoseconds."""
    text = info.metadata.get("mtime")
    if text:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None:
            moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
            return (moment - _EPOCH) // timedelta(microseconds=1) * 1000
    if info.last_modified is not None:
        return round(info.last_modified * 1_000_000) * 1000
    return None


def local_matches(ctx: TransferContext, item: RestoreItem) -> tuple[bool | None, str]:
    """Whether the file already at the destination is the object's content:
    ``(True|False, tier)``, or ``(None, "size")`` when only the size could tell."""
    local = os.stat(item.path)
    if item.expect_md5:
        return file_md5(item.path) == item.expect_md5.lower(), "md5_sum"
    if local.st_size != item.info.size:
        return False, "size"
    info = stat(ctx, item)
    ensure_listed(item, info)  # else the file would be judged against another object
    if info.size != local.st_size:
        return False, "size"
    proof = proof_for(info)
    if not proof.content:
        return None, "size"
    layout = part_sizes(ctx, item, info.size, proof.parts) if proof.parts else None
    try:
        settle(ctx, item, proof, None, path=item.path, size=info.size, layout=layout)
    except ChecksumMismatch:
        return False, proof.tier
    return True, proof.tier
