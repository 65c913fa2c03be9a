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


def test_a_file_name_cannot_write_to_the_terminal(cli: Any, bucket: str, tmp_path: Path) -> None:
    """A control character of a file name (ESC, newline) is printed escaped: the name
    of a refused file cannot recolour the terminal or split its line in two."""
    make_tree(tmp_path / "src", {"esc\x1b[2Jx.txt": 3, "nl\nx.txt": 3, "ok.txt": 3})
    quiet = cli("-q", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    loud = cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert (quiet.code, loud.code) == (1, 1)
    for output in (quiet.stderr, loud.output):
        assert "\x1b" not in output, output
        assert "nl\nx" not in output, output
        assert "esc\\x1b[2Jx.txt" in output, output
        assert "nl\\nx.txt" in output, output
    assert len(quiet.stderr.splitlines()) == 2


def test_a_key_cannot_write_to_the_terminal(cli: Any, s3: Any, bucket: str) -> None:
    """Keys come from whoever writes the bucket: a restore prints them escaped."""
    s3.put_object(Bucket=bucket, Key="h/esc\x1b]0;title\x07x.txt", Body=b"abc")
    dry = cli("restore", f"s3://{bucket}/h", "back", "--ledger", "l.db", "--dry-run")
    assert dry.code == 0, dry.output
    assert "\x1b" not in dry.output, dry.output
    assert "\x07" not in dry.output, dry.output
    assert "esc\\x1b]0;title\\x07x.txt" in dry.output
