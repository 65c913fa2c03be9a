"""Files dated past 2262: what a signed 64-bit count of nanoseconds cannot hold.

A file's modification time can lie beyond 2262-04-11 (a clock gone wrong, ``touch -d
2400-01-01``); the ledger's integer columns cannot hold it in nanoseconds. Such a file
uploads, is recorded at the end the column holds, and a re-run skips it: on a plain
upload, in parts, and through a PostgreSQL job (split in parts too).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import psycopg

from tests.conftest import ledger_rows

MiB = 1024 * 1024
FAR_NS = 13_569_465_600 * 10**9  # 2400-01-01T00:00:00Z
HELD = 2**63 - 1  # the latest time the ledger's BIGINT columns hold


def _far_tree(root: Path) -> dict[str, bytes]:
    files = {"far.txt": b"far away", "near.txt": b"near", "big.bin": os.urandom(11 * MiB)}
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)
    for name in ("far.txt", "big.bin"):
        os.utime(root / name, ns=(FAR_NS, FAR_NS))
    assert os.stat(root / "far.txt").st_mtime_ns == FAR_NS  # the file system holds it
    return files


def test_a_file_dated_past_2262_uploads_is_recorded_and_skipped_next_time(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    files = _far_tree(tmp_path / "src")
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    first = cli(*args, "--multipart-threshold", "5MiB", "--part-size", "5MiB")
    assert first.code == 0, first.output
    assert "OverflowError" not in first.output
    for name, data in files.items():
        assert s3.get_object(Bucket=bucket, Key=f"p/{name}")["Body"].read() == data
    recorded = ledger_rows(tmp_path / "l.db", "SELECT key, status, mtime_ns FROM items")
    assert sorted(recorded) == sorted(
        [
            ("p/big.bin", "done", HELD),
            ("p/far.txt", "done", HELD),
            ("p/near.txt", "done", os.stat(tmp_path / "src" / "near.txt").st_mtime_ns),
        ]
    )
    again = cli("--json", *args)
    assert again.code == 0, again.output
    assert '"uploaded": 0' in again.stdout, again.stdout
    assert '"skipped": 3' in again.stdout, again.stdout


def test_a_job_with_a_file_dated_past_2262_plans_works_and_splits(
    cli, s3, bucket, postgres_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    files = _far_tree(tmp_path / "src")
    job = f"far-{uuid.uuid4().hex[:8]}"
    plan = ("job", "plan", "src", f"s3://{bucket}/p", "--job", job, "--ledger", postgres_url)
    planned = cli(*plan, "--split-above", "8MiB", env={"S3STOW_PART_SIZE": "5MiB"})
    assert planned.code == 0, planned.output
    work = cli("job", "work", "--job", job, "--ledger", postgres_url)
    assert work.code == 0, work.output
    assert "OverflowError" not in work.output
    for name, data in files.items():
        assert s3.get_object(Bucket=bucket, Key=f"p/{name}")["Body"].read() == data
    with psycopg.connect(postgres_url) as conn:
        states = conn.execute(
            "SELECT key, state, mtime_ns FROM job_items WHERE job = %s ORDER BY key", (job,)
        ).fetchall()
    assert [(key, state) for key, state, _ in states] == [
        ("p/big.bin", "done"),
        ("p/far.txt", "done"),
        ("p/near.txt", "done"),
    ]
    assert {key: ns for key, _, ns in states}["p/far.txt"] == HELD
    replanned = cli(*plan, "--split-above", "8MiB", env={"S3STOW_PART_SIZE": "5MiB"})
    assert replanned.code == 0, replanned.output
    assert "0 to do" in replanned.output or "nothing to do" in replanned.output, replanned.output
