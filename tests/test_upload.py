"""``s3stow upload`` end to end against the moto server (through the real CLI)."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from awscrt import checksums as crt

from tests.conftest import make_tree

MiB = 1024 * 1024
WRITES = r"^(PUT|POST) "


def crc64(data: bytes) -> str:
    return base64.b64encode(crt.crc64nvme(data).to_bytes(8, "big")).decode()


def objects(s3: Any, bucket: str, prefix: str = "") -> dict[str, int]:
    found: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return found


def ledger_rows(path: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT key, status, attempts FROM items ORDER BY key").fetchall()


@pytest.mark.engines
def test_tree_upload_byte_for_byte_and_checksums(cli, s3, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tree = make_tree(
        tmp_path / "src",
        {
            "a.txt": 10,
            "dir/b.json": 2000,
            "dir/sub/c.bin": 70_000,
            "empty.dat": 0,
            "dir/sub/deep/d e f.xml": 5,
            "big.bin": 23 * MiB,
        },
    )
    result = cli("upload", "src", f"s3://{bucket}/pre", "--ledger", "l.db", "--part-size", "8MiB")
    assert result.code == 0, result.output
    assert "6 uploaded" in result.stdout
    for rel, data in tree.items():
        key = f"pre/{rel}"
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert body == data, key
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ChecksumCRC64NVME"] == crc64(data), key
        assert head["Metadata"]["source"].startswith("s3stow/")
        assert "uploaded-at" in head["Metadata"]
        assert "mtime" in head["Metadata"]
    big = s3.head_object(Bucket=bucket, Key="pre/big.bin", ChecksumMode="ENABLED")
    assert big["ChecksumType"] == "FULL_OBJECT"
    assert big["ETag"].endswith('-3"')  # 8 + 8 + 7 MiB
    assert s3.head_object(Bucket=bucket, Key="pre/dir/b.json")["ContentType"] == "application/json"
    assert all(status == "done" for _, status, _ in ledger_rows(tmp_path / "l.db"))
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


@pytest.mark.engines
def test_rerun_sends_no_write_and_edit_uploads_only_that_file(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path,
) -> None:
    make_tree(tmp_path / "src", {f"d{i % 3}/f{i}.txt": 100 + i for i in range(30)})
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert proxied_cli(*args).code == 0
    assert len(proxy.requests(WRITES)) == 30
    proxy.log.clear()
    again = proxied_cli(*args)
    assert again.code == 0
    assert "0 uploaded, 30 skipped" in again.stdout
    assert proxy.requests(WRITES) == []
    assert proxy.log == []  # the ledger settles everything: not even a bucket check
    edited = tmp_path / "src/d1/f4.txt"
    edited.write_bytes(b"new content")
    os.utime(edited, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    proxy.log.clear()
    third = proxied_cli(*args)
    assert third.code == 0
    assert [r.split("?")[0] for r in proxy.requests(WRITES)] == [f"PUT /{bucket}/p/d1/f4.txt"]
    assert s3.get_object(Bucket=bucket, Key="p/d1/f4.txt")["Body"].read() == b"new content"


def test_objects_from_another_tool_are_recognised_by_listing(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path,
) -> None:
    tree = make_tree(tmp_path / "src", {f"f{i}.bin": 1000 + i for i in range(10)})
    for rel, data in tree.items():  # uploaded by "another tool": plain put, no metadata
        s3.put_object(Bucket=bucket, Key=f"p/{rel}", Body=data)
    s3.put_object(Bucket=bucket, Key="p/f3.bin", Body=b"x" * 1003)  # same size, other bytes
    result = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert result.code == 0, result.output
    assert len(proxy.requests(r"^GET /[^?]*\?.*list-type=2")) == 1
    assert [r.split("?")[0] for r in proxy.requests(WRITES)] == [f"PUT /{bucket}/p/f3.bin"]
    assert s3.get_object(Bucket=bucket, Key="p/f3.bin")["Body"].read() == tree["f3.bin"]
    assert len(ledger_rows(tmp_path / "l.db")) == 10  # recognised objects are recorded done


def test_dry_run_sends_no_write(proxied_cli, proxy, s3, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 5, "b/c.txt": 7, "big.bin": 17 * MiB})
    result = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--dry-run")
    assert result.code == 0, result.output
    assert proxy.requests(WRITES) == []
    assert "3 files would be uploaded" in result.stdout
    assert f"s3://{bucket}/p/b/c.txt" in result.stdout
    assert objects(s3, bucket) == {}


def test_limit_uploads_at_most_n(cli, s3, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(8)})
    result = cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--limit", "3")
    assert result.code == 0, result.output
    assert len(objects(s3, bucket)) == 3
    # the rest is left for the next run, not "skipped"
    assert "3 uploaded, 0 skipped, 0 failed, 5 not started (limit) of 8 files" in result.stdout
    data = cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--limit", "2", "--json")
    summary = json.loads(data.stdout.splitlines()[-1])
    assert (summary["uploaded"], summary["skipped"], summary["not_started"]) == (2, 3, 3)


def test_json_output_and_failures_file(cli, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"ok.txt": 10})
    deep = tmp_path / "src" / "/".join(c * 220 for c in "vwxy")
    deep.mkdir(parents=True)
    (deep / ("z" * 220)).write_bytes(b"1")  # key of 5 x 220 bytes > 1024
    result = cli(
        "--json",
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--failures-file",
        "fail.jsonl",
    )
    assert result.code == 1
    events = [json.loads(line) for line in result.stdout.splitlines()]
    summary = events[-1]
    assert summary["event"] == "summary"
    assert (summary["uploaded"], summary["failed"]) == (1, 1)
    failures = [json.loads(x) for x in (tmp_path / "fail.jsonl").read_text().splitlines()]
    assert failures[0]["error_class"] == "UnsafeKey"
    assert "1024" in failures[0]["error"]


def test_sha256_metadata_and_extra_attributes(cli, s3, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    tree = make_tree(tmp_path / "src", {"a.xml": 100, "b.bin": 18 * MiB})
    result = cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--sha256-metadata",
        "--metadata",
        "team=data",
        "--content-type",
        "application/x-test",
        "--storage-class",
        "STANDARD_IA",
        "--sse",
        "AES256",
    )
    assert result.code == 0, result.output
    for rel, data in tree.items():
        head = s3.head_object(Bucket=bucket, Key=f"p/{rel}")
        assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert head["Metadata"]["team"] == "data"
        assert head["ContentType"] == "application/x-test"
        assert head["StorageClass"] == "STANDARD_IA"
        assert head["ServerSideEncryption"] == "AES256"


def test_other_checksum_algorithms(cli, s3, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import zlib

    tree = make_tree(tmp_path / "src", {"small.bin": 3000, "large.bin": 17 * MiB})
    for algorithm in ("crc32", "crc32c", "sha256", "none"):
        result = cli(
            "upload",
            "src",
            f"s3://{bucket}/{algorithm}",
            "--ledger",
            "l.db",
            "--checksum",
            algorithm,
        )
        assert result.code == 0, (algorithm, result.output)
        for rel, data in tree.items():
            body = s3.get_object(Bucket=bucket, Key=f"{algorithm}/{rel}")["Body"].read()
            assert body == data
    head = s3.head_object(Bucket=bucket, Key="crc32/large.bin", ChecksumMode="ENABLED")
    expected = base64.b64encode(zlib.crc32(tree["large.bin"]).to_bytes(4, "big")).decode()
    assert head["ChecksumCRC32"] == expected


def test_no_clobber_keeps_existing_objects(cli, s3, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 10, "b.txt": 10})
    s3.put_object(Bucket=bucket, Key="p/a.txt", Body=b"original!")
    result = cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--no-clobber")
    assert result.code == 0, result.output
    assert s3.get_object(Bucket=bucket, Key="p/a.txt")["Body"].read() == b"original!"
    assert "p/b.txt" in objects(s3, bucket)


def test_no_clobber_names_the_files_it_kept_out(cli, s3, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A file ``--no-clobber`` did not upload (another object has its key, its bytes are
    not in S3) is counted by its reason and named with ``-v``: it was a bare "1
    skipped" with empty ``skip_reasons``, like a file already uploaded."""
    make_tree(tmp_path / "src", {"a.txt": 10, "b.txt": 10})
    s3.put_object(Bucket=bucket, Key="p/a.txt", Body=b"original!")
    args = ("upload", "src", f"s3://{bucket}/p", "--no-clobber")
    result = cli("--json", *args, "--ledger", "l.db")
    assert result.code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert (summary["uploaded"], summary["skipped"]) == (1, 1)
    assert summary["skip_reasons"] == {"no-clobber": 1}
    human = cli(*args, "--ledger", "l2.db", "-v")
    assert "skipped: 2 no-clobber" in human.output, human.output
    assert "a.txt: s3://" in human.output
    assert "exists (--no-clobber)" in human.output


def test_force_reuploads(proxied_cli, proxy, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 10, "b.txt": 10})
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert proxied_cli(*args).code == 0
    proxy.log.clear()
    assert proxied_cli(*args, "--force").code == 0
    assert len(proxy.requests(WRITES)) == 2


def test_single_file_source(cli, s3, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path, {"one.txt": 42})
    result = cli("upload", "one.txt", f"s3://{bucket}/x/", "--ledger", "l.db")
    assert result.code == 0, result.output
    assert objects(s3, bucket) == {"x/one.txt": 42}


def test_a_dry_run_creates_no_ledger(cli, s3, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``--dry-run`` writes nothing, "not even the ledger": an upload's or a restore's dry
    run with a ledger that does not exist yet created it (an empty database, mode
    0600). ``restore --run`` needs an existing one (it created one to say the run was
    not in it)."""
    make_tree(tmp_path / "src", {"a.txt": 10})
    s3.put_object(Bucket=bucket, Key="p/a.txt", Body=b"x" * 10)
    upload = cli("upload", "src", f"s3://{bucket}/q", "--ledger", "l.db", "--dry-run")
    assert upload.code == 0, upload.output
    assert "would be uploaded" in upload.output
    restore = cli("restore", f"s3://{bucket}/p", "back", "--ledger", "l.db", "--dry-run")
    assert restore.code == 0, restore.output
    assert "would be restored" in restore.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    by_run = cli("restore", "--run", "20250101T000000Z-abcdef", "back", "--ledger", "l.db")
    assert by_run.code == 2
    assert "no ledger at l.db" in by_run.stderr
    assert not (tmp_path / "l.db").exists()
