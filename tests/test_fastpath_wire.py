"""The fast path as the server sees it: what one fast PutObject, UploadPart or
HeadBucket carries on the wire, which keys it addresses, and which answers send a
request (or a whole bucket) back to botocore. In-process, through the fault proxy.

botocore sends the first request of each kind to a bucket and the fast path learns
from it (``store/capture.py``), so each test warms the path with such a request
before it looks at the fast path's own."""

from __future__ import annotations

import base64
import hashlib
import random
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from awscrt import checksums as crt

from s3stow.config import Settings
from s3stow.errors import BucketMissingError
from s3stow.models import Status
from s3stow.plan.keys import parse_target
from s3stow.transfer.engine import Uploader
from tests.faultproxy import FaultProxy

MiB = 1024 * 1024
OWNER = "123456789012"  # moto's account


def _uploader(proxy: FaultProxy, bucket: str, **settings: Any) -> Uploader:
    values: dict[str, Any] = {
        "endpoint_url": proxy.url,
        "retry_base_delay": 0.01,
        "part_size": 5 * MiB,
        "multipart_threshold": 5 * MiB,
        "concurrency": 1,
        "etag_check": "on",  # no checksum-validation probe among the PUTs counted here
    }
    values.update(settings)
    return Uploader(Settings(**values), default_target=parse_target(f"s3://{bucket}/p"))


def _puts(proxy: FaultProxy) -> list[tuple[str, dict[str, str]]]:
    return [
        (line, h) for line, h in zip(proxy.log, proxy.headers, strict=True) if line[:4] == "PUT "
    ]


def _fast(headers: dict[str, str]) -> bool:
    return "fastpath" in headers.get("user-agent", "")


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


@pytest.mark.parametrize("size", [3000, 2 * MiB, 6 * MiB], ids=["buffered", "streamed", "parts"])
def test_a_fast_write_carries_exactly_its_headers_signed(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path, size: int
) -> None:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    uploader = _uploader(
        proxy,
        bucket,
        metadata={"team": "data"},
        expected_bucket_owner=OWNER,
        storage_class="STANDARD",
    )
    # botocore sends the first PutObject (UploadPart) of this shape; the fast path learns
    warm = uploader.upload_file(path, key="p/warm.bin")
    assert warm.status == Status.DONE, warm.error
    assert not _fast(_puts(proxy)[0][1])
    proxy.reset()
    result = uploader.upload_file(path)
    assert result.status == Status.DONE, result.error
    puts = _puts(proxy)
    chunks = [data] if size < 5 * MiB else [data[: 5 * MiB], data[5 * MiB :]]
    assert len(puts) == len(chunks)  # each sent once, all by the fast path
    for number, ((line, headers), chunk) in enumerate(zip(puts, chunks, strict=True), 1):
        assert _fast(headers)
        if size < 5 * MiB:
            assert line == f"PUT /{bucket}/p/f.bin"
            assert headers["x-amz-meta-team"] == "data"
            assert headers["content-type"] == "application/octet-stream"
            assert headers["x-amz-storage-class"] == "STANDARD"
        else:
            assert line.startswith(f"PUT /{bucket}/p/f.bin?partNumber={number}&uploadId=")
            assert "x-amz-meta-team" not in headers  # metadata went with CreateMultipartUpload
        assert headers["content-length"] == str(len(chunk))
        assert headers["x-amz-content-sha256"] == hashlib.sha256(chunk).hexdigest()  # http
        crc = _b64(crt.crc64nvme(chunk).to_bytes(8, "big"))
        assert headers["x-amz-checksum-crc64nvme"] == crc
        assert headers["x-amz-sdk-checksum-algorithm"] == "CRC64NVME"
        md5 = _b64(hashlib.md5(chunk, usedforsecurity=False).digest())
        assert headers["content-md5"] == md5
        assert headers["x-amz-expected-bucket-owner"] == OWNER
        assert "x-amz-meta-sha256" not in headers  # not asked for (sha256_metadata)
        authorization = headers["authorization"]
        assert authorization.startswith("AWS4-HMAC-SHA256 Credential=testing/")
        assert "/us-east-1/s3/aws4_request" in authorization
        signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        for name in ("host", "x-amz-content-sha256", "x-amz-date", "content-md5"):
            assert name in signed
        assert "x-amz-date" in headers
    assert s3.get_object(Bucket=bucket, Key="p/f.bin")["Body"].read() == data


def test_keys_are_addressed_exactly(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x")
    keys = ["p/a b+c%41~ü.txt", "p/q?x=1&y", "p/semi;colon"]
    uploader = _uploader(proxy, bucket)
    assert uploader.upload_file(path, key="p/warm.txt").status == Status.DONE  # botocore
    proxy.reset()
    for key in keys:
        assert uploader.upload_file(path, key=key).status == Status.DONE
    targets = [line.split(" ", 1)[1] for line, headers in _puts(proxy) if _fast(headers)]
    assert targets == [f"/{bucket}/{quote(key, safe='/~')}" for key in keys]
    listed = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == {*keys, "p/warm.txt"}


@pytest.mark.parametrize(
    ("status", "code", "throttled"),
    [(500, "InternalError", False), (503, "SlowDown", True), (429, "TooManyRequests", True)],
)
def test_a_failed_fast_attempt_is_repeated_by_botocore_and_counted(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path, status: int, code: str, throttled: bool
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"abc")
    uploader = _uploader(proxy, bucket, concurrency=4)
    assert uploader.upload_file(path, key="p/warm.txt").status == Status.DONE  # botocore
    proxy.reset()
    proxy.add(r"^PUT ", "status", times=1, status=status, code=code, agent="fastpath")
    result = uploader.upload_file(path)
    assert result.status == Status.DONE, result.error
    puts = _puts(proxy)
    assert [_fast(h) for _, h in puts] == [True, False]  # then botocore, once
    assert uploader.limiter.throttle_events == (1 if throttled else 0)
    assert uploader.limiter.limit == (2 if throttled else 4)
    assert getattr(uploader.store, "transient_errors", 0) >= 1
    # the next file goes the fast way again
    proxy.reset()
    assert uploader.upload_file(path, key="p/g.txt").status == Status.DONE
    assert [_fast(h) for _, h in _puts(proxy)] == [True]
    assert uploader.limiter.limit == (3 if throttled else 4)  # two successes at 2: one more


@pytest.mark.parametrize(
    ("status", "code"),
    [(301, "PermanentRedirect"), (307, "TemporaryRedirect"), (400, "AuthorizationHeaderMalformed")],
)
def test_a_redirect_or_bad_request_sends_the_bucket_to_botocore_for_good(
    proxy: FaultProxy, bucket: str, tmp_path: Path, status: int, code: str
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"abc")
    proxy.add(r"^PUT ", "status", times=1, status=status, code=code, agent="fastpath")
    uploader = _uploader(proxy, bucket)
    for key in ("p/a", "p/b", "p/c"):
        assert uploader.upload_file(path, key=key).status == Status.DONE
    # botocore's first PUT (learned), the fast path's refused one repeated by botocore,
    # then botocore alone
    assert [_fast(h) for _, h in _puts(proxy)] == [False, True, False, False]


@pytest.mark.parametrize(
    "settings",
    [{"max_attempts": 1}, {"fast_path": False}],
    ids=["one-attempt", "off"],
)
def test_what_the_fast_path_leaves_to_botocore(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path, settings: dict[str, Any]
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"abc")
    result = _uploader(proxy, bucket, **settings).upload_file(path)
    assert result.status == Status.DONE, result.error
    assert [_fast(h) for _, h in _puts(proxy)] == [False]
    assert s3.get_object(Bucket=bucket, Key="p/f.txt")["Body"].read() == b"abc"


def test_the_bucket_check_goes_the_fast_way_and_botocore_names_a_missing_bucket(
    proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    uploader = _uploader(proxy, bucket)
    uploader.check_bucket_access()  # botocore's HeadBucket: the fast path learns it
    uploader.check_bucket_access()
    heads = [h for line, h in zip(proxy.log, proxy.headers, strict=True) if line[:5] == "HEAD "]
    assert [_fast(h) for h in heads] == [False, True]
    assert proxy.log == [f"HEAD /{bucket}"] * 2
    proxy.reset()
    s3.delete_bucket(Bucket=bucket)  # the fast HEAD gets a 404: botocore names it
    with pytest.raises(BucketMissingError):
        uploader.check_bucket_access()
    heads = [h for line, h in zip(proxy.log, proxy.headers, strict=True) if line[:5] == "HEAD "]
    assert [_fast(h) for h in heads] == [True, False]


@pytest.mark.parametrize("kind", ["parts", "files"])
def test_requests_started_together_wait_for_the_first_to_teach_the_fast_path(
    proxy: FaultProxy, bucket: str, tmp_path: Path, kind: str
) -> None:
    # eight requests of one shape start at once; only the first goes through botocore
    # (store/learngate.py), the others wait for it and take the fast path
    if kind == "parts":
        (tmp_path / "big.bin").write_bytes(random.Random(1).randbytes(40 * MiB))
    else:
        for n in range(16):
            (tmp_path / f"f{n}.txt").write_bytes(b"x" * (n + 1))
    uploader = _uploader(proxy, bucket, concurrency=8)
    summary = uploader.upload_tree(tmp_path)
    assert summary.failed == 0
    puts = _puts(proxy)
    assert len(puts) == (8 if kind == "parts" else 16)
    assert [_fast(h) for _, h in puts].count(False) == 1


def test_a_fast_put_answers_as_botocore_does(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """The fast path reads a PUT's answer itself (``put_result``): the same ETag,
    checksum and version id botocore's answer gives, on a versioned bucket."""
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    path = tmp_path / "f.bin"
    path.write_bytes(b"answered")
    uploader = _uploader(proxy, bucket)
    results = [uploader.upload_file(path, key=f"p/{name}") for name in ("slow", "fast")]
    puts = _puts(proxy)
    assert [_fast(headers) for _, headers in puts] == [False, True]
    for name, result in zip(("slow", "fast"), results, strict=True):
        assert result.status == Status.DONE, result.error
        head = s3.head_object(Bucket=bucket, Key=f"p/{name}", ChecksumMode="ENABLED")
        assert result.etag == head["ETag"].strip('"') == _md5_hex(b"answered")
        assert result.checksum == head["ChecksumCRC64NVME"]
        assert result.version_id == head["VersionId"]
        assert result.version_id


def _md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()
