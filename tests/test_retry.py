"""``s3stow retry``: from the ledger, from a failures file, from an aws s3 log."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.conftest import make_tree

LOG = Path(__file__).parent / "data" / "aws-s3-sync-errors.log"
FAST = {"S3STOW_RETRY_BASE_DELAY": "0.01", "S3STOW_MAX_ATTEMPTS": "1", "S3STOW_FILE_RETRIES": "0"}


def _keys(s3, bucket: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


@pytest.mark.engines
def test_retry_from_ledger_completes_only_the_failures(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {f"f{i}.txt": 20 for i in range(8)})
    proxy.add(r"^PUT /[^/]+/p/f(2|5)\.txt", "status", times=100, status=503, code="SlowDown")
    first = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env=FAST)
    assert first.code == 1
    listing = proxied_cli("retry", "--ledger", "l.db", "--list")
    assert listing.code == 0
    assert "throttling" in listing.stdout
    assert "SlowDown" in listing.stdout
    still = proxied_cli("retry", "--ledger", "l.db", env=FAST)  # fault still there
    assert still.code == 1
    proxy.reset()
    result = proxied_cli("retry", "--ledger", "l.db", "--max-attempts", "3")
    assert result.code == 0, result.output
    assert "2 item(s) retried, 2 now done" in result.stdout
    assert sorted(r.split("?")[0] for r in proxy.requests(r"^PUT ")) == [
        f"PUT /{bucket}/p/f2.txt",
        f"PUT /{bucket}/p/f5.txt",
    ]
    assert _keys(s3, bucket) == {f"p/f{i}.txt" for i in range(8)}
    with sqlite3.connect(tmp_path / "l.db") as db:
        attempts = dict(db.execute("SELECT key, attempts FROM items"))
        history = db.execute("SELECT COUNT(*) FROM attempts WHERE key = 'p/f2.txt'").fetchone()
    assert attempts["p/f2.txt"] == 3  # upload + failed retry + successful retry
    assert history == (2,)  # both failures stay visible
    again = proxied_cli("retry", "--ledger", "l.db")
    assert again.code == 0
    assert "nothing to retry" in again.stdout


def _layout(tmp_path: Path, bucket: str) -> tuple[Path, Path]:
    make_tree(tmp_path / "astro", {"m31/andromeda 01.jpg": 300, "m42/orion.fits": 400})
    make_tree(tmp_path / "project", {"notes/log.txt": 50, "notes/extra.txt": 60})
    log = tmp_path / "errors.log"
    log.write_text(LOG.read_text().replace("BUCKET", bucket))
    return log, tmp_path / "project"


def test_retry_from_aws_log(proxied_cli, proxy, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, base = _layout(tmp_path, bucket)
    result = proxied_cli(
        "retry",
        "--from",
        str(log),
        "--base-dir",
        str(base),
        "--strip-prefix",
        "../astro/",
        "--prefix",
        "restored",
        "--ledger",
        "l.db",
    )
    assert result.code == 1  # the missing file is still failed
    assert "read 5 failed upload(s)" in result.stdout
    assert "1 line(s) could not be parsed" in result.stdout
    assert "fatal error: An error occurred (AccessDenied)" in result.stdout
    assert "does not exist" in result.stdout
    assert "--base-dir" in result.stdout
    assert "missing.jpg" in result.stdout
    assert _keys(s3, bucket) == {
        "restored/m31/andromeda 01.jpg",
        "restored/m42/orion.fits",
        "restored/notes/log.txt",
        "restored/notes/extra.txt",
    }


def test_retry_refuses_keys_that_stay_unsafe(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    log, base = _layout(tmp_path, bucket)
    result = proxied_cli(
        "--json", "retry", "--from", str(log), "--base-dir", str(base), "--ledger", "l.db"
    )
    assert result.code == 1
    summary = json.loads(result.stdout.splitlines()[-1])
    classes = sorted(f["error_class"] for f in summary["failures"])
    assert classes == ["UnsafeKey", "UnsafeKey", "UnsafeKey"]
    assert _keys(s3, bucket) == {"notes/log.txt", "notes/extra.txt"}


def test_retry_dry_run_sends_no_write(proxied_cli, proxy, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, base = _layout(tmp_path, bucket)
    result = proxied_cli(
        "retry",
        "--from",
        str(log),
        "--base-dir",
        str(base),
        "--strip-prefix",
        "../astro/",
        "--dry-run",
        "--ledger",
        "l.db",
    )
    assert "4 file(s) would be uploaded" in result.stdout
    assert f"s3://{bucket}/m31/andromeda 01.jpg" in result.stdout
    assert proxy.requests(r"^(PUT|POST) ") == []


def test_retry_from_failures_file(proxied_cli, proxy, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 10, "b.txt": 10})
    proxy.add(r"^PUT /[^/]+/p/b\.txt", "status", times=100, status=500, code="InternalError")
    first = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--failures-file",
        "fail.jsonl",
        env=FAST,
    )
    assert first.code == 1
    proxy.reset()
    result = proxied_cli("retry", "--from", "fail.jsonl", "--ledger", "other.db")
    assert result.code == 0, result.output
    assert [r.split("?")[0] for r in proxy.requests(r"^PUT ")] == [f"PUT /{bucket}/p/b.txt"]


def test_retry_missing_log_exits_2(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("retry", "--from", "nope.log", "--ledger", "l.db")
    assert result.code == 2
    assert "does not exist" in result.stderr
