"""What one transfer step is made of: the body and exactly the hashes its request
needs, the ETag check, the attributes written with the object, the source-change
check, and the file-level retry layer."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from s3stow.config import Settings
from s3stow.devserver.moto import LocalS3Server
from s3stow.errors import Interrupted, SourceChanged, TransferError
from s3stow.models import SourceFile
from s3stow.store import checksums
from s3stow.store.base import WriteOptions
from s3stow.store.body import FileRange
from s3stow.store.probes import CHECKSUM_VALIDATION, STORES, VALIDATES
from s3stow.transfer.bodies import (
    STREAM_ABOVE,
    Body,
    blame_the_file,
    buffered_size,
    check_etag,
    prepare_body,
)
from s3stow.transfer.context import TransferContext, ensure_unchanged
from s3stow.transfer.engine import Uploader
from s3stow.transfer.retry import RetryPolicy, backoff_delay

MiB = 1024 * 1024


def _source(path: Path) -> SourceFile:
    stat = path.stat()
    return SourceFile(path, path.name, stat.st_size, stat.st_mtime_ns, path.parent)


def _context(*, validates: bool | None = None, **settings: Any) -> Iterator[TransferContext]:
    """A context of ``settings``; on a configured endpoint, the server's answer to the
    checksum probe for bucket ``b`` pinned (``None``: not known, the safe default)."""
    uploader = Uploader(Settings(**settings))
    uploader.probes.pin(CHECKSUM_VALIDATION, "b", {True: VALIDATES, False: STORES}.get(validates))
    with uploader.transfer_context() as ctx:
        yield ctx


@pytest.fixture
def data(tmp_path: Path) -> tuple[Path, bytes]:
    payload = random.Random(3).randbytes(2 * MiB + 5)
    path = tmp_path / "f.bin"
    path.write_bytes(payload)
    return path, payload


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# ---- bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize("length", [1000, STREAM_ABOVE - 1, STREAM_ABOVE, 2 * MiB])
@pytest.mark.parametrize(
    ("settings", "want"),
    [
        ({}, {"digest": "crc64nvme", "md5": False, "sha256": False}),
        ({"endpoint_url": "https://s3.example"}, {"digest": "crc64nvme", "md5": True}),
        (
            {"endpoint_url": "http://127.0.0.1:9", "validates": False},
            {"digest": "crc64nvme", "md5": True},
        ),
        (
            {"endpoint_url": "http://127.0.0.1:9", "validates": True},
            {"digest": "crc64nvme", "md5": False},
        ),
        ({"checksum": "sha256"}, {"digest": "sha256", "md5": False}),
        ({"checksum": "crc32c", "etag_check": "on"}, {"digest": "crc32c", "md5": True}),
        ({"checksum": "none"}, {"digest": None, "md5": True}),
    ],
    ids=[
        "aws",
        "https-endpoint",
        "http-endpoint-storing",
        "http-endpoint-validating",
        "sha256",
        "etag-check-on",
        "none",
    ],
)
def test_a_body_carries_exactly_the_hashes_its_request_needs(
    data: tuple[Path, bytes], settings: dict[str, Any], want: dict[str, Any], length: int
) -> None:
    """The checksum S3 verifies; the MD5 for the ETag check and Content-MD5; the
    SHA-256 when it is the checksum. (When the payload is signed: the test below; the
    endpoint alone says nothing, nothing was learned from botocore here.)"""
    path, payload = data
    offset = 3
    chunk = payload[offset : offset + length]
    for ctx in _context(**settings):
        body = prepare_body(ctx, _source(path), offset, length, bucket="b")
        streamed = length >= STREAM_ABOVE
        assert isinstance(body.data, FileRange) is streamed
        if streamed:
            assert isinstance(body.data, FileRange)
            assert (body.data.offset, body.data.length) == (offset, length)
            with body.data.reader() as reader:
                assert reader.read() == chunk
        else:
            assert body.data == chunk
        algorithm = want["digest"]
        expected = checksums.compute(algorithm, chunk) if algorithm else None
        assert body.digest == expected
        assert body.md5_hex == (_md5(chunk) if want["md5"] else None)
        needs_sha = streamed and algorithm == "sha256"
        sha = hashlib.sha256(chunk).hexdigest()
        assert body.sha256_hex == (sha if needs_sha else None)
        if streamed and isinstance(body.data, FileRange):
            assert body.data.payload_sha256() == sha


def test_a_body_to_a_bucket_whose_writes_sign_the_payload_carries_its_sha256(
    data: tuple[Path, bytes], server: LocalS3Server, bucket: str
) -> None:
    """Over plain http botocore signs the payload: once the fast path learned a write to
    the bucket from botocore, a streamed body's one hashing pass computes the SHA-256
    its signature needs; not for another bucket, not for a buffered body (hashed when
    it is signed)."""
    path, payload = data
    for ctx in _context(endpoint_url=server.endpoint_url):
        assert ctx.signs_payload(bucket) is False  # nothing learned yet
        ctx.store.put_object(
            bucket,
            "warm",
            b"x",
            digest=checksums.compute("crc64nvme", b"x"),
            options=WriteOptions(),
        )
        assert (ctx.signs_payload(bucket), ctx.signs_payload("other")) == (True, False)
        for length in (STREAM_ABOVE - 1, STREAM_ABOVE, 2 * MiB):
            chunk = payload[3 : 3 + length]
            sha = hashlib.sha256(chunk).hexdigest()
            streamed = length >= STREAM_ABOVE
            body = prepare_body(ctx, _source(path), 3, length, bucket=bucket)
            assert body.sha256_hex == (sha if streamed else None)
            assert body.digest == checksums.compute("crc64nvme", chunk)
            assert body.md5_hex == _md5(chunk)  # a custom endpoint: the ETag check
            if isinstance(body.data, FileRange):
                assert body.data.payload_sha256() == sha
            assert prepare_body(ctx, _source(path), 3, length, bucket="other").sha256_hex is None
            assert prepare_body(ctx, _source(path), 3, length).sha256_hex is None


def test_a_body_adds_the_hashes_asked_for(data: tuple[Path, bytes]) -> None:
    path, payload = data
    for ctx in _context():
        for length in (1000, 2 * MiB):
            body = prepare_body(ctx, _source(path), 0, length, sha256=True, md5=True)
            assert body.md5_hex == _md5(payload[:length])
            assert body.sha256_hex == hashlib.sha256(payload[:length]).hexdigest()
            content_md5 = base64.b64encode(bytes.fromhex(_md5(payload[:length]))).decode()
            assert body.content_md5 == content_md5
    assert Body(b"", None, None, None).content_md5 is None


def test_buffered_size() -> None:
    assert buffered_size(STREAM_ABOVE - 1) == STREAM_ABOVE - 1
    assert buffered_size(STREAM_ABOVE) == 0


def test_the_etag_check_compares_plain_etags_with_the_md5_sent() -> None:
    body = Body(b"abc", None, _md5(b"abc"), None)
    check_etag(_md5(b"abc"), body, what="k")  # equal
    check_etag("", body, what="k")  # no ETag: nothing to compare
    check_etag(_md5(b"x") + "-2", body, what="k")  # a multipart ETag is not an MD5
    check_etag(_md5(b"x"), Body(b"abc", None, None, None), what="k")  # no MD5 computed
    with pytest.raises(TransferError) as caught:
        check_etag(_md5(b"x"), body, what="the key")
    assert (caught.value.code, caught.value.transient) == ("ChecksumMismatch", True)
    assert "the key" in str(caught.value)


def test_a_digest_error_on_a_streamed_body_blames_a_file_that_changed(
    data: tuple[Path, bytes],
) -> None:
    path, _ = data
    source = _source(path)
    streamed = Body(FileRange(path, 0, 10), None, None, None)
    buffered = Body(b"0123456789", None, None, None)
    mismatch = TransferError("m", code="BadDigest", transient=True)
    other = TransferError("o", code="InternalError", transient=True)
    assert blame_the_file(source, streamed, mismatch) is mismatch  # the file is unchanged
    os.utime(path, ns=(source.mtime_ns, source.mtime_ns + 10**9))
    assert isinstance(blame_the_file(source, streamed, mismatch), SourceChanged)
    assert blame_the_file(source, buffered, mismatch) is mismatch  # read once: not the file
    assert blame_the_file(source, streamed, other) is other  # not a digest error


# ---- the attributes written and the source-change check --------------------------------


def test_write_options_carry_the_settings_and_the_files_attributes(tmp_path: Path) -> None:
    path = tmp_path / "a.tar.gz"
    path.write_bytes(b"x")
    os.utime(path, ns=(0, 1_700_000_000_123_000_000))
    settings = {
        "metadata": {"team": "ops"},
        "sse": "aws:kms",
        "sse_kms_key_id": "key-1",
        "storage_class": "STANDARD_IA",
        "no_clobber": True,
    }
    for ctx in _context(**settings):
        options = ctx.write_options(_source(path), sha256_hex="ab" * 32)
        assert options.content_type == "application/x-tar"
        assert options.metadata["team"] == "ops"
        assert options.metadata["sha256"] == "ab" * 32
        assert options.metadata["source"].startswith("s3stow/")
        stamp = datetime.fromtimestamp(1_700_000_000.123, UTC).isoformat()
        assert options.metadata["mtime"] == stamp
        uploaded = datetime.strptime(options.metadata["uploaded-at"], "%Y-%m-%dT%H:%M:%SZ")
        assert uploaded.year >= 2024
        assert (options.sse, options.sse_kms_key_id) == ("aws:kms", "key-1")
        assert (options.storage_class, options.if_none_match) == ("STANDARD_IA", True)
    for ctx in _context(content_type="text/x-custom"):
        options = ctx.write_options(_source(path))
        assert options.content_type == "text/x-custom"
        assert "sha256" not in options.metadata
        assert (options.sse, options.if_none_match) == (None, False)
    for name, expected in (("README", "application/octet-stream"), (".hidden.json", None)):
        other = tmp_path / name
        other.write_bytes(b"x")
        for ctx in _context():
            got = ctx.write_options(_source(other)).content_type
            assert got == (expected or "application/json"), name


def test_ensure_unchanged_notices_size_mtime_and_disappearance(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"abc")
    source = _source(path)
    ensure_unchanged(source)
    os.utime(path, ns=(source.mtime_ns, source.mtime_ns + 1))
    with pytest.raises(SourceChanged, match="changed during upload"):
        ensure_unchanged(source)
    path.write_bytes(b"abcd")
    os.utime(path, ns=(source.mtime_ns, source.mtime_ns))
    with pytest.raises(SourceChanged, match="3 -> 4"):
        ensure_unchanged(source)
    path.unlink()
    with pytest.raises(SourceChanged, match="vanished"):
        ensure_unchanged(source)


def test_an_upload_takes_the_identity_discovery_found_without_a_second_stat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Discovery's ``stat`` holds change time and inode (POSIX): the upload's identity is
    that one, and the checks after the read still see any change since discovery,
    a change of status alone too. A ``stat`` without an inode (a Windows directory
    entry's) is not whole: the upload then takes its own."""
    from s3stow.localfiles import FileIdentity
    from s3stow.plan.discover import discover
    from s3stow.transfer import context

    path = tmp_path / "f.txt"
    path.write_bytes(b"abc")
    (source,) = discover([tmp_path])
    assert isinstance(source, SourceFile)
    taken: list[Path] = []
    real_stat = context._stat

    def counted(found: SourceFile) -> os.stat_result:
        taken.append(found.path)
        return real_stat(found)

    monkeypatch.setattr(context, "_stat", counted)
    identity = context.open_identity(source)
    assert taken == []
    assert identity == FileIdentity.at(path)
    ensure_unchanged(source, identity)
    assert taken == [path]
    # status alone (chmod) after discovery: a change, like a write (the change time is
    # coarse: wait until the chmod moved it)
    for _ in range(100):
        os.chmod(path, 0o600 if path.stat().st_mode & 0o077 else 0o644)
        if path.stat().st_ctime_ns != identity.ctime_ns:
            break
        time.sleep(0.01)
    with pytest.raises(SourceChanged, match="status-change time moved"):
        ensure_unchanged(source, identity)
    # an entry's stat without an inode: the upload stats the file itself
    found = os.stat(path)
    fields = list(found)
    fields[1] = 0  # st_ino
    extra = {name: getattr(found, name) for name in ("st_atime", "st_mtime", "st_ctime")}
    extra |= {f"{name}_ns": getattr(found, f"{name}_ns") for name in extra}
    partial = replace(source, found=os.stat_result(fields, extra))
    taken.clear()
    assert context.open_identity(partial) == FileIdentity.at(path)
    assert taken == [path]


def test_the_context_says_which_checks_apply() -> None:
    """Whether a bucket's writes sign the payload is learned from botocore (the test
    above), never guessed from the endpoint: nothing is signed before that."""
    for ctx in _context():
        assert (ctx.compat, ctx.checks_etag("b"), ctx.signs_payload("b")) == (False, False, False)
    for ctx in _context(checksum_compat=True):
        assert (ctx.compat, ctx.checks_etag("b")) == (True, True)
    for ctx in _context(endpoint_url="HTTP://127.0.0.1:9", etag_check="off"):
        assert (ctx.checks_etag("b"), ctx.signs_payload("b")) == (False, False)
    for ctx in _context(endpoint_url="https://s3.example", sse="aws:kms"):
        assert (ctx.checks_etag("b"), ctx.signs_payload("b")) == (False, False)


@pytest.mark.parametrize(
    ("settings", "validates", "want"),
    [
        ({}, None, False),  # AWS: never asked
        ({"endpoint_url": "https://s3.example"}, None, True),  # not known: the check stays
        ({"endpoint_url": "https://s3.example"}, False, True),  # stores bad sums (moto)
        ({"endpoint_url": "https://s3.example"}, True, False),  # refuses them (SeaweedFS)
        ({"endpoint_url": "https://s3.example", "etag_check": "on"}, True, True),
        ({"endpoint_url": "https://s3.example", "etag_check": "off"}, False, False),
        ({"endpoint_url": "https://s3.example", "checksum": "none"}, True, True),  # compat
    ],
)
def test_etag_check_auto_follows_the_servers_checksum_validation(
    settings: dict[str, Any], validates: bool | None, want: bool, data: tuple[Path, bytes]
) -> None:
    """Under ``auto`` a configured endpoint gets the MD5 and the ETag comparison unless
    the server refuses a wrong checksum itself; ``on``/``off`` win over the answer."""
    path, _ = data
    for ctx in _context(validates=validates, **settings):
        assert ctx.checks_etag("b", "k") is want
        body = prepare_body(ctx, _source(path), 0, 2 * MiB, bucket="b", key="k")
        assert (body.md5_hex is not None) is want
        assert ctx.probes is not None
        assert ctx.probes.sent == 0


def test_the_part_pool_is_shut_down_with_the_context() -> None:
    for ctx in _context(concurrency=3):
        assert ctx.part_pool._max_workers == 3
        assert ctx.part_pool.submit(lambda: 7).result() == 7
    with pytest.raises(RuntimeError):
        ctx.part_pool.submit(lambda: 7)


# ---- the file-level retry layer --------------------------------------------------------


def _steps(failures: list[TransferError]) -> Any:
    calls: list[int] = []

    def step() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "ok"

    return step, calls


def test_transient_errors_are_retried_up_to_the_limit() -> None:
    policy = RetryPolicy(retries=2, base_delay=0, max_delay=1, stop=threading.Event())
    transient = [TransferError("t", code="SlowDown", transient=True) for _ in range(2)]
    step, calls = _steps(transient)
    assert policy.run(step, what="k") == "ok"
    assert (len(calls), policy.retried) == (3, 2)
    step, calls = _steps([TransferError("t", code="SlowDown", transient=True) for _ in range(3)])
    with pytest.raises(TransferError, match="t"):
        policy.run(step, what="k")
    assert len(calls) == 3


def test_a_permanent_error_is_not_retried() -> None:
    policy = RetryPolicy(retries=5, base_delay=0, max_delay=1, stop=threading.Event())
    step, calls = _steps([TransferError("p", code="AccessDenied")])
    with pytest.raises(TransferError):
        policy.run(step, what="k")
    assert (len(calls), policy.retried) == (1, 0)


def test_a_stop_while_waiting_to_retry_interrupts() -> None:
    """The interruption says what it interrupted and keeps the error that was to be
    retried as its cause: a caller that does not catch it (a job's split catches only
    ``TransferError``) leaves it to the CLI, which prints its text."""
    stop = threading.Event()
    stop.set()
    policy = RetryPolicy(retries=5, base_delay=3600, max_delay=3600, stop=stop)
    throttled = TransferError("t", code="SlowDown", transient=True)
    step, calls = _steps([throttled])
    with pytest.raises(Interrupted) as caught:
        policy.run(step, what="k")
    assert len(calls) == 1
    assert str(caught.value) == "interrupted while waiting to retry"
    assert caught.value.__cause__ is throttled


def test_backoff_is_full_jitter_up_to_the_doubling_cap() -> None:
    random.seed(11)
    for attempt, base, cap, bound in ((1, 1.0, 20.0, 1.0), (4, 0.5, 20.0, 4.0), (6, 1.0, 5.0, 5.0)):
        delays = [backoff_delay(attempt, base=base, cap=cap) for _ in range(300)]
        assert all(0 <= d <= bound for d in delays)
        assert max(delays) > 0.9 * bound  # the whole range is used
        assert min(delays) < 0.1 * bound


def test_a_file_above_5_tib_fails_as_too_large() -> None:
    """S3's object limit: the file's result says ``TooLarge`` (its error class), at once."""
    from s3stow.errors import TransferError
    from s3stow.transfer.parts import MAX_OBJECT, choose_part_size

    assert choose_part_size(MAX_OBJECT) > 0  # the limit itself is allowed
    with pytest.raises(TransferError) as caught:
        choose_part_size(MAX_OBJECT + 1)
    assert caught.value.code == "TooLarge"
    assert caught.value.args[0] == f"file is {MAX_OBJECT + 1} bytes; S3 objects are at most 5 TiB"
