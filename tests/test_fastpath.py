"""The lean PutObject/UploadPart path: real signatures, one attempt, botocore behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from s3stow.devserver.moto import LocalS3Server
from s3stow.store.wire import put_headers
from tests.conftest import FIVE_MIB_PARTS, PIN_ETAG_CHECK, Cli, make_tree
from tests.faultproxy import FaultProxy

MiB = 1024 * 1024


def test_put_headers_mapping() -> None:
    headers = put_headers(
        {
            "ContentType": "text/plain",
            "Metadata": {"a": "1"},
            "ChecksumAlgorithm": "CRC64NVME",
            "ChecksumCRC64NVME": "abc=",
            "StorageClass": "STANDARD_IA",
            "IfNoneMatch": "*",
        }
    )
    assert headers == {
        "Content-Type": "text/plain",
        "x-amz-meta-a": "1",
        "x-amz-sdk-checksum-algorithm": "CRC64NVME",
        "x-amz-checksum-crc64nvme": "abc=",
        "x-amz-storage-class": "STANDARD_IA",
        "If-None-Match": "*",
    }
    assert put_headers({"Metadata": {"name": "caf\u00e9"}}) is None  # botocore decides
    assert put_headers({"SSECustomerKey": "x"}) is None


@pytest.fixture(scope="module")
def auth_server() -> Iterator[tuple[LocalS3Server, dict[str, str]]]:
    """A moto server that checks SigV4 signatures, and a user allowed to use S3."""
    server = LocalS3Server(env={"INITIAL_NO_AUTH_ACTION_COUNT": "3"})
    server.start()
    iam = boto3.client(
        "iam",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    iam.create_user(UserName="uploader")
    iam.put_user_policy(
        UserName="uploader",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="uploader")["AccessKey"]
    creds = {
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
    }
    yield server, creds
    server.stop()


@pytest.mark.moto_only(
    "IAM-made keys on signature-checking moto; SeaweedFS checks every matrix request"
)
def test_fast_path_signatures_are_accepted(auth_server: Any, tmp_path: Path) -> None:
    server, creds = auth_server
    s3 = boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket="signed")
    proxy = FaultProxy("127.0.0.1", server.port)
    proxy.start()
    try:
        tree = make_tree(tmp_path / "src", {"a b.txt": 100, "dir/ü.json": 50, "big.bin": 11 * MiB})
        cli = Cli(proxy.url, tmp_path)
        result = cli(
            "upload",
            "src",
            "s3://signed/p",
            "--ledger",
            "l.db",
            *FIVE_MIB_PARTS,
            "--metadata",
            "team=data",
            "--concurrency",
            "1",
            env={**creds, **PIN_ETAG_CHECK},
        )
        assert result.code == 0, result.output
        puts = [
            (line, h)
            for line, h in zip(proxy.log, proxy.headers, strict=True)
            if line.startswith("PUT ")
        ]
        assert len(puts) == 5  # 2 small files + 3 parts, each sent once: no fallback
        # botocore sends the first PutObject and the first UploadPart; the fast path
        # copies them for the rest, and the server accepts its signatures
        fast = [line for line, h in puts if "fastpath" in h.get("user-agent", "")]
        assert len(fast) == 3, puts
        assert sum("partNumber" in line for line in fast) == 2
        for rel, data in tree.items():
            assert s3.get_object(Bucket="signed", Key=f"p/{rel}")["Body"].read() == data
        wrong = dict(creds, AWS_SECRET_ACCESS_KEY="not-the-secret")
        denied = cli("upload", "src", "s3://signed/q", "--ledger", "l2.db", env=wrong)
        assert denied.code == 3
        assert "403" in denied.stderr  # a HEAD answer has no body to name the code
    finally:
        proxy.stop()


@pytest.mark.moto_only(
    "IAM-made keys on signature-checking moto; SeaweedFS checks every matrix request"
)
def test_fast_path_signs_with_a_selected_profile_not_the_environment_keys(
    auth_server: Any, tmp_path: Path
) -> None:
    """With a profile selected botocore ignores AWS_ACCESS_KEY_ID; so must the fast
    path (the environment's keys here are not valid for this server)."""
    server, creds = auth_server
    shared = tmp_path / "credentials"
    shared.write_text(
        "[uploader]\n"
        f"aws_access_key_id = {creds['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {creds['AWS_SECRET_ACCESS_KEY']}\n"
    )
    boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
    ).create_bucket(Bucket="profiled")
    proxy = FaultProxy("127.0.0.1", server.port)
    proxy.start()
    try:
        make_tree(tmp_path / "src", {"a.txt": 100, "b.txt": 200})
        env = {
            "AWS_SHARED_CREDENTIALS_FILE": str(shared),
            "AWS_ACCESS_KEY_ID": "AKIDNOTVALIDHERE0000",
            "AWS_SECRET_ACCESS_KEY": "not-valid-here",
        }
        cli = Cli(proxy.url, tmp_path)
        result = cli(
            "--profile",
            "uploader",
            "upload",
            "src",
            "s3://profiled/p",
            "--ledger",
            "l.db",
            "--concurrency",
            "1",
            env={**env, **PIN_ETAG_CHECK},
        )
        assert result.code == 0, result.output
        puts = [
            h for line, h in zip(proxy.log, proxy.headers, strict=True) if line.startswith("PUT ")
        ]
        assert len(puts) == 2
        assert sum("fastpath" in h.get("user-agent", "") for h in puts) == 1
        assert all("AKIDNOTVALIDHERE0000" not in h.get("authorization", "") for h in puts)
    finally:
        proxy.stop()


def test_fast_path_off_uses_botocore(proxied_cli, proxy, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 10})
    result = proxied_cli(
        "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env={"S3STOW_FAST_PATH": "false"}
    )
    assert result.code == 0
    puts = [h for line, h in zip(proxy.log, proxy.headers, strict=True) if line.startswith("PUT ")]
    assert puts
    assert all("fastpath" not in h.get("user-agent", "") for h in puts)


@pytest.mark.parametrize(("status", "code"), [(301, "PermanentRedirect"), (403, "AccessDenied")])
def test_a_refusal_sends_the_bucket_to_botocore(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    status: int,
    code: str,
) -> None:
    """A fast-path request answered with a redirect (or 403, 400, 404...) sends the bucket
    to botocore for the rest of the run: botocore repeats that request and sends every
    later one (no doubled requests for every file)."""
    tree = make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(5)})
    proxy.add(r"^PUT ", "status", times=1, status=status, code=code, agent="fastpath")
    result = proxied_cli(
        "--debug",
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--concurrency",
        "1",
        env=PIN_ETAG_CHECK,
    )
    assert result.code == 0, result.output
    puts = [h for line, h in zip(proxy.log, proxy.headers, strict=True) if line.startswith("PUT ")]
    # botocore's first PUT (learned), the fast path's refused one, then botocore for 4
    assert len(puts) == 6
    assert sum("fastpath" in h.get("user-agent", "") for h in puts) == 1
    assert f"fast path off for bucket {bucket}: PUT answered {status}" in result.stderr
    for rel, data in tree.items():
        assert s3.get_object(Bucket=bucket, Key=f"p/{rel}")["Body"].read() == data


@pytest.mark.engines  # paging and key encoding on a server that checks every signature
def test_fast_listing_equals_botocore_across_pages(proxy: FaultProxy, s3: Any, bucket: str) -> None:
    from s3stow.config import Settings
    from s3stow.store.s3 import S3Store

    keys = ["p/a b.txt", "p/plus+sign", "p/ü/ñ.json", "p/pct%41", "p/tilde~x", "p/q?x=1&y"]
    keys += [f"p/n/{i:03d}" for i in range(14)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    settings = Settings(endpoint_url=proxy.url, path_style=True)
    store = S3Store.from_settings(settings)
    store.list_page_size = 6
    proxy.log.clear()
    proxy.headers.clear()
    # the second page's fast attempt fails: botocore lists that page, then the fast
    # path goes on from botocore's continuation token
    proxy.add(r"^GET .*continuation-token", "status", status=500, times=1)
    listed = {o.key: o for o in store.list_objects(bucket, "p/")}
    assert sorted(listed) == sorted(keys)
    assert all(listed[k].size == len(k.encode()) for k in keys)
    reference = {
        o["Key"]: o["ETag"].strip('"')
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="p/")
        for o in page["Contents"]
    }
    assert {k: o.etag for k, o in listed.items()} == reference
    agents = ["fastpath" in h.get("user-agent", "") for h in proxy.headers]
    # botocore lists page 1 (the fast path learns it); the fast path lists pages 2-4,
    # its attempt at page 2 fails (a 500 leaves it on) and botocore repeats that page
    assert agents == [False, True, False, True, True]


@pytest.mark.engines
def test_botocore_parses_a_short_first_page_while_the_fast_path_learns_the_listing(
    proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    """botocore parses about 70 us a key: while the fast path learns ListObjectsV2 from
    botocore's request, that request asks for LEARNING_PAGE keys, and the fast path
    lists the rest in full pages; without a fast path every page is a full one."""
    from s3stow.config import Settings
    from s3stow.store.s3 import S3Store
    from s3stow.store.s3reads import LEARNING_PAGE

    keys = [f"p/{i:04d}" for i in range(LEARNING_PAGE + 30)]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    for fast, expected in ((True, [(False, True), (True, False)]), (False, [(False, False)])):
        settings = Settings(endpoint_url=proxy.url, path_style=True, fast_path=fast)
        store = S3Store.from_settings(settings)
        proxy.log.clear()
        proxy.headers.clear()
        assert [o.key for o in store.list_objects(bucket, "p/")] == keys
        sent = [
            ("fastpath" in h.get("user-agent", ""), f"max-keys={LEARNING_PAGE}" in line)
            for line, h in zip(proxy.log, proxy.headers, strict=True)
            if "list-type=2" in line
        ]
        assert sent == expected, proxy.log


def test_a_fast_listing_keeps_to_its_prefix_and_an_unreadable_one_goes_to_botocore(
    proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    """The fast path lists only the prefix asked; a 200 whose body is no listing (a
    gateway's page) is repeated by botocore and sends the bucket to botocore for good,
    with the reason (doctor and --debug show it)."""
    from s3stow.config import Settings
    from s3stow.store.s3 import S3Store

    for key in ("p/a", "p/b", "q/c", "pq"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    store = S3Store.from_settings(Settings(endpoint_url=proxy.url, path_style=True))
    assert store.client is not None  # built with its fast path
    fast = store.fast_path
    assert fast is not None
    proxy.log.clear()
    proxy.headers.clear()
    for _ in range(2):  # botocore (learned), then the fast path
        assert [o.key for o in store.list_objects(bucket, "p/")] == ["p/a", "p/b"]
    # a 500 is one fallback (botocore repeats the page), and the path stays on
    proxy.add(r"^GET .*list-type", "status", status=500, code="InternalError", agent="fastpath")
    assert [o.key for o in store.list_objects(bucket, "p/")] == ["p/a", "p/b"]
    assert (fast.fallbacks, fast.off_reason(bucket)) == (1, None)
    proxy.add(
        r"^GET .*list-type", "rewrite_body", value="<html>bad gateway</html>", agent="fastpath"
    )
    assert [o.key for o in store.list_objects(bucket, "q/")] == ["q/c"]
    assert fast.fallbacks == 2
    reason = fast.off_reason(bucket)
    assert reason is not None
    assert reason.startswith("an unreadable listing (")
    assert [o.key for o in store.list_objects(bucket, "")] == ["p/a", "p/b", "pq", "q/c"]
    agents = ["fastpath" in h.get("user-agent", "") for h in proxy.headers]
    assert agents == [False, True, True, False, True, False, False]


def test_doctor_finds_the_fast_path_answering_as_botocore_and_names_its_listing(
    proxy: FaultProxy, s3: Any, bucket: str
) -> None:
    from s3stow.config import Settings
    from s3stow.store.resolution import compare_fast_path
    from s3stow.store.s3 import S3Store

    s3.put_object(Bucket=bucket, Key="p/a", Body=b"x")
    store = S3Store.from_settings(Settings(endpoint_url=proxy.url, path_style=True))
    on, found = compare_fast_path(store, bucket, "p/")
    assert on, found
    fast = store.fast_path
    assert fast is not None
    listing = fast.template(bucket, "ListObjectsV2")
    head = fast.template(bucket, "HeadBucket")
    assert listing is not None
    assert head is not None
    assert f"({listing.url}, signing region {listing.region})" in found
    assert fast.template(bucket, "PutObject") is None  # nothing written: nothing learned
    assert fast.template("another-bucket", "ListObjectsV2") is None


def test_a_busy_server_leaves_the_fast_path_on(
    proxied_cli, proxy, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """503 (and 429, 5xx, a dropped connection) says nothing about the configuration:
    botocore repeats that one request and the fast path sends the next ones."""
    tree = make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(4)})
    proxy.add(r"^PUT ", "status", times=1, status=503, code="SlowDown", agent="fastpath")
    result = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--concurrency",
        "1",
        env=PIN_ETAG_CHECK,
    )
    assert result.code == 0, result.output
    agents = [
        "fastpath" in h.get("user-agent", "")
        for line, h in zip(proxy.log, proxy.headers, strict=True)
        if line.startswith("PUT ")
    ]
    # botocore's first PUT (learned), the fast path's refused one and botocore's repeat,
    # then the fast path again
    assert agents == [False, True, False, True, True]
    for rel, data in tree.items():
        assert s3.get_object(Bucket=bucket, Key=f"p/{rel}")["Body"].read() == data


def test_an_endpoint_from_aws_endpoint_url_gets_the_etag_check(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """``etag_check: auto`` checks ETags on any endpoint botocore was configured with, not
    only --endpoint-url: with AWS_ENDPOINT_URL the server is probed (moto stores a wrong
    checksum) and the MD5 travels as Content-MD5 too."""
    import os
    import subprocess
    import sys

    make_tree(tmp_path / "src", {"a.txt": 100, "b.txt": 200})
    done = subprocess.run(
        [sys.executable, "-m", "s3stow", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "AWS_ENDPOINT_URL": proxy.url},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    puts = [h for line, h in zip(proxy.log, proxy.headers, strict=True) if line.startswith("PUT ")]
    assert len(proxy.requests(r"^PUT .*/\.s3stow-probe/")) == 1
    data = [h for h in puts if h.get("x-amz-meta-source") != "s3stow-probe"]
    assert len(data) == 2
    assert all(h.get("content-md5") for h in data)


def test_a_fast_put_computes_its_shape_once(
    proxy: FaultProxy, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After learning, a PutObject on the fast path computes its shape (a frozenset of
    lower-cased header names) once, not once per check and once more to send it."""
    from s3stow.config import Settings
    from s3stow.store import checksums, fastlearn
    from s3stow.store.base import WriteOptions
    from s3stow.store.s3 import S3Store

    store = S3Store.from_settings(Settings(endpoint_url=proxy.url, path_style=True))
    options = WriteOptions(content_type="text/plain", metadata={"a": "b"})

    def put(key: str, data: bytes) -> None:
        digest = checksums.compute("crc32", data)
        store.put_object(bucket, key, data, digest=digest, options=options)

    put("p/first", b"first")  # botocore sends it, the fast path learns it
    assert store._fast is not None, "no fast path"
    assert store._fast.off_reason(bucket) is None
    calls = []
    real = fastlearn.shape

    def counted(*args: Any) -> Any:
        calls.append(args[:2])
        return real(*args)

    monkeypatch.setattr(fastlearn, "shape", counted)
    proxy.headers.clear()
    for index in range(3):
        put(f"p/{index}", b"x" * index)
    assert ["fastpath" in h.get("user-agent", "") for h in proxy.headers] == [True] * 3
    assert calls == [(bucket, "PutObject")] * 3
    assert s3.get_object(Bucket=bucket, Key="p/2")["Body"].read() == b"xx"


def test_a_fast_read_computes_its_shape_once_and_takes_no_lock(
    proxy: FaultProxy, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After learning, a GetObject or HeadObject on the fast path computes its shape
    once (it was four times) and passes no learning gate (its lock was taken by every
    read of every thread)."""
    from s3stow.config import Settings
    from s3stow.store import fastlearn
    from s3stow.store.s3 import S3Store

    for index in range(4):
        s3.put_object(Bucket=bucket, Key=f"p/{index}", Body=b"y" * index)
    store = S3Store.from_settings(Settings(endpoint_url=proxy.url, path_style=True))
    assert _read(store.get_object(bucket, "p/0", checksum_mode=True)) == b""  # learned
    assert store.stat_object(bucket, "p/0") is not None
    assert store._fast is not None, "no fast path"
    calls = []
    real = fastlearn.shape

    def counted(*args: Any) -> Any:
        calls.append(args[:2])
        return real(*args)

    def no_gate(*args: Any) -> Any:
        raise AssertionError("a learned shape went through the learning gate")

    monkeypatch.setattr(fastlearn, "shape", counted)
    monkeypatch.setattr(store._gate, "first", no_gate)
    proxy.headers.clear()
    for index in range(1, 4):
        assert _read(store.get_object(bucket, f"p/{index}", checksum_mode=True)) == b"y" * index
        info = store.stat_object(bucket, f"p/{index}")
        assert info is not None
        assert info.size == index
    assert ["fastpath" in h.get("user-agent", "") for h in proxy.headers] == [True] * 6
    assert calls == [(bucket, "GetObject"), (bucket, "HeadObject")] * 3


def _read(body: Any) -> bytes:
    try:
        return b"".join(bytes(chunk) for chunk in body.chunks(1 << 16))
    finally:
        body.close()
