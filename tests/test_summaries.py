"""The human summaries read as sentences: a count agrees in number with its noun ("1
file", "2 files"), through ``units.plural``, in every command's summary."""

from __future__ import annotations

from pathlib import Path

from s3stow.units import plural
from tests.conftest import make_tree


def test_plural_agrees_with_the_count() -> None:
    assert plural(1, "file") == "1 file"
    assert plural(0, "file") == "0 files"
    assert plural(1234, "object") == "1,234 objects"
    assert plural(2, "transient error") == "2 transient errors"
    assert plural(2, "match", many="matches") == "2 matches"


def test_one_file_is_one_file_in_the_summaries(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An upload and a restore of one file said "of 1 files", "of 1 objects", and a dry
    run "1 file(s) would be uploaded"."""
    make_tree(tmp_path / "src", {"a.txt": 3, "b.log": 2})
    dest = f"s3://{bucket}/p"
    planned = cli("upload", "src", dest, "--include", "*.txt", "--dry-run")
    assert planned.code == 0, planned.output
    assert "dry run: 1 file would be uploaded" in planned.stdout
    assert "1 file not selected by --include/--exclude" in planned.stdout
    up = cli("upload", "src", dest, "--include", "*.txt", "--ledger", "l.db")
    assert up.code == 0, up.output
    assert "1 uploaded, 0 skipped, 0 failed of 1 file (3 B)" in up.stdout
    both = cli("upload", "src", dest, "--ledger", "l.db")
    assert "1 uploaded, 1 skipped, 0 failed of 2 files" in both.stdout
    planned = cli("restore", f"{dest}/a.txt", "out", "--dry-run", "--ledger", "l.db")
    assert "dry run: 1 object would be restored" in planned.stdout, planned.output
    back = cli("restore", dest, "out", "--include", "*.txt", "--ledger", "l.db")
    assert back.code == 0, back.output
    assert "1 restored, 0 skipped, 0 failed of 1 object;" in back.stdout
    assert "1 object not selected by --include/--exclude" in back.stdout
    for result in (planned, up, both, back):
        assert "(s)" not in result.stdout
        assert "of 1 files" not in result.stdout
        assert "of 1 objects" not in result.stdout
