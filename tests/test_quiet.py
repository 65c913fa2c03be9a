"""``-q/--quiet``: nothing at all on success; failures (and errors) still printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import make_tree

FAST = {"S3STOW_RETRY_BASE_DELAY": "0.01", "S3STOW_MAX_ATTEMPTS": "2", "S3STOW_FILE_RETRIES": "0"}


def test_quiet_success_prints_nothing(cli: Any, bucket: str, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"a.txt": 10, "d/b.bin": 6 * 1024 * 1024})
    runs = [
        ("-q", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--part-size", "5MiB"),
        ("--quiet", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db"),  # all skipped
        ("-q", "restore", f"s3://{bucket}/p", "back", "--ledger", "l.db"),
        ("-q", "watch", "src", f"s3://{bucket}/w", "--once", "--settle", "0", "--ledger", "l.db"),
    ]
    for args in runs:
        result = cli(*args)
        assert (result.code, result.stdout, result.stderr) == (0, "", ""), args
    assert (tmp_path / "back" / "d" / "b.bin").read_bytes() == (
        tmp_path / "src/d/b.bin"
    ).read_bytes()
    # without -q the same command reports
    loud = cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert "2 skipped" in loud.stdout


def test_quiet_failure_prints_the_failure_only(
    proxied_cli: Any, proxy: Any, bucket: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(4)})
    proxy.add(r"^PUT /[^/]+/p/f2\.txt", "status", times=100, status=500, code="InternalError")
    result = proxied_cli("-q", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env=FAST)
    assert result.code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("failed: ")
    assert "f2.txt: [InternalError]" in lines[0]
    # an error (not a per-file failure) is printed too, with its exit code
    missing = proxied_cli("-q", "upload", "nowhere", f"s3://{bucket}/p", "--ledger", "l.db")
    assert missing.code == 2
    assert missing.stdout == ""
    assert "error:" in missing.stderr
