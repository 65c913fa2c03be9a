"""The lean PutObject/UploadPart path: real signatures, one attempt, botocore behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from s3stow.devserver import LocalS3Server
from s3stow.store.fastpath import put_headers
from tests.conftest import FIVE_MIB_PARTS, Cli, make_tree
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
            env=creds,
        )
        assert result.code == 0, result.output
        puts = [
            (line, h)
            for line, h in zip(proxy.log, proxy.headers, strict=True)
            if line.startswith("PUT ")
        ]
        assert len(puts) == 5  # 2 small files + 3 parts, each sent once: no fallback
        assert all("fastpath" in h.get("user-agent", "") for _, h in puts)
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
            "--profile", "uploader", "upload", "src", "s3://profiled/p", "--ledger", "l.db", env=env
        )
        assert result.code == 0, result.output
        puts = [
            h for line, h in zip(proxy.log, proxy.headers, strict=True) if line.startswith("PUT ")
        ]
        assert len(puts) == 2
        assert all("fastpath" in h.get("user-agent", "") for h in puts)
        assert all("AKIDNOTVALIDHERE0000" not in h.get("authorization", "") for h in puts)
    finally:
        proxy.stop()


PROBE = """
import sys
from s3stow.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    print("CODE", exit.code)
print("LOADED", ",".join(m for m in ("boto3", "botocore.session", "botocore.client",
                                     "sqlalchemy") if m in sys.modules))
"""


def test_a_clean_upload_with_environment_keys_loads_no_botocore_session(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    make_tree(tmp_path / "src", {"a.txt": 10, "d/b.txt": 20})
    argv = ["-q", "--endpoint-url", proxy.url, "upload", str(tmp_path / "src"), f"s3://{bucket}/e"]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv, "--ledger", str(tmp_path / "l.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "CODE 0" in done.stdout or "CODE None" in done.stdout, done.stderr
    assert "LOADED \n" in done.stdout + "\n", done.stdout


def test_fast_path_off_uses_botocore(proxied_cli, proxy, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 10})
    result = proxied_cli(
        "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env={"S3STOW_FAST_PATH": "false"}
    )
    assert result.code == 0
    puts = [h for line, h in zip(proxy.log, proxy.headers, strict=True) if line.startswith("PUT ")]
    assert puts
    assert all("fastpath" not in h.get("user-agent", "") for h in puts)


def test_a_redirect_sends_the_bucket_to_botocore(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """A bucket in another region answers 301: botocore handles it, and the fast path
    stops trying that bucket (no doubled requests for every file)."""
    tree = make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(5)})
    proxy.add(r"^PUT ", "status", times=1, status=301, code="PermanentRedirect")
    result = proxied_cli(
        "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--concurrency", "1"
    )
    assert result.code == 0, result.output
    puts = [h for line, h in zip(proxy.log, proxy.headers, strict=True) if line.startswith("PUT ")]
    assert len(puts) == 6  # the redirected attempt, then 5 through botocore
    assert sum("fastpath" in h.get("user-agent", "") for h in puts) == 1
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
    # the third page's first attempt fails: botocore lists that page, then the fast
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
    agents = [h.get("user-agent", "") for h in proxy.headers]
    assert sum("fastpath" in a for a in agents) == 4  # 4 pages, one attempt failed
    assert any("fastpath" not in a for a in agents)  # botocore took the failed page
    assert store._client is not None  # and only then was a client built


def test_clean_run_builds_no_botocore_client(proxy: FaultProxy, bucket: str) -> None:
    from s3stow.config import Settings
    from s3stow.store.s3 import S3Store

    store = S3Store.from_settings(Settings(endpoint_url=proxy.url, path_style=True))
    store.head_bucket(bucket)
    assert list(store.list_objects(bucket, "nothing/")) == []
    assert store._client is None


@pytest.mark.parametrize(
    ("variable", "config"),
    [
        ("AWS_USE_FIPS_ENDPOINT", ""),
        ("AWS_USE_DUALSTACK_ENDPOINT", ""),
        ("", "[default]\ns3 =\n    use_accelerate_endpoint = true\n"),
        ("", "[default]\nregion = eu-west-1\n"),
    ],
)
def test_aws_endpoint_variants_leave_everything_to_botocore(
    variable: str, config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path addresses plain s3.<region>.amazonaws.com only: with FIPS,
    dual-stack or accelerated endpoints configured it stays off."""
    from s3stow.config import Settings
    from s3stow.store.s3 import S3Store

    if variable:
        monkeypatch.setenv(variable, "true")
    if config:
        (tmp_path / "config").write_text(config)
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    fast = S3Store.from_settings(Settings(region="us-east-1"))._fast_path()
    assert fast is not None
    plain = "region" in config  # a config file alone: botocore's keys, fast path on
    assert (fast._credentials is not None) is plain
