"""Transient faults are retried and the content stays exact (fault proxy)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FIVE_MIB_PARTS, make_tree

pytestmark = pytest.mark.moto_only(
    "the proxy injects the fault; the client's answer is the same on any server"
)

MiB = 1024 * 1024
FAST = {"S3STOW_RETRY_BASE_DELAY": "0.01"}


def test_slowdown_is_retried_and_counted(proxied_cli, proxy, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tree = make_tree(tmp_path / "src", {f"f{i}.txt": 50 for i in range(6)})
    proxy.add(r"^PUT /[^/]+/p/f2\.txt", "status", times=2, status=503, code="SlowDown")
    proxy.add(r"^PUT /[^/]+/p/f4\.txt", "status", times=2, status=500, code="InternalError")
    result = proxied_cli(
        "--json", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env=FAST
    )
    assert result.code == 0, result.output
    for rel, data in tree.items():
        assert s3.get_object(Bucket=bucket, Key=f"p/{rel}")["Body"].read() == data
    assert len(proxy.requests(r"^PUT /[^/]+/p/f2\.txt")) == 3
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["transient_errors"] == 4
    assert summary["throttled"] == 2
    assert summary["concurrency"] < 16  # backed off (AIMD), not yet fully recovered


def test_part_faults_resent_from_right_offsets(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    data = make_tree(tmp_path / "src", {"big.bin": 15 * MiB})["big.bin"]
    proxy.add(r"^PUT .*partNumber=2(&|$)", "reset", times=1)
    proxy.add(r"^PUT .*partNumber=3(&|$)", "status", times=1, status=500, code="InternalError")
    result = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        *FIVE_MIB_PARTS,
        env=FAST,
    )
    assert result.code == 0, result.output
    assert s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read() == data
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert len(proxy.requests(r"^PUT .*partNumber=2(&|$)")) == 2
    assert len(proxy.requests(r"^PUT .*partNumber=3(&|$)")) == 2


def test_ambiguous_complete_ends_done(proxied_cli, proxy, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = make_tree(tmp_path / "src", {"big.bin": 11 * MiB})["big.bin"]
    proxy.add(r"^POST .*uploadId=", "forward_then_reset", times=1)
    result = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        *FIVE_MIB_PARTS,
        env=FAST,
    )
    assert result.code == 0, result.output
    assert s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read() == data
    assert len(proxy.requests(r"^POST .*uploadId=")) == 2  # Complete sent twice


def test_ambiguous_complete_then_nosuchupload_is_resolved_by_head(
    proxied_cli,
    proxy,
    s3,  # type: ignore[no-untyped-def]
    bucket,
    tmp_path: Path,
) -> None:
    data = make_tree(tmp_path / "src", {"big.bin": 11 * MiB})["big.bin"]
    proxy.add(r"^POST .*uploadId=", "forward_then_reset", times=1)
    proxy.add(r"^POST .*uploadId=", "status", times=5, status=404, code="NoSuchUpload")
    result = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        *FIVE_MIB_PARTS,
        env=FAST,
    )
    assert result.code == 0, result.output
    assert s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read() == data
    assert len(proxy.requests(r"^PUT .*partNumber=")) == 3  # nothing re-uploaded


def test_checksum_compat_mode_sends_content_md5(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    tree = make_tree(tmp_path / "src", {"a.bin": 1000, "big.bin": 11 * MiB})
    result = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--checksum-compat",
        *FIVE_MIB_PARTS,
    )
    assert result.code == 0, result.output
    for rel, data in tree.items():
        assert s3.get_object(Bucket=bucket, Key=f"p/{rel}")["Body"].read() == data


def test_server_rejecting_checksum_headers_names_the_setting(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {"a.bin": 10})
    proxy.add(r"^PUT ", "status", times=50, status=400, code="InvalidArgument")
    result = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env=FAST)
    assert result.code == 1
    assert "InvalidArgument" in result.stdout
