"""Reliability: corruption in flight, lying responses, crash points, hostile input.

Each test ends with the invariant: every source file is either in S3 with the
same bytes and recorded done, or recorded failed/changed with a reason; never
done for a missing or different object; no incomplete multipart upload left.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import FlexibleChecksumError

from s3stow.plan.retries import category
from tests.conftest import FIVE_MIB_PARTS, make_tree

MiB = 1024 * 1024
FAST = {"S3STOW_RETRY_BASE_DELAY": "0.01"}
FAULTS = pytest.mark.moto_only(
    "the proxy injects the fault; the client's answer is the same on any server"
)


def check_invariant(s3: Any, bucket: str, prefix: str, tree: dict[str, bytes], db: Path) -> None:
    with sqlite3.connect(db) as conn:
        status = dict(conn.execute("SELECT key, status FROM items"))
    for rel, data in tree.items():
        key = f"{prefix}/{rel}"
        if status.get(key) == "done":
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            assert body == data, f"{key} recorded done but differs in S3"
        else:
            assert status.get(key) in ("failed", "changed", None), key
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert all(o["Key"].startswith(prefix + "/") for o in listed)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


@FAULTS
@pytest.mark.parametrize("size", [3000, 2 * MiB, 11 * MiB])  # buffered, streamed, parts
def test_body_corrupted_in_flight_is_caught_and_resent(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    size: int,
) -> None:
    tree = make_tree(tmp_path / "src", {"f.bin": size})
    pattern = r"^PUT .*partNumber=2(&|$)" if size > 5 * MiB else r"^PUT /[^?]*f\.bin$"
    proxy.add(pattern, "corrupt", times=1)
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
    assert len(proxy.requests(pattern)) == 2  # detected by the ETag check, sent again
    check_invariant(s3, bucket, "p", tree, tmp_path / "l.db")


@pytest.mark.moto_only("SeaweedFS refuses corrupt bytes itself (BadDigest): only moto stores them")
def test_without_the_etag_check_moto_keeps_corruption(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """Proves the fault is real: moto does not validate checksums, only our check does."""
    tree = make_tree(tmp_path / "src", {"f.bin": 3000})
    proxy.add(r"^PUT ", "corrupt", times=1)
    result = proxied_cli(
        "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env={"S3STOW_ETAG_CHECK": "off"}
    )
    assert result.code == 0
    with pytest.raises(FlexibleChecksumError):  # stored corrupt, caught only on a later GET
        s3.get_object(Bucket=bucket, Key="p/f.bin")["Body"].read()
    assert len(tree["f.bin"]) == 3000


def _content_md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


@pytest.mark.parametrize("etag_check", ["auto", "off"])
def test_content_md5_travels_wherever_the_md5_is_computed(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    etag_check: str,
) -> None:
    """On a custom endpoint the MD5 is computed for the ETag check; sent as Content-MD5
    it lets a validating server refuse damaged bytes before it stores them."""
    tree = make_tree(tmp_path / "src", {"a.bin": 3000, "b.bin": 2 * MiB, "big.bin": 11 * MiB})
    result = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        *FIVE_MIB_PARTS,
        env={"S3STOW_ETAG_CHECK": etag_check},
    )
    assert result.code == 0, result.output
    got = {}
    for line, headers in zip(proxy.log, proxy.headers, strict=True):
        if line.startswith("PUT /") and "/p/" in line and ".s3stow-probe/" not in line:
            name = line.split(" ", 1)[1].split("?")[0].rsplit("/", 1)[1]
            number = re.search(r"partNumber=(\d+)", line)
            got[name, number.group(1) if number else ""] = headers.get("content-md5")
    part = 5 * MiB
    big = tree["big.bin"]
    expected = {
        ("a.bin", ""): tree["a.bin"],
        ("b.bin", ""): tree["b.bin"],
        **{("big.bin", str(n)): big[(n - 1) * part : n * part] for n in (1, 2, 3)},
    }
    assert set(got) == set(expected)
    for what, data in expected.items():
        assert got[what] == (_content_md5(data) if etag_check == "auto" else None), what
    check_invariant(s3, bucket, "p", tree, tmp_path / "l.db")


@FAULTS
def test_a_bad_digest_answer_is_resent(proxied_cli, proxy, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """BadDigest means the bytes arrived damaged: the file is sent again, not failed.
    Twice, because the fast path's failure is first repeated once by botocore."""
    tree = make_tree(tmp_path / "src", {"f.bin": 3000})
    pattern = r"^PUT /[^?]*f\.bin$"
    proxy.add(pattern, "status", times=2, status=400, code="BadDigest")
    result = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env=FAST)
    assert result.code == 0, result.output
    assert len(proxy.requests(pattern)) == 3
    check_invariant(s3, bucket, "p", tree, tmp_path / "l.db")


@FAULTS
def test_lying_part_etag_is_detected(proxied_cli, proxy, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tree = make_tree(tmp_path / "src", {"f.bin": 11 * MiB})
    proxy.add(
        r"^PUT .*partNumber=1(&|$)",
        "rewrite_header",
        times=1,
        header="ETag",
        value='"00000000000000000000000000000000"',
    )
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
    assert len(proxy.requests(r"^PUT .*partNumber=1(&|$)")) == 2
    check_invariant(s3, bucket, "p", tree, tmp_path / "l.db")


def _kill_on(proxy: Any, pattern: str, process_box: list[subprocess.Popen[str]]) -> None:
    def kill(_: str) -> None:
        if process_box:
            os.kill(process_box[0].pid, signal.SIGKILL)

    proxy.add(pattern, "callback", times=1, callback=kill)


@FAULTS
@pytest.mark.parametrize("point", [r"^PUT .*partNumber=3(&|$)", r"^POST .*uploadId="])
def test_sigkill_after_a_response_before_the_ledger_commit(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    point: str,
) -> None:
    tree = make_tree(tmp_path / "src", {"f.bin": 26 * MiB})
    args = (
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        *FIVE_MIB_PARTS,
        "--concurrency",
        "1",
    )
    box: list[subprocess.Popen[str]] = []
    _kill_on(proxy, point, box)
    box.append(proxied_cli.start(*args))
    box[0].wait(60)
    assert box[0].returncode == -signal.SIGKILL
    completed = point.startswith("^POST")
    proxy.reset()
    result = proxied_cli(*args)
    assert result.code == 0, result.output
    parts = proxy.requests(r"^PUT .*partNumber=")
    if completed:  # the object was complete: proven by checksum, nothing re-sent
        assert parts == []
        assert proxy.requests(r"^POST ") == []
    else:  # parts 1-3 are in S3 (3 maybe not in the ledger: adopted by its MD5)
        sent = sorted(int(re.search(r"partNumber=(\d+)", p).group(1)) for p in parts)  # type: ignore[union-attr]
        assert sent == [4, 5, 6]
    check_invariant(s3, bucket, "p", tree, tmp_path / "l.db")


@FAULTS
def test_appended_during_multipart_is_not_completed(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {"f.bin": 16 * MiB})
    path = tmp_path / "src" / "f.bin"

    def append(_: str) -> None:
        with path.open("ab") as handle:
            handle.write(b"more data")

    proxy.add(r"^PUT .*partNumber=1(&|$)", "callback", times=1, callback=append)
    result = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        *FIVE_MIB_PARTS,
        "--concurrency",
        "1",
    )
    assert result.code == 1
    assert "changed during upload" in result.stdout
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    again = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert again.code == 0
    assert s3.get_object(Bucket=bucket, Key="p/f.bin")["Body"].read() == path.read_bytes()


@pytest.mark.engines
@pytest.mark.parametrize("keep_mtime", [False, True])
def test_file_rewritten_between_hashing_and_sending_is_never_done(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    keep_mtime: bool,
    engine: str,
) -> None:
    """A streamed body is hashed, then read again to be sent: a same-size rewrite in
    between (here while the first attempt fails) must not end as done. With a new
    mtime, and with the mtime put back (the status-change time still moves), it is
    reported as changed, and the next run uploads the new bytes: moto stores the bytes
    and the ETag check refuses them, SeaweedFS refuses them itself (BadDigest), and
    either way the file's identity says it changed."""
    make_tree(tmp_path / "src", {"f.bin": 3 * MiB})
    path = tmp_path / "src" / "f.bin"

    def rewrite(_: str) -> None:
        before = path.stat()
        path.write_bytes(bytes(reversed(path.read_bytes())))
        if keep_mtime:
            os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    pattern = r"^PUT /[^?]*f\.bin$"
    proxy.add(pattern, "status", times=1, status=500, code="InternalError", callback=rewrite)
    result = proxied_cli(
        "--json", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env=FAST
    )  # fmt: skip
    assert result.code == 1, result.output
    with sqlite3.connect(tmp_path / "l.db") as conn:
        status, error_class = conn.execute(
            "SELECT status, error_class FROM items WHERE key = 'p/f.bin'"
        ).fetchone()
    assert (status, error_class) == ("changed", "SourceChanged")
    assert category(error_class) == "source changed"
    again = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert again.code == 0, again.output
    assert s3.get_object(Bucket=bucket, Key="p/f.bin")["Body"].read() == path.read_bytes()


@FAULTS
def test_file_vanishing_before_upload(proxied_cli, proxy, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 5, "b.txt": 5})

    def delete(_: str) -> None:
        (tmp_path / "src" / "b.txt").unlink()

    proxy.add(r"^PUT /[^?]*a\.txt", "callback", times=1, callback=delete)
    result = proxied_cli(
        "--json", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--concurrency", "1"
    )
    assert result.code == 1
    assert "vanished" in result.stdout or "shorter" in result.stdout


def test_unusable_ledger_location_fails_before_any_request(
    proxied_cli,
    proxy,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {"a.txt": 1})
    (tmp_path / "file").write_text("not a directory")
    result = proxied_cli(
        "upload", "src", "s3://some-bucket/p", "--ledger", str(tmp_path / "file" / "l.db")
    )
    assert result.code == 2  # a path that can never be a ledger: usage (it was 3)
    assert f"{tmp_path / 'file'} is a file, not a folder" in result.stderr
    assert proxy.log == []


def test_expected_bucket_owner_on_every_request(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {"a.txt": 1, "big.bin": 11 * MiB})
    result = proxied_cli(
        "--expected-bucket-owner",
        "123456789012",
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--multipart-threshold",
        "5MiB",
        "--part-size",
        "5MiB",
    )
    assert result.code == 0, result.output
    assert proxy.headers
    assert all(h.get("x-amz-expected-bucket-owner") == "123456789012" for h in proxy.headers)


def test_hostile_names_are_reported_and_nothing_escapes(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    make_tree(
        src,
        {
            "ok.txt": 1,
            "new\nline.txt": 2,
            "bell\x07.txt": 3,
            "nfd/cafe\u0301.txt": 4,
            "deep/" + "/".join(["d" * 200] * 6) + "/x.txt": 5,
        },
    )
    os.symlink("/etc", src / "etc-link")
    result = cli("--json", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert result.code == 1
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"p/ok.txt", "p/nfd/caf\u00e9.txt"}
    assert result.stdout.count('"error_class": "UnsafeKey"') >= 3


def test_no_verify_ssl_warns(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 1})
    result = cli("--no-verify-ssl", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert result.code == 0
    assert "TLS certificate verification is OFF" in result.stderr


@FAULTS
def test_read_timeout_with_a_late_first_write(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """The first PUT reaches the server late, after the client gave up: the retry
    wins, the duplicate write is harmless, and the object is exact."""
    tree = make_tree(tmp_path / "src", {"a.bin": 5000, "big.bin": 11 * MiB})
    proxy.add(r"^PUT /[^?]*a\.bin$", "delay", times=1, delay=3)
    proxy.add(r"^PUT .*partNumber=2(&|$)", "delay", times=1, delay=3)
    result = proxied_cli(
        "--json",
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        *FIVE_MIB_PARTS,
        env={"S3STOW_READ_TIMEOUT": "1", **FAST},
    )
    assert result.code == 0, result.output
    assert len(proxy.requests(r"^PUT /[^?]*a\.bin$")) >= 2
    assert len(proxy.requests(r"^PUT .*partNumber=2(&|$)")) >= 2
    check_invariant(s3, bucket, "p", tree, tmp_path / "l.db")
