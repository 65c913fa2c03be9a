"""The fast path's GetObject and HeadObject against botocore's, side by side, on both
servers: for each object (single, multipart with COMPOSITE and FULL_OBJECT checksums,
metadata in odd case and with non-ASCII values, a range, a HEAD with a part number)
the ``ObjectInfo`` the fast path reads off the wire must be the one ``s3reads._info_of``
builds from botocore's parsed response, and the bytes the same."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from awscrt import checksums as crt
from botocore import handlers
from botocore.exceptions import ClientError

from s3stow.config import Settings, load_settings
from s3stow.errors import TransferError
from s3stow.store.base import ObjectInfo
from s3stow.store.replay import Answered, Received
from s3stow.store.s3 import S3Store
from s3stow.store.s3reads import _info_of
from s3stow.store.translate import error_code
from s3stow.store.wire import get_headers
from tests.faultproxy import FaultProxy

MiB = 1024 * 1024
META = {"mtime": "2024-05-06T07:08:09.123456Z", "Odd-Case_Name": "Value  with  spaces"}


def _store(server: Any) -> S3Store:
    """A store on ``server`` (or through a ``FaultProxy`` in front of it)."""
    url = server.url if isinstance(server, FaultProxy) else server.endpoint_url
    store = S3Store.from_settings(load_settings(env={}, flags={"endpoint_url": url}))
    assert store.client is not None  # made, with its fast path
    return store


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _multipart(s3: Any, bucket: str, key: str, parts: list[bytes], kind: str) -> None:
    """A multipart object: COMPOSITE SHA-256 (s3stow's sha256 layout) or FULL_OBJECT
    CRC64NVME."""
    if kind == "COMPOSITE":
        algorithm, field = "SHA256", "ChecksumSHA256"

        def value(data: bytes) -> str:
            return _b64(hashlib.sha256(data).digest())
    else:
        algorithm, field = "CRC64NVME", "ChecksumCRC64NVME"

        def value(data: bytes) -> str:
            return _b64(crt.crc64nvme(data).to_bytes(8, "big"))

    upload = s3.create_multipart_upload(
        Bucket=bucket, Key=key, ChecksumAlgorithm=algorithm, ChecksumType=kind, Metadata=META
    )["UploadId"]
    done = []
    for number, data in enumerate(parts, 1):
        answer = s3.upload_part(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm=algorithm,
            **{field: value(data)},
        )
        done.append({"PartNumber": number, "ETag": answer["ETag"], field: answer[field]})
    extra: dict[str, Any] = {}
    if kind == "FULL_OBJECT":
        extra = {field: value(b"".join(parts)), "ChecksumType": kind}
    s3.complete_multipart_upload(
        Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": done}, **extra
    )


def _objects(s3: Any, bucket: str) -> dict[str, bytes]:
    made: dict[str, bytes] = {}
    for key, size in (("warm", 10), ("one", 3000), ("empty", 0)):
        data = os.urandom(size)
        s3.put_object(
            Bucket=bucket, Key=f"p/{key}", Body=data, ChecksumAlgorithm="CRC64NVME", Metadata=META
        )
        made[f"p/{key}"] = data
    odd = os.urandom(100)
    # non-ASCII values: botocore refuses them unless its check is taken out (then they go
    # as Latin-1 bytes); an RFC 2047 word is how S3 itself answers such a value
    s3.meta.events.unregister(
        "before-parameter-build.s3.PutObject", handlers.validate_ascii_metadata
    )
    s3.put_object(
        Bucket=bucket,
        Key="p/unicode ü+x",
        Body=odd,
        Metadata={
            "Name": "caf\u00e9 \u00fc",
            "MiXeD": "A",
            "lower": "b",
            "word": "=?UTF-8?B?w7w=?=",
        },
        StorageClass="STANDARD",
    )
    made["p/unicode ü+x"] = odd
    for kind in ("COMPOSITE", "FULL_OBJECT"):
        parts = [os.urandom(5 * MiB), os.urandom(1234)]
        _multipart(s3, bucket, f"p/{kind}", parts, kind)
        made[f"p/{kind}"] = b"".join(parts)
    return made


def _botocore_get(store: S3Store, bucket: str, key: str, **args: Any) -> tuple[ObjectInfo, bytes]:
    response = store.client.get_object(Bucket=bucket, Key=key, **store._read_args(args))
    length = int(response["ContentLength"])
    size = length
    if response.get("ContentRange"):
        size = int(response["ContentRange"].rpartition("/")[2])
    return _info_of(key, response, size=size), response["Body"].read()


def _fast_only(store: S3Store, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call(*args, **kwargs)``, which must have been sent by the fast path alone."""
    fast = store.fast_path
    assert fast is not None
    sent, fallbacks = fast.sent, fast.fallbacks
    result = call(*args, **kwargs)
    assert (fast.sent, fast.fallbacks) == (sent + 1, fallbacks)
    return result


@pytest.mark.engines
def test_fast_reads_give_botocore_s_object_info(
    engine: str, server: Any, s3: Any, bucket: str
) -> None:
    made = _objects(s3, bucket)
    store = _store(server)
    # botocore sends the first of each shape; the fast path learns from it
    for byte_range in (None, (0, 3)):
        body = store.get_object(
            bucket, "p/warm", if_match=s3.head_object(Bucket=bucket, Key="p/warm")["ETag"][1:-1],
            byte_range=byte_range, checksum_mode=byte_range is None,
        )  # fmt: skip
        b"".join(bytes(c) for c in body.chunks(MiB))
    assert store.stat_object(bucket, "p/warm") is not None
    fast = store.fast_path
    assert fast is not None
    assert fast.off_reason(bucket) is None
    for key, data in made.items():
        etag = s3.head_object(Bucket=bucket, Key=key)["ETag"][1:-1]
        whole = _fast_only(store, store.get_object, bucket, key, if_match=etag, checksum_mode=True)
        theirs, their_bytes = _botocore_get(
            store, bucket, key, IfMatch=f'"{etag}"', ChecksumMode="ENABLED"
        )
        assert whole.info == theirs, key
        assert (whole.start, whole.length) == (0, len(data))
        assert b"".join(bytes(c) for c in whole.chunks(7000)) == data == their_bytes
        if data:
            last = len(data) - 1
            first = min(2, last)
            part = _fast_only(
                store, store.get_object, bucket, key, if_match=etag, byte_range=(first, last)
            )
            theirs, their_bytes = _botocore_get(
                store, bucket, key, IfMatch=f'"{etag}"', Range=f"bytes={first}-{last}"
            )
            assert part.info == theirs, key
            assert (part.start, part.length, part.info.size) == (first, last - first + 1, len(data))
            assert b"".join(bytes(c) for c in part.chunks(MiB)) == data[first:] == their_bytes
        head = _fast_only(store, store.stat_object, bucket, key)
        response = store.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert head == _info_of(key, response, size=int(response["ContentLength"])), key
        assert store.head_object(bucket, key) == head, key  # the upload's HEAD reads the same
    for kind in ("COMPOSITE", "FULL_OBJECT"):
        key = f"p/{kind}"
        for number in (1, 2):
            ours = _fast_only(store, store.stat_object, bucket, key, part_number=number)
            response = store.client.head_object(
                Bucket=bucket, Key=key, ChecksumMode="ENABLED", PartNumber=number
            )
            assert ours == _info_of(key, response, size=int(response["ContentLength"]))
            assert ours.parts == 2
    # restore's listing (with the storage class) goes the fast way too, after botocore's
    theirs = store._list_page(bucket, "p/", None, detailed=True)
    listed = _fast_only(store, list, store.list_objects_detailed(bucket, "p/"))
    assert (listed, None) == theirs
    assert {o.storage_class for o in listed} == {"STANDARD"}
    assert fast.off_reason(bucket) is None


@pytest.mark.engines
def test_a_changed_object_and_a_bad_range_reach_the_caller_as_botocore_s_errors(
    engine: str, server: Any, s3: Any, bucket: str
) -> None:
    s3.put_object(Bucket=bucket, Key="p/warm", Body=b"warm")
    s3.put_object(Bucket=bucket, Key="p/x", Body=b"0123456789")
    store = _store(server)
    etag = s3.head_object(Bucket=bucket, Key="p/warm")["ETag"][1:-1]
    for byte_range in (None, (0, 1)):
        b"".join(
            bytes(c)
            for c in store.get_object(
                bucket, "p/warm", if_match=etag, byte_range=byte_range
            ).chunks(9)
        )
    fast = store.fast_path
    assert fast is not None
    sent = fast.sent
    with pytest.raises(TransferError) as changed:
        store.get_object(bucket, "p/x", if_match="0" * 32)
    assert changed.value.code == "PreconditionFailed"
    x_etag = s3.head_object(Bucket=bucket, Key="p/x")["ETag"][1:-1]
    with pytest.raises(TransferError) as beyond:
        store.get_object(bucket, "p/x", if_match=x_etag, byte_range=(100, 200))
    assert beyond.value.code == "InvalidRange"  # 416
    assert fast.sent == sent + 2  # both tried on the fast path first, botocore repeated them
    assert fast.off_reason(bucket) is None  # answers about one request: the path stays on
    assert store.stat_object(bucket, "p/missing") is None
    assert fast.off_reason(bucket) is None  # a missing key too


def _sent_to_server(proxy: FaultProxy, key: str) -> list[str]:
    """The requests for ``key`` that reached the server, by whom ("fast"/"botocore")."""
    return [
        "fast" if "fastpath" in headers.get("user-agent", "") else "botocore"
        for line, headers in zip(list(proxy.log), list(proxy.headers), strict=False)
        if line.split("?")[0].endswith(f"/{key}")
    ]


def _same_client_error(ours: BaseException | None, theirs: ClientError) -> None:
    """The same botocore exception: class, message, parsed error, status, retry count
    and header names (a date and a request id differ from one answer to the next)."""
    assert isinstance(ours, ClientError)
    assert type(ours) is type(theirs)
    assert str(ours) == str(theirs)
    assert ours.response["Error"] == theirs.response["Error"]
    assert ours.operation_name == theirs.operation_name
    mine, other = ours.response["ResponseMetadata"], theirs.response["ResponseMetadata"]
    assert {k: v for k, v in mine.items() if k not in ("HTTPHeaders", "RequestId", "HostId")} == {
        k: v for k, v in other.items() if k not in ("HTTPHeaders", "RequestId", "HostId")
    }
    assert set(mine["HTTPHeaders"]) == set(other["HTTPHeaders"])
    assert set(mine) == set(other)


@pytest.mark.engines
def test_a_missing_key_is_botocore_s_own_error_and_the_fast_path_stays_on(
    engine: str, proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    """An object deleted after the listing: the fast path's 404 to each of restore's
    reads (a whole GET with its checksum mode, a ranged GET, a HEAD) is raised as
    botocore raises it for the same request, side by side, after one request only, and
    the next read of the bucket still goes the fast way."""
    s3.put_object(Bucket=bucket, Key="p/warm", Body=b"warm")
    s3.put_object(Bucket=bucket, Key="p/gone", Body=b"0123456789")
    warm = s3.head_object(Bucket=bucket, Key="p/warm")["ETag"][1:-1]
    gone = s3.head_object(Bucket=bucket, Key="p/gone")["ETag"][1:-1]
    s3.delete_object(Bucket=bucket, Key="p/gone")
    store = _store(proxy)
    match = f'"{gone}"'
    reads: list[tuple[dict[str, Any], dict[str, Any]]] = [  # store arguments, botocore's
        ({"if_match": gone, "checksum_mode": True}, {"IfMatch": match, "ChecksumMode": "ENABLED"}),
        ({"if_match": gone, "byte_range": (0, 4)}, {"IfMatch": match, "Range": "bytes=0-4"}),
    ]
    for ours, _ in reads:  # botocore sends the first of each shape; the fast path learns
        b"".join(
            bytes(c)
            for c in store.get_object(bucket, "p/warm", **{**ours, "if_match": warm}).chunks(MiB)
        )
    assert store.stat_object(bucket, "p/warm") is not None
    fast = store.fast_path
    assert fast is not None
    for ours, theirs in reads:
        with pytest.raises(ClientError) as botocore_s:
            store.client.get_object(Bucket=bucket, Key="p/gone", **store._read_args(theirs))
        proxy.reset()
        with pytest.raises(TransferError) as fast_s:
            _fast_only(store, store.get_object, bucket, "p/gone", **ours)
        assert _sent_to_server(proxy, "p/gone") == ["fast"]  # botocore read it, not resent
        _same_client_error(fast_s.value.__cause__, botocore_s.value)
        expected = store.translate(botocore_s.value, bucket, "p/gone")
        assert (type(fast_s.value), str(fast_s.value), fast_s.value.code) == (
            type(expected), str(expected), expected.code,
        )  # fmt: skip
        assert fast_s.value.code == "NoSuchKey"
        assert not fast_s.value.transient
    # HEAD: stat_object answers None for a missing key either way; the exception under it
    with pytest.raises(ClientError) as botocore_s:
        store.client.head_object(Bucket=bucket, Key="p/gone", ChecksumMode="ENABLED")
    proxy.reset()
    assert _fast_only(store, store.stat_object, bucket, "p/gone") is None
    assert _sent_to_server(proxy, "p/gone") == ["fast"]
    prepared = fast.outgoing(bucket, "HeadObject", get_headers({"ChecksumMode": "ENABLED"}))
    with pytest.raises(Answered) as answered:
        fast.head(bucket, "p/gone", part_number=None, prepared=prepared)
    with store._replay.answering(answered.value.received), pytest.raises(ClientError) as read:
        store.client.head_object(Bucket=bucket, Key="p/gone", ChecksumMode="ENABLED")
    _same_client_error(read.value, botocore_s.value)
    assert error_code(read.value) == "404"
    # the path stays on: the next reads of the bucket are the fast path's alone
    assert fast.off_reason(bucket) is None
    proxy.reset()
    body = _fast_only(store, store.get_object, bucket, "p/warm", if_match=warm, checksum_mode=True)
    assert b"".join(bytes(c) for c in body.chunks(MiB)) == b"warm"
    assert _fast_only(store, store.stat_object, bucket, "p/warm") is not None
    assert _sent_to_server(proxy, "p/warm") == ["fast", "fast"]


def test_botocore_sends_its_own_request_when_it_is_not_the_one_answered(
    proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    """The answer is handed to botocore only for the request it answered: another
    request (another key here) is sent, once, and the hand-over is used up."""
    s3.put_object(Bucket=bucket, Key="p/there", Body=b"x")
    store = _store(proxy)
    other = Received("HEAD", f"{proxy.url}/{bucket}/p/elsewhere", 404, [], b"")
    with store._replay.answering(other):
        response = store.client.head_object(Bucket=bucket, Key="p/there")
        assert response["ContentLength"] == 1
        assert store.client.head_object(Bucket=bucket, Key="p/there")["ContentLength"] == 1
    assert _sent_to_server(proxy, "p/there") == ["botocore", "botocore"]


def test_headers_read_as_botocore_parses_them() -> None:
    """Header forms neither test server sends (names in mixed case, a repeated
    metadata header, SSE-C, a restore in progress), through botocore's own parser."""
    from botocore.parsers import create_parser
    from botocore.session import get_session
    from urllib3 import HTTPHeaderDict

    from s3stow.store.wire import info_from_headers

    pairs = [
        ("ETag", '"abc"'),
        ("Content-Length", "12"),
        ("Last-Modified", "Tue, 01 Dec 2026 18:00:07 GMT"),
        ("X-Amz-Meta-Odd-Case", "1"),
        ("x-amz-meta-odd-case", "2"),
        ("x-amz-meta-mtime", "2024-05-06T07:08:09Z"),
        ("X-Amz-Checksum-Crc32c", "AAAAAA=="),
        ("x-amz-checksum-type", "COMPOSITE"),
        ("x-amz-storage-class", "GLACIER"),
        ("x-amz-restore", 'ongoing-request="true"'),
        ("x-amz-server-side-encryption-customer-algorithm", "AES256"),
        ("x-amz-version-id", "v1"),
        ("x-amz-mp-parts-count", "3"),
    ]
    model = get_session().get_service_model("s3").operation_model("HeadObject")
    parsed = create_parser("rest-xml").parse(
        {"headers": HTTPHeaderDict(pairs), "body": b"", "status_code": 200}, model.output_shape
    )
    lower: dict[str, str] = {}
    for name, value in pairs:
        lower[name.lower()] = f"{lower[name.lower()]}, {value}" if name.lower() in lower else value
    assert info_from_headers("k", lower, pairs, size=12) == _info_of("k", parsed, size=12)


def test_a_body_cut_midway_is_fetched_again_whole(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """A fast GET whose connection ends halfway through the body: the bytes already
    handed out do not count, the attempt is repeated, the file is whole."""
    from s3stow.config import Settings
    from s3stow.restore.engine import Restorer

    data = os.urandom(3 * MiB)
    s3.put_object(Bucket=bucket, Key="p/a-warm", Body=b"warm")  # botocore's, to learn from
    s3.put_object(Bucket=bucket, Key="p/target", Body=data)
    proxy.add(r"^GET /[^?]*/p/target$", "truncate_body", agent="fastpath")
    restorer = Restorer(Settings(endpoint_url=proxy.url, concurrency=1, retry_base_delay=0.01))
    summary = restorer.restore_tree(f"s3://{bucket}/p", tmp_path / "out")
    assert summary.failures == []
    assert (tmp_path / "out" / "target").read_bytes() == data
    fast = [
        "fastpath" in headers.get("user-agent", "")
        for line, headers in zip(list(proxy.log), list(proxy.headers), strict=False)
        if line.endswith("/p/target") and line.startswith("GET ")
    ]
    assert fast == [True, True]  # cut, then again whole, both on the fast path
    assert summary.transient_errors >= 1


@pytest.mark.parametrize("operation", ["GetObject", "HeadObject"])
def test_an_unreadable_read_answer_is_repeated_by_botocore_and_turns_the_path_off(
    proxy: FaultProxy, s3: Any, bucket: str, operation: str
) -> None:
    """A 200 whose headers cannot be read (a Last-Modified that is no date) is
    repeated by botocore, whose answer the caller gets, and sends the bucket to
    botocore for good, with the reason (doctor and --debug show it). A readable answer
    is the fast path's alone: botocore does not repeat it."""
    from s3stow.config import Settings

    s3.put_object(Bucket=bucket, Key="p/a", Body=b"abc")
    s3.put_object(Bucket=bucket, Key="p/b", Body=b"defg")
    store = S3Store.from_settings(Settings(endpoint_url=proxy.url, path_style=True))
    assert store.client is not None  # built with its fast path
    fast = store.fast_path
    assert fast is not None

    def read(key: str) -> tuple[ObjectInfo, bytes]:
        if operation == "GetObject":
            body = store.get_object(bucket, key)
            return body.info, b"".join(bytes(c) for c in body.chunks(MiB))
        info = store.stat_object(bucket, key)
        assert info is not None
        return info, b""

    def agents() -> list[bool]:  # per request since the last call: the fast path's?
        seen = ["fastpath" in h.get("user-agent", "") for h in proxy.headers]
        proxy.headers.clear()
        return seen

    read("p/a")  # botocore; the fast path learns the shape
    agents()
    good, data = read("p/a")
    assert agents() == [True]
    assert (good.key, good.size, data) == ("p/a", 3, b"abc" if operation == "GetObject" else b"")
    method = "GET" if operation == "GetObject" else "HEAD"
    # a 500 is one fallback: botocore repeats the request, the path stays on
    proxy.add(rf"^{method} /{bucket}/p/a", "status", status=500, code="InternalError")
    assert read("p/a")[0].size == 3
    assert agents() == [True, False]
    assert fast.fallbacks == 1
    assert fast.off_reason(bucket) is None
    sent = fast.sent
    proxy.add(
        rf"^{method} /{bucket}/p/b",
        "rewrite_header",
        header="Last-Modified",
        value="not a date",
        agent="fastpath",
    )
    info, data = read("p/b")
    assert agents() == [True, False]
    assert (info.key, info.size) == ("p/b", 4)
    assert info.last_modified is not None  # botocore's answer
    assert data == (b"defg" if operation == "GetObject" else b"")
    assert (fast.sent, fast.fallbacks) == (sent + 1, 2)
    reason = fast.off_reason(bucket)
    assert reason is not None
    assert reason.startswith(f"an unreadable {operation} answer (")
    read("p/a")  # botocore now
    assert agents() == [False]
    assert fast.off_reason("another-bucket") is None


def test_a_failed_fast_exchange_turns_the_path_off_and_every_fallback_counts(
    proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    """A GetObject answer the fast path cannot take (its body framed by chunks, not by
    Content-Length) is repeated by botocore and turns the path off for the bucket, with
    the reason; each fallback counts, after a 500's as after none, the second 500 too."""
    from s3stow.config import Settings

    s3.put_object(Bucket=bucket, Key="p/a", Body=b"abc")
    store = S3Store.from_settings(Settings(endpoint_url=proxy.url, path_style=True))
    assert store.client is not None  # built with its fast path
    fast = store.fast_path
    assert fast is not None

    def read() -> bytes:
        return b"".join(bytes(c) for c in store.get_object(bucket, "p/a").chunks(MiB))

    assert read() == b"abc"  # botocore; the fast path learns the shape
    proxy.add(rf"^GET /{bucket}/p/a", "status", status=500, code="InternalError")
    assert read() == b"abc"  # the fast path's 500, repeated by botocore
    assert fast.fallbacks == 1
    proxy.add(rf"^GET /{bucket}/p/a", "status", status=500, code="InternalError", agent="fastpath")
    assert read() == b"abc"  # another: counted again, not set to one
    assert fast.fallbacks == 2
    proxy.add(
        rf"^GET /{bucket}/p/a",
        "rewrite_header",
        header="Transfer-Encoding",
        value="chunked",
        agent="fastpath",
    )
    assert read() == b"abc"
    assert fast.fallbacks == 3
    reason = fast.off_reason(bucket)
    assert reason is not None
    assert reason.startswith("GET failed: HTTPException(")


def test_a_body_read_to_its_end_gives_its_connection_back_and_one_closed_early_does_not(
    seaweed_server: Any, seaweed_s3: Any, seaweed_bucket: str
) -> None:
    """A streamed GetObject body holds this thread's connection: read to its end, the
    next request reuses it; closed before its end (its rest still on the wire), the
    connection is dropped and the next request opens another. Counted as the
    connections a TCP forwarder in front of the server accepts (SeaweedFS: moto's
    server closes every connection after one answer)."""
    from tests.tcpproxy import TcpProxy

    bucket = seaweed_bucket
    seaweed_s3.put_object(Bucket=bucket, Key="p/a", Body=b"x" * 100_000)
    forwarder = TcpProxy(seaweed_server.port)
    forwarder.start()
    try:
        store = S3Store.from_settings(
            load_settings(env={}, flags={"endpoint_url": f"http://127.0.0.1:{forwarder.port}"})
        )
        assert store.client is not None  # made, with its fast path

        def get() -> Any:
            return store.get_object(bucket, "p/a")

        b"".join(bytes(c) for c in get().chunks(MiB))  # botocore; the fast path learns the shape
        b"".join(bytes(c) for c in _fast_only(store, get).chunks(MiB))  # the fast path's connection
        opened = forwarder.accepted
        for _ in range(2):
            assert b"".join(bytes(c) for c in _fast_only(store, get).chunks(MiB)) == b"x" * 100_000
        assert forwarder.accepted == opened  # the same connection, given back each time
        body = _fast_only(store, get)
        next(iter(body.chunks(1000)))
        body.close()  # early: the rest of the body is still on the wire
        assert b"".join(bytes(c) for c in _fast_only(store, get).chunks(MiB)) == b"x" * 100_000
        assert forwarder.accepted == opened + 1
    finally:
        forwarder.stop()


def test_a_kept_connection_the_network_reset_is_replaced_once_on_the_fast_path(
    seaweed_server: Any, seaweed_s3: Any, seaweed_bucket: str
) -> None:
    """A connection kept from an earlier request and reset since (a server restart, an
    idle timeout of a load balancer) is not a failure: the request never reached S3, so
    the fast path sends it again on a new connection, without botocore."""
    from tests.tcpproxy import TcpProxy

    bucket = seaweed_bucket
    seaweed_s3.put_object(Bucket=bucket, Key="p/a", Body=b"abc")
    forwarder = TcpProxy(seaweed_server.port)
    forwarder.start()
    try:
        store = S3Store.from_settings(
            load_settings(env={}, flags={"endpoint_url": f"http://127.0.0.1:{forwarder.port}"})
        )
        assert store.client is not None  # made, with its fast path

        def get() -> Any:
            return store.get_object(bucket, "p/a")

        b"".join(bytes(c) for c in get().chunks(MiB))  # botocore; the fast path learns the shape
        assert (
            b"".join(bytes(c) for c in _fast_only(store, get).chunks(MiB)) == b"abc"
        )  # kept after
        opened = forwarder.accepted
        assert forwarder.drop() >= 1
        assert b"".join(bytes(c) for c in _fast_only(store, get).chunks(MiB)) == b"abc"
        assert forwarder.accepted == opened + 1  # one new connection
    finally:
        forwarder.stop()


def test_a_connection_opened_ahead_is_the_one_the_next_fast_request_uses(
    seaweed_server: Any, seaweed_bucket: str
) -> None:
    """Once HeadBucket taught the bucket's address, ``preconnect`` opens this thread's
    connection without sending anything; the next fast-path request goes over it (on
    SeaweedFS, which keeps connections alive). (Moved here from test_overlap.py, into
    mutmut's selection: it kills ``Connections.preconnect``'s mutants.)"""
    bucket = seaweed_bucket
    store = S3Store.from_settings(Settings(endpoint_url=seaweed_server.endpoint_url))
    store.head_bucket(bucket)  # through botocore: the fast path learns its address
    fast = store.fast_path
    assert fast is not None
    sent = fast.sent
    fast.preconnect(bucket)
    (opened,) = fast._local.conns.values()
    assert fast.sent == sent  # nothing sent
    assert fast.head_bucket(bucket)
    assert fast.sent == sent + 1
    assert list(fast._local.conns.values()) == [opened]  # the same socket, kept
    fast.preconnect("another-bucket")  # nothing learned there: nothing opened
    assert list(fast._local.conns.values()) == [opened]
