"""``s3stow restore`` given odd input: each mistake said (what, and what to do), with
its documented exit code, no traceback, and nothing written where it was not asked."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import make_tree


def test_an_empty_destination_is_refused_not_the_current_folder(
    cli, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``restore s3://b/p ""`` (a shell variable left unset) restored into the current
    folder, exit 0: with --overwrite it would have replaced files there."""
    make_tree(tmp_path / "src", {"a.txt": 3, "d/b.txt": 4})
    up = cli("--json", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert up.code == 0, up.output
    run = json.loads(up.stdout.splitlines()[-1])["run_id"]
    for args in ((f"s3://{bucket}/p", ""), ("--run", run, ""), (f"s3://{bucket}/p", "  ")):
        for flags in ((), ("--json",), ("--overwrite",)):
            result = cli("restore", *args, *flags, "--ledger", "l.db")
            assert result.code == 2, (args, flags, result.output)
            assert "the destination folder is empty" in result.stderr
            assert "name the folder to restore into" in result.stderr
            assert "Traceback" not in result.output
            assert not (tmp_path / "a.txt").exists()
            assert not (tmp_path / "d").exists()


def test_a_missing_bucket_is_not_to_be_created_for_a_restore(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A restore from a bucket that does not exist said "create it with `s3stow bucket
    setup`": an empty new bucket restores nothing; the name, region or endpoint is what
    to check."""
    for flags in ((), ("--json",)):
        result = cli(*flags, "restore", "s3://no-such-bucket-s3stow/p", "out", "--ledger", "l.db")
        assert result.code == 3, result.output
        assert "bucket 'no-such-bucket-s3stow' does not exist" in result.stderr
        assert "bucket setup" not in result.output
        assert "a restore creates no bucket" in result.stderr
        assert "Traceback" not in result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert "a restore creates no bucket" in summary["fatal"]
    make_tree(tmp_path / "src", {"a.txt": 3})
    upload = cli("upload", "src", "s3://no-such-bucket-s3stow/p")  # an upload's hint is kept
    assert upload.code == 3
    assert "bucket setup no-such-bucket-s3stow" in upload.stderr


def test_glacier_options_without_their_switch_are_refused(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``--days`` and ``--tier`` without ``--request-restore``, ``--poll-interval``
    without ``--wait``, were silently ignored (exit 0): the user believed the copies
    would last N days, or the requests go in the Bulk tier."""
    make_tree(tmp_path / "src", {"a.txt": 3})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    cases = {
        ("--days", "3"): "add --request-restore",
        ("--tier", "Bulk"): "add --request-restore",
        ("--days", "3", "--tier", "Bulk", "--wait"): "drop --days and --tier",
        ("--poll-interval", "5"): "add --wait",
        ("--request-restore", "--poll-interval", "5"): "drop --poll-interval",
    }
    for flags, hint in cases.items():
        for command in (
            ("restore", f"s3://{bucket}/p", "out"),
            ("archive", "restore", "--db", "none.db", "--media-root", "out"),
        ):
            result = cli(*command, *flags, "--ledger", "l.db")
            assert result.code == 2, (command, flags, result.output)
            assert "nothing would use" in result.stderr, result.stderr
            assert hint in result.stderr, (flags, result.stderr)
            assert "Traceback" not in result.output
            assert not (tmp_path / "out").exists()
    fine = ("--request-restore", "--days", "3", "--tier", "bulk", "--wait", "--poll-interval", "5")
    result = cli("restore", f"s3://{bucket}/p", "out", *fine, "--ledger", "l.db")
    assert result.code == 0, result.output
    assert (tmp_path / "out" / "a.txt").read_bytes() == (tmp_path / "src" / "a.txt").read_bytes()


def test_restore_run_from_another_bucket_says_which_to_give(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``restore --run RUN s3://other/p`` said only which bucket the run uploaded to."""
    make_tree(tmp_path / "src", {"a.txt": 3})
    up = cli("--json", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    run = json.loads(up.stdout.splitlines()[-1])["run_id"]
    result = cli("restore", "--run", run, "s3://some-other-bucket/p", "out", "--ledger", "l.db")
    assert result.code == 2, result.output
    assert f"uploaded to bucket {bucket!r}, not 'some-other-bucket'" in result.stderr
    assert f"give s3://{bucket}/PREFIX as the source, or leave the source out" in result.stderr


def test_a_status_or_failures_file_that_cannot_be_written_is_a_usage_error(
    cli, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``--failures-file`` or ``--status-json`` naming a folder, or a path below a file,
    was "unexpected FileExistsError ... please report it", exit 3 (a restore's and an
    upload's alike)."""
    make_tree(tmp_path / "src", {"a.txt": 3})
    (tmp_path / "plain").write_text("a file")
    (tmp_path / "folder").mkdir()
    cases = {
        ("--failures-file", "plain/f.jsonl"): "failures file plain/f.jsonl: plain is a file",
        ("--failures-file", "folder"): "failures file folder: it is a folder",
        ("--status-json", "plain/st.json"): "status file plain/st.json: plain is a file",
        ("--status-json", "folder"): "status file folder: it is a folder",
    }
    for flags, said in cases.items():
        for command in (
            ("restore", f"s3://{bucket}/p", "out"),
            ("upload", "src", f"s3://{bucket}/p"),
        ):
            result = cli(*command, *flags, "--ledger", "l.db")
            assert result.code == 2, (command, flags, result.output)
            assert f"cannot write the {said}" in result.stderr, result.stderr
            assert "unexpected" not in result.output
            assert not (tmp_path / "out").exists()
    assert cli("restore", f"s3://{bucket}/p", "out", "--status-json", "new/st.json").code == 0
    assert (tmp_path / "new" / "st.json").is_file()  # a missing folder is created


def test_a_dangling_symlink_as_destination_says_so(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A DEST that is a symbolic link to nothing said "cannot create DEST: File exists"."""
    (tmp_path / "dest").symlink_to(tmp_path / "gone")
    result = cli("restore", f"s3://{bucket}/p", "dest", "--ledger", "l.db")
    assert result.code == 2, result.output
    assert f"dest is a symbolic link to {tmp_path / 'gone'}, which does not exist" in (
        result.stderr
    )
    assert "create the folder it points to" in result.stderr


def test_one_file_given_as_ledger_and_status_or_failures_file_is_refused(
    cli, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``--status-json`` (or ``--failures-file``) naming the ledger's file replaced the
    ledger with a JSON file, exit 0; the next command said "database disk image is
    malformed". The status file and the failures file given one path lost the failures."""
    make_tree(tmp_path / "src", {"a.txt": 3})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    restore = ("restore", f"s3://{bucket}/p", "out", "--ledger", "l.db")
    cases = [
        (restore, ("--status-json", "./l.db"), {}, "the ledger (option --ledger) and the status"),
        (restore, (), {"S3STOW_FAILURES_FILE": "l.db"}, "environment variable S3STOW_FAILURES"),
        (
            ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db"),
            ("--status-json", "s.json", "--failures-file", "s.json"),
            {},
            "the status file (option --status-json) and the failures file",
        ),
    ]
    for command, flags, env, said in cases:
        result = cli(*command, *flags, env=env)
        assert result.code == 2, (flags, env, result.output)
        assert said in result.stderr, result.stderr
        assert "writing one would destroy the other" in result.stderr
        assert "give the ledger, --status-json and --failures-file a file each" in result.stderr
    stats = cli("--json", "stats", "--ledger", "l.db")
    assert stats.code == 0, stats.output  # the ledger is whole
    assert json.loads(stats.stdout)["overall"]["done"] == 1
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "s.json").exists()


def test_archive_restore_with_an_empty_media_root_writes_nothing(
    cli, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``archive restore --media-root ""`` rebuilt the media files in the current folder
    (``Path("")`` is ``.``), as ``restore`` did with an empty DEST."""
    from s3stow.archive.demo import init_demo

    db, root = tmp_path / "demo.db", tmp_path / "media"
    init_demo(db, root)
    args = ("--db", str(db), "--ledger", "l.db")
    assert cli("archive", "run", f"s3://{bucket}", *args, "--media-root", str(root)).code == 1
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli("archive", "restore", *args, "--media-root", "")
    assert result.code == 2, result.output
    assert "--media-root is empty" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_a_restore_that_writes_nothing_leaves_no_folder_it_created(
    cli, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A restore from a missing bucket (or with a refused pattern, or from an empty
    prefix) left behind the empty DEST it created, and its parents: the folders it
    created are removed when still empty; a folder that was there before is kept."""
    (tmp_path / "kept").mkdir()
    runs = {
        ("s3://no-such-bucket-s3stow/p", "new/deep"): 3,
        ("s3://no-such-bucket-s3stow/p", "kept/deep/er"): 3,
        (f"s3://{bucket}/p", "new/deep", "--include", "["): 2,
        (f"s3://{bucket}/nothing-here", "new/deep"): 0,
    }
    for args, code in runs.items():
        result = cli("restore", *args, "--ledger", "l.db")
        assert result.code == code, (args, result.output)
        assert not (tmp_path / "new").exists(), args
        assert list((tmp_path / "kept").iterdir()) == [], args
    result = cli("restore", "s3://no-such-bucket-s3stow/p", "kept", "--ledger", "l.db")
    assert result.code == 3
    assert (tmp_path / "kept").is_dir()  # there before the run: never removed
    make_tree(tmp_path / "src", {"a.txt": 3})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    assert cli("restore", f"s3://{bucket}/p", "new/deep", "--ledger", "l.db").code == 0
    assert (tmp_path / "new" / "deep" / "a.txt").read_bytes() == (
        tmp_path / "src" / "a.txt"
    ).read_bytes()


def test_a_destination_this_user_cannot_write_is_refused_before_any_object(
    cli, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A read-only DEST (permissions, a read-only file system) failed every object alike,
    one "Read-only file system" or "Permission denied" per object, exit 1, each recorded
    failed: it is refused at once (exit 2), naming the folder."""
    make_tree(tmp_path / "src", {"a.txt": 3, "d/b.txt": 4})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        if os.access(locked, os.W_OK):  # root (as root: setpriv --bounding-set=-dac_override)
            pytest.skip("this user writes in a read-only folder")
        result = cli("restore", f"s3://{bucket}/p", "locked", "--ledger", "l.db")
        assert result.code == 2, result.output
        assert "cannot write in locked: permission denied" in result.stderr
        assert "restore into a folder this user can write" in result.stderr
        assert "Traceback" not in result.output
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []
