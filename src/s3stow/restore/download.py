"""Fetching one object into its local file: one GET, or ranged GETs that resume.

Bytes go to a temporary file beside the destination (``paths.temp_path``; made anew,
and never opened through a symlink at its name, which would lead out of DEST); only when
the check holds (``check.py``) does the file get its mtime and replace the
destination (``os.replace``: atomic, and a reader never sees half a file).

An object up to ``multipart_threshold`` is one GET, hashed while it streams. A
larger one is fetched in ranges (``part_size``, else ``RANGE_SIZE``; a COMPOSITE
checksum's parts), in parallel in the part pool, each with ``If-Match`` on the
ETag so a changed object fails rather than mixing two versions. How many ranges are
in flight is the run's ``StreamLimiter``'s call: it starts at ``START_STREAMS`` and
doubles while the bytes per second rise with it, up to ``concurrency``. The download
id, ETag and range size are recorded before the first range, and each range after
its bytes are written, with its digest. After a crash the next run finds them,
re-reads the recorded ranges and keeps those whose digest still holds, and fetches
only the rest (with the range size recorded, whatever the default is now); an object
whose ETag changed since starts over. The digest of a range is the object's own CRC
(full-object CRCs combine, so the whole file is never re-read) or a composite's part
digest; for other proofs it is a CRC64NVME used only to check the resumed bytes, and
the proof reads the finished file once.
"""

from __future__ import annotations

import io
import logging
import os
import time
import uuid
from concurrent.futures import Future, wait
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG

from s3stow.errors import Interrupted, TransferError
from s3stow.ledger.restores import RestoreEntry, RestoreLedger, RestoreRecord
from s3stow.restore.check import (
    check_md5,
    ensure_listed,
    file_md5,
    object_mtime_ns,
    part_sizes,
    proof_for,
    settle,
    stat,
)
from s3stow.restore.glacier import archived_unreadable
from s3stow.restore.paths import Folders, temp_path
from s3stow.restore.plan import RestoreItem
from s3stow.store.base import ObjectBody, ObjectInfo
from s3stow.store.proof import Hasher, Proof
from s3stow.transfer.context import TransferContext
from s3stow.transfer.limits import StreamLimiter
from s3stow.transfer.parts import choose_part_size, part_ranges
from s3stow.units import MiB

log = logging.getLogger(__name__)
CHUNK = 1024 * 1024
_RESUME_DIGEST = "crc64nvme"
# Ranges of a large object when neither --part-size nor a composite checksum's parts
# say (the aws CLI's download chunk): small enough that the ranges in flight can
# follow the StreamLimiter within one object, and that a kill loses little.
RANGE_SIZE = 8 * MiB
# Ranges in flight a run starts with (fewer when concurrency is lower): a local server
# gains nothing from more (and with large ranges its CPU follows their count), a remote
# S3 caps each connection, so more pay there; the StreamLimiter grows the count when
# they do (docs/performance.md, "Ranges in flight that adapt"). 8, not 4: at the default
# concurrency one step reaches it, and behind a 5 MB/s per-connection cap a start at 4
# took 18.1 s for a GiB against 16.3-16.6 s from 8, with no difference straight to
# SeaweedFS (wall 6.7-8.2 s and 7.0-8.8 s, server CPU 1.31-1.40 s and 1.26-1.51 s).
START_STREAMS = 8
# Opening the temporary file never follows a symlink at its name (POSIX; Windows has no
# such flag: there the file is made anew, ``_create``, before anything is written): one
# left or planted in DEST would take the object's bytes out of DEST.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True, slots=True)
class Fetched:
    """A file restored, and what proved it."""

    tier: str
    algorithm: str | None
    value: str | None
    etag: str
    received: int  # bytes fetched by this run (resumed ranges excluded)


def fetch(
    ctx: TransferContext,
    item: RestoreItem,
    *,
    restores: RestoreLedger | None,
    entry: RestoreEntry | None,
    folders: Folders | None = None,
    streams: StreamLimiter | None = None,
) -> Fetched:
    """Restore ``item`` to its path, verified; raises on any failure (the temporary
    file of a ranged download is kept for the next run when it can resume).
    ``folders``: the run's folders already made and checked (``paths.Folders``);
    ``streams``: the run's limit on ranges in flight (None: only the request limit)."""
    (folders or Folders()).ready(item.source.root, item.path.parent)
    if item.info.size > ctx.settings.multipart_threshold:
        return _ranged(ctx, item, restores, entry, streams)
    return _single(ctx, item)


def _single(ctx: TransferContext, item: RestoreItem) -> Fetched:
    temp = temp_path(item.path)

    def attempt() -> tuple[ObjectInfo, Proof, str | None, str | None, int]:
        with ctx.limiter.slot():
            body = ctx.store.get_object(
                item.bucket,
                item.key,
                if_match=item.info.etag or None,
                checksum_mode=not ctx.compat,
            )
            proof = proof_for(body.info)
            whole, md5 = proof.whole_hasher(), Hasher("md5-hex") if item.expect_md5 else None
            received = _stream(ctx, item, body, temp, "xb", [h for h in (whole, md5) if h])
        if received != body.info.size:
            ctx.on_bytes(item.source, -received)
            raise TransferError(
                f"s3://{item.bucket}/{item.key}: {received} of {body.info.size} bytes arrived",
                code="IncompleteBody",
                transient=True,
            )
        ctx.limiter.on_success()
        values = (whole.value() if whole else None, md5.value() if md5 else None)
        return body.info, proof, *values, received

    try:
        info, proof, value, md5, received = ctx.retry.run(attempt, what=item.key)
        value = settle(ctx, item, proof, value, path=temp, size=info.size)
        check_md5(item, md5)
        return _finish(temp, item, info, proof, value, received)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _stream(
    ctx: TransferContext,
    item: RestoreItem,
    body: ObjectBody,
    path: Path,
    mode: str,
    hashers: list[Hasher],
    *,
    limit: int | None = None,
    streams: StreamLimiter | None = None,
) -> int:
    """Write ``body`` to ``path`` (at ``body.start`` in ``r+b`` mode; ``xb``: a file
    made anew, ``_new_file``), hashing it; progress taken back when it fails halfway
    (``streams`` is told of every chunk received: the bytes crossed the network either
    way)."""
    received = reported = 0
    try:
        # unbuffered: every chunk is written as it is (the buffered layer only added
        # a tty probe and a seek per file, and a copy of small chunks)
        with io.FileIO(path, mode, opener=_new_file if mode == "xb" else _no_link) as out:
            if mode == "r+b":
                out.seek(body.start)
            for chunk in body.chunks(CHUNK):
                received += len(chunk)
                if limit is not None and received > limit:
                    raise TransferError(
                        f"s3://{item.bucket}/{item.key}: the server sent more than the range "
                        "asked for (it may not support ranged GETs)",
                        code="RangeNotHonoured",
                    )
                _write_all(out, chunk)
                for hasher in hashers:
                    hasher.update(chunk)
                if streams is not None:
                    streams.on_bytes(len(chunk))
                ctx.on_bytes(item.source, len(chunk))
                reported = received
    except BaseException:
        if reported:
            ctx.on_bytes(item.source, -reported)
        raise
    finally:
        body.close()
    return received


def _no_link(path: str, flags: int) -> int:
    """The temporary file's opener: never through a symlink at its name."""
    return os.open(path, flags | _NOFOLLOW, 0o666)


def _new_file(path: str, flags: int) -> int:
    """The opener of a temporary file made anew (``xb``: ``O_CREAT | O_EXCL``, which
    refuses any name that exists, a symlink included): what has the name (a file a
    killed run left, or a symlink) is removed and the file made again. One system call
    where nothing has the name, as for nearly every object."""
    try:
        return os.open(path, flags | _NOFOLLOW, 0o666)
    except FileExistsError:
        os.unlink(path)
        return os.open(path, flags | _NOFOLLOW, 0o666)


def _create(temp: Path, *, size: int = 0) -> None:
    """Make ``temp`` a new file of ``size`` bytes (sparse): whatever has its name (a
    symlink, which opening it to write would follow) is removed first, and ``O_EXCL``
    refuses one made in between."""
    temp.unlink(missing_ok=True)
    handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        if size:
            os.ftruncate(handle, size)
    finally:
        os.close(handle)


def _write_all(out: io.FileIO, chunk: bytes | memoryview) -> None:
    """Write all of ``chunk`` (a raw file may take part of it, as ``write(2)`` may)."""
    done = out.write(chunk)
    if done < len(chunk):
        view = memoryview(chunk)
        while done < len(chunk):
            done += out.write(view[done:])


def _ranged(
    ctx: TransferContext,
    item: RestoreItem,
    restores: RestoreLedger | None,
    entry: RestoreEntry | None,
    streams: StreamLimiter | None,
) -> Fetched:
    info = stat(ctx, item)
    try:
        ensure_listed(item, info)  # the ranges' If-Match is this HEAD's ETag
    except TransferError:
        if entry is not None and entry.download_id:  # ranges of another object
            _discard(restores, item, temp_path(item.path))
        raise
    if archived_unreadable(info):
        raise TransferError(
            f"s3://{item.bucket}/{item.key} is in {info.storage_class} with no readable copy",
            code="InvalidObjectState",
        )
    proof = proof_for(info)
    layout: list[int] | None = None
    if proof.parts:  # ranges are the parts, so the part digests make the composite
        layout = part_sizes(ctx, item, info.size, proof.parts)
        spans = _spans(layout)
        range_size = layout[0]
    else:
        range_size = _recorded(entry, info) or choose_part_size(
            info.size, ctx.settings.part_size or RANGE_SIZE
        )
        spans = [(offset, length) for _, offset, length in part_ranges(info.size, range_size)]
    kind = str(proof.algorithm) if proof.combinable else _RESUME_DIGEST
    temp = temp_path(item.path)
    download_id, done = _resume(restores, entry, info, range_size, temp, kind)
    if download_id is None:
        download_id = uuid.uuid4().hex
        if restores is not None:
            record = RestoreRecord(
                item.bucket, item.key, str(item.path), info.size, "downloading", etag=info.etag
            )
            restores.begin_download(
                record, download_id=download_id, range_size=range_size, run_id=ctx.run_id
            )
        _create(temp, size=info.size)
    elif done:
        log.info("resuming %s: %d of %d ranges already here", item.key, len(done), len(spans))
        # an earlier run's bytes: the file's progress, not bytes this run received
        ctx.on_resumed(item.source, sum(length for length, _ in done.values()))
    futures: list[Future[tuple[int, int, str]]] = [
        ctx.part_pool.submit(
            _fetch_range, ctx, item, info, temp, span, kind, restores, download_id, streams
        )
        for span in spans
        if span[0] not in done
    ]
    try:
        for future in futures:
            first, length, digest = future.result()
            done[first] = (length, digest)
    except BaseException as exc:
        for future in futures:
            future.cancel()
        wait(futures)
        if isinstance(exc, TransferError) and exc.code == "PreconditionFailed":
            _discard(restores, item, temp)  # the object changed: the next run starts over
        raise
    received = sum(f.result()[1] for f in futures)
    ordered = [done[first] for first, _ in spans]
    value = proof.combine(ordered) if proof.combinable else None
    try:
        value = settle(ctx, item, proof, value, path=temp, size=info.size, layout=layout)
        check_md5(item, file_md5(temp) if item.expect_md5 else None)
    except TransferError:
        _discard(restores, item, temp)
        raise
    with open(temp, "rb+", opener=_no_link) as handle:  # on disk before it takes the name
        os.fsync(handle.fileno())
    return _finish(temp, item, info, proof, value, received)


def _recorded(entry: RestoreEntry | None, info: ObjectInfo) -> int | None:
    """The range size of a download of this very object begun by an earlier run (its
    ranges resume only with the same size), else None."""
    if entry is None or not entry.download_id or not entry.range_size:
        return None
    return entry.range_size if entry.etag == info.etag else None


def _spans(sizes: list[int]) -> list[tuple[int, int]]:
    spans, offset = [], 0
    for size in sizes:
        spans.append((offset, size))
        offset += size
    return spans


def _resume(
    restores: RestoreLedger | None,
    entry: RestoreEntry | None,
    info: ObjectInfo,
    range_size: int,
    temp: Path,
    kind: str,
) -> tuple[str | None, dict[int, tuple[int, str]]]:
    """The download id to continue and the ranges whose bytes still check out."""
    if restores is None or entry is None or not entry.download_id:
        return None, {}
    try:
        found = os.lstat(temp)
        on_disk = found.st_size if S_ISREG(found.st_mode) else -1  # a symlink: anew
    except OSError:
        on_disk = -1
    if entry.etag != info.etag or entry.range_size != range_size or on_disk != info.size:
        log.info("not resuming %s: the object or the partial file changed", info.key)
        return None, {}
    done: dict[int, tuple[int, str]] = {}
    with open(temp, "rb", opener=_no_link) as handle:
        for first, length, digest in restores.ranges(entry.download_id):
            handle.seek(first)
            hasher = Hasher(kind)
            hasher.update(handle.read(length))
            if digest is not None and hasher.value() == digest:
                done[first] = (length, digest)
    return entry.download_id, done


def _fetch_range(
    ctx: TransferContext,
    item: RestoreItem,
    info: ObjectInfo,
    temp: Path,
    span: tuple[int, int],
    kind: str,
    restores: RestoreLedger | None,
    download_id: str,
    streams: StreamLimiter | None,
) -> tuple[int, int, str]:
    first, length = span
    if ctx.stop.is_set():
        raise Interrupted("interrupted before this range was fetched")

    def attempt() -> str:
        hasher = Hasher(kind)
        with streams.slot() if streams is not None else nullcontext(), ctx.limiter.slot():
            if ctx.stop.is_set():  # asked while this range waited for its turn
                raise Interrupted("interrupted before this range was fetched")
            body = ctx.store.get_object(
                item.bucket, item.key, byte_range=(first, first + length - 1), if_match=info.etag
            )
            if body.start != first:
                body.close()
                raise TransferError(
                    f"s3://{item.bucket}/{item.key}: asked for bytes from {first}, "
                    f"got them from {body.start}",
                    code="RangeNotHonoured",
                )
            received = _stream(
                ctx, item, body, temp, "r+b", [hasher], limit=length, streams=streams
            )
        if received != length:
            ctx.on_bytes(item.source, -received)
            raise TransferError(
                f"s3://{item.bucket}/{item.key}: {received} of {length} bytes of a range arrived",
                code="IncompleteBody",
                transient=True,
            )
        ctx.limiter.on_success()
        if streams is not None:
            streams.on_success()
        return hasher.value()

    digest = ctx.retry.run(attempt, what=f"{item.key} bytes {first}-{first + length - 1}")
    if restores is not None:
        restores.record_range(download_id, first, length, digest)
    return first, length, digest


def _discard(restores: RestoreLedger | None, item: RestoreItem, temp: Path) -> None:
    if restores is not None:
        restores.forget_download(item.bucket, item.key, str(item.path))
    temp.unlink(missing_ok=True)


def _finish(
    temp: Path, item: RestoreItem, info: ObjectInfo, proof: Proof, value: str | None, received: int
) -> Fetched:
    """Give the verified file its mtime and its name (two calls: the ledger's record
    reads the file's size and mtime as the file system keeps them, ``plan.record``)."""
    mtime = object_mtime_ns(info)
    if mtime is not None:
        os.utime(temp, ns=(time.time_ns(), mtime))
    os.replace(temp, item.path)
    return Fetched(
        tier=proof.tier,
        algorithm=proof.algorithm,
        value=value,
        etag=info.etag,
        received=received,
    )
