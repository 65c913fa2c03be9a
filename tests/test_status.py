"""The --status-json heartbeat: schema, atomic replacement, and `s3stow status`."""

from __future__ import annotations

import json
import os
from pathlib import Path

from s3stow.localfiles import atomic_write_text
from tests.conftest import ledger_rows, make_tree


def test_a_file_failed_before_planning_counts_in_the_files(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A name that is not UTF-8 fails at discovery, before it has a key: the status
    file counts it in ``totals.files`` as the summary does (it was in ``failed``
    only: 1 file, 1 uploaded, 1 failed; ``s3stow status`` said "1 total, ... 1 failed")."""
    make_tree(tmp_path / "src", {"ok.txt": 3})
    (tmp_path / "src").joinpath(os.fsdecode(b"bad\xff.txt")).write_bytes(b"x")
    result = cli("--json", "upload", "src", f"s3://{bucket}/p", "--status-json", "st.json")
    assert result.code == 1, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    totals = json.loads((tmp_path / "st.json").read_text())["totals"]
    assert (totals["files"], totals["uploaded"], totals["failed"]) == (2, 1, 1)
    assert totals["files"] == summary["files"]


def test_status_json_schema(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {f"f{i}.txt": 100 for i in range(5)})
    result = cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--status-json",
        "st.json",
        "--status-interval",
        "0.1",
    )
    assert result.code == 0, result.output
    status = json.loads((tmp_path / "st.json").read_text())
    for key in (
        "started_at",
        "phase",
        "current_file",
        "current_file_bytes",
        "current_file_size",
        "totals",
        "folders",
        "last_update",
    ):
        assert key in status, key
    assert status["phase"] == "done"
    assert status["totals"] == {
        "files": 5,
        "uploaded": 5,
        "skipped": 0,
        "failed": 0,
        "not_started": 0,
        "bytes_uploaded": 500,
        "unfinished": 0,
    }
    group = status["folders"]["(root)"]
    assert group["planned_files"] == 5
    assert group["uploaded"] == 5
    assert group["completed_at"] >= group["started_at"]
    again = cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--status-json", "st.json")
    assert again.code == 0
    assert json.loads((tmp_path / "st.json").read_text())["totals"]["skipped"] == 5
    shown = cli("status", "st.json")
    assert shown.code == 0
    assert "5 skipped" in shown.stdout
    assert cli("status", "missing.json").code == 2


def test_files_left_by_limit_are_counted_not_started(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The summary has ``not_started`` (``--limit``); the status file had no such
    counter, so its totals did not add up to its files (upload and restore alike)."""
    from s3stow.report.statushtml import render_main

    make_tree(tmp_path / "src", {f"d/f{i}.txt": 10 for i in range(5)})
    args = ("--json", "upload", "src", f"s3://{bucket}/p", "--limit", "2")
    result = cli(*args, "--status-json", "st.json")
    assert result.code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    status = json.loads((tmp_path / "st.json").read_text())
    assert summary["not_started"] == 3
    assert (status["totals"]["uploaded"], status["totals"]["not_started"]) == (2, 3)
    assert status["folders"]["d"]["not_started"] == 3
    shown = cli("status", "st.json")
    assert "3 not started (--limit)" in shown.stdout
    assert "not started (--limit)" in render_main(status, path=tmp_path / "st.json")
    back = cli("restore", f"s3://{bucket}/p", "out", "--limit", "1", "--status-json", "r.json")
    assert back.code == 0, back.output
    totals = json.loads((tmp_path / "r.json").read_text())["totals"]
    assert (totals["restored"], totals["not_started"]) == (1, 1)


def test_atomic_write_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "status.json"
    atomic_write_text(target, json.dumps({"a": 1}))
    atomic_write_text(target, json.dumps({"a": 2}))
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_a_restore_status_file_is_shown_as_a_restore(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A restore's status file names its counters as its ``--json`` summary and the
    ledger do (``restored``, ``bytes_restored``; it said ``uploaded``), and says it is
    a restore: ``s3stow status`` and the page say restored and received, never
    uploaded and sent."""
    from s3stow.report.statushtml import render_main

    make_tree(tmp_path / "src", {"a.txt": 10, "d/b.txt": 20})
    assert cli("upload", "src", f"s3://{bucket}/p", "--status-json", "up.json").code == 0
    result = cli("--json", "restore", f"s3://{bucket}/p", "out", "--status-json", "st.json")
    assert result.code == 0, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    status = json.loads((tmp_path / "st.json").read_text())
    assert status["command"] == "restore"
    assert status["totals"] == {
        "files": 2,
        "restored": 2,
        "skipped": 0,
        "failed": 0,
        "pending": 0,  # waiting for Glacier, as in the summary
        "not_started": 0,
        "bytes_restored": 30,
        "unfinished": 0,
    }
    assert (summary["restored"], summary["bytes_restored"]) == (2, 30)
    for name, group in summary["groups"].items():  # the same names, group by group
        assert (group["restored"], group["bytes_restored"]) == (
            status["folders"][name]["restored"],
            status["folders"][name]["bytes_restored"],
        )
    assert "would_upload" not in summary
    shown = cli("status", "st.json")
    assert shown.code == 0, shown.output
    assert "2 restored" in shown.stdout
    assert "30 B received" in shown.stdout
    assert "restored" in shown.stdout.splitlines()[2]  # the groups' column
    assert "uploaded" not in shown.stdout
    assert " sent" not in shown.stdout
    html = render_main(status, path=tmp_path / "st.json")
    assert "s3stow restore: done" in html
    assert ">restored<" in html
    assert ">received<" in html
    assert ">uploaded<" not in html
    assert ">2/2<" in html  # files done: the restored ones count
    upload = json.loads((tmp_path / "up.json").read_text())
    assert (upload["command"], upload["totals"]["uploaded"]) == ("upload", 2)
    assert "2 uploaded" in cli("status", "up.json").stdout  # an upload's, as before


def test_a_file_that_is_not_a_status_file_is_a_usage_error(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """JSON of another shape (a list, no totals: another tool's file, a failures file's
    one line) was an "unexpected AttributeError ... please report it", exit 3; a folder
    said "[Errno 21]"; a time that is not a number was a ValueError."""
    (tmp_path / "list.json").write_text("[]")
    (tmp_path / "other.json").write_text('{"totals": 5}')
    (tmp_path / "line.json").write_text('{"path": "a", "status": "failed"}')
    for name in ("list.json", "other.json", "line.json"):
        for flags in ((), ("--json",)):
            shown = cli(*flags, "status", name)
            assert shown.code == 2, (name, flags, shown.output)
            assert f"{name} is not an s3stow status file" in shown.stderr
            assert "--status-json" in shown.stderr  # what to pass instead
            assert "unexpected" not in shown.output
    folder = cli("status", ".")
    assert folder.code == 2
    assert "is a folder" in folder.stderr
    empty = cli("status", "")  # an unset variable: it said "status file . is a folder"
    assert empty.code == 2
    assert "the status file is empty ('')" in empty.stderr
    (tmp_path / "left.json").write_text(
        '{"phase": "interrupted", "totals": {"files": 9, "uploaded": 4, "unfinished": 5}}'
    )
    left = cli("status", "left.json")
    assert "5 left unfinished by the interrupt (the same command continues them)" in left.stdout
    (tmp_path / "odd.json").write_text('{"phase": "done", "last_update": "x", "totals": {}}')
    odd = cli("status", "odd.json")
    assert odd.code == 0, odd.output  # what it can show, it shows
    assert "files: 0 total" in odd.stdout


def test_an_upload_stopped_by_a_missing_bucket_is_failed_everywhere(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Exit 3, and the run said "done": the status file's phase, the ledger's row (the
    status page's recent runs) and ``fatal: null`` in the ``--json`` summary (a restore
    said "failed" and named the error)."""
    make_tree(tmp_path / "src", {"a.txt": 3})
    args = ("upload", "src", "s3://no-such-bucket-here/p", "--ledger", "l.db")
    result = cli("--json", *args, "--status-json", "st.json")
    assert result.code == 3, result.output
    summary = json.loads(result.stdout.splitlines()[-1])
    assert "no-such-bucket-here" in summary["fatal"]
    assert json.loads((tmp_path / "st.json").read_text())["phase"] == "failed"
    assert ledger_rows(tmp_path / "l.db", "SELECT status FROM runs") == [("failed",)]


def test_outputs_that_fail_mid_run_or_at_the_end_are_said_not_unexpected(
    tmp_path: Path, caplog
) -> None:  # type: ignore[no-untyped-def]
    """A full disk under --failures-file or --status-json: the failures file's first
    failed write, or the status file's last one, raised an OSError out of the run
    ("unexpected OSError ... please report it", exit 3, no summary). The failures file
    says once that it is incomplete and the run goes on; the status file's last write
    is an error line, and the summary is still printed."""
    import logging
    import shutil

    import pytest

    from s3stow.models import RunSummary, SourceFile, Status, UploadResult
    from s3stow.report.console import FailuresFile
    from s3stow.report.status import StatusHeartbeat

    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full: every write to it fails with ENOSPC")
    failures = FailuresFile(Path("/dev/full"))
    source = SourceFile(tmp_path / "a\nb.txt", "a\nb.txt", 1, 0, tmp_path)
    failed = UploadResult(source.path, "b", "k", Status.FAILED, error_class="InternalError")
    with caplog.at_level(logging.ERROR):
        failures.on_start("r", "s3://b/")
        failures.on_result(failed, source)
        failures.on_result(failed, source)  # said once
        failures.on_finish(RunSummary("r"))
    said = [r.getMessage() for r in caplog.records if "failures file" in r.getMessage()]
    assert len(said) == 1
    assert "No space left on device" in said[0]
    assert "a\\nb.txt on are not in it" in said[0]
    assert "s3stow retry --list" in said[0]
    caplog.clear()
    folder = tmp_path / "gone"
    folder.mkdir()
    status = StatusHeartbeat(folder / "st.json", interval=60)
    status.on_start("r", "s3://b/")
    shutil.rmtree(folder)
    folder.write_text("a file where the folder was: the last write fails")
    with caplog.at_level(logging.ERROR):
        status.on_finish(RunSummary("r"))
    assert any(
        f"cannot write the status file {folder / 'st.json'} at the end of the run" in r.getMessage()
        for r in caplog.records
    )


def test_a_status_file_whose_last_write_fails_is_said_last_and_exits_3(
    proxied_cli,  # type: ignore[no-untyped-def]
    proxy,
    s3,
    bucket,
    tmp_path: Path,
) -> None:
    """The status file's last write (the end of the run) failed with an error line among
    the others and exit 0: a user who watches the file saw the run "uploading" forever.
    Now the failure is the command's last line, naming the file and the OS error, and
    the exit is 3 (an output the user relies on was not written; the README's table);
    the upload itself is done and its summary printed."""
    import shutil
    import time

    written = make_tree(tmp_path / "src", {"a.txt": 10})
    out = tmp_path / "out"
    out.mkdir()
    held = proxy.add(r"^PUT /[^?]*/p/", "hold", times=100)  # the run stays busy meanwhile
    run = proxied_cli.start(
        "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--status-json", "out/st.json"
    )
    try:
        while not (out / "st.json").exists() or not proxy.requests(r"^PUT /[^?]*/p/"):
            assert run.poll() is None, run.communicate()
            time.sleep(0.05)
        shutil.rmtree(out)
        out.write_text("a file where the folder was: the last write fails")
    finally:
        held.release()
    stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 3, stderr
    assert "1 uploaded" in stdout  # the run's outcome, as ever
    assert s3.get_object(Bucket=bucket, Key="p/a.txt")["Body"].read() == written["a.txt"]
    last = stderr.strip().splitlines()[-1]
    assert f"cannot write the status file {Path('out') / 'st.json'}" in last, stderr
    assert "at the end of the run: File exists" in last  # the OS's words (mkdir's here)
    assert "exit 3" in last
    assert "Traceback" not in stderr


def test_a_final_write_failure_is_kept_until_a_later_write_succeeds(tmp_path: Path) -> None:
    """A job worker ends a batch per run: a failed end-of-batch write followed by one
    that succeeds leaves the file current, so nothing is said and the exit stays."""
    import shutil

    from s3stow.models import RunSummary
    from s3stow.report.status import StatusHeartbeat

    folder = tmp_path / "out"
    folder.mkdir()
    heartbeat = StatusHeartbeat(folder / "st.json", interval=0, log_final_failure=False)
    heartbeat.on_start("r", "s3://b/")
    shutil.rmtree(folder)
    folder.write_text("in the way")
    heartbeat.on_finish(RunSummary("r"))
    assert heartbeat.final_error is not None
    assert str(folder / "st.json") in heartbeat.final_error
    folder.unlink()
    folder.mkdir()
    heartbeat.on_finish(RunSummary("r2"))
    assert heartbeat.final_error is None
    assert json.loads((folder / "st.json").read_text())["phase"] == "done"
