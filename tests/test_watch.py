"""``s3stow watch``: rotated files uploaded once each, complete, to the right folder."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_tree

FAST = {"S3STOW_RETRY_BASE_DELAY": "0.01", "S3STOW_MAX_ATTEMPTS": "2", "S3STOW_FILE_RETRIES": "0"}


def _keys(s3: Any, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def _wait(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


@pytest.mark.engines
def test_backlog_once_to_date_folders_and_restart_uploads_nothing(
    proxied_cli,
    proxy,
    s3,  # type: ignore[no-untyped-def]
    bucket,
    tmp_path: Path,
) -> None:
    make_tree(
        tmp_path / "in",
        {
            "20250729_161500.xml": 50,
            "20250730_000100.xml": 60,
            "20250730_000200.xml.tmp": 10,
            "notes.txt": 5,
        },
    )
    args = (
        "watch",
        "in",
        f"s3://{bucket}/xml-events",
        "--layout",
        "date-folders",
        "--pattern",
        "*.xml",
        "--settle",
        "0",
        "--once",
        "--ledger",
        "l.db",
    )
    first = proxied_cli(*args)
    assert first.code == 0, first.output
    assert "watch: backlog 2 (oldest waiting" in first.stderr  # the terminal shows the backlog
    assert "watch: backlog 0, uploaded 2, failed 0" in first.stderr
    assert _keys(s3, bucket) == {
        "xml-events/2025/07/29/20250729_161500.xml",
        "xml-events/2025/07/30/20250730_000100.xml",
    }
    proxy.log.clear()
    second = proxied_cli(*args)
    assert second.code == 0
    assert proxy.requests(r"^(PUT|POST) ") == []


def test_live_files_uploaded_once_complete(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    inbox = tmp_path / "in"
    inbox.mkdir()
    process = proxied_cli.start(
        "watch",
        "in",
        f"s3://{bucket}/ev",
        "--layout",
        "date-folders",
        "--settle",
        "1.5",
        "--rescan",
        "2",
        "--ledger",
        "l.db",
        "--status-json",
        "st.json",
        "--status-interval",
        "0.2",
    )
    try:
        time.sleep(1.0)
        (inbox / "20250801_120000.xml").write_bytes(b"<a/>" * 100)
        slow = inbox / "20250801_120500.xml"
        with slow.open("wb") as handle:  # written in several appends, slower than nothing
            for _ in range(5):
                handle.write(b"<event/>" * 50)
                handle.flush()
                time.sleep(0.2)
        (inbox / "partial.xml.part").write_bytes(b"ignored")
        _wait(lambda: len(_keys(s3, bucket)) == 2)
        _wait((tmp_path / "st.json").exists)  # the heartbeat is written every 0.2 s
        status = json.loads((tmp_path / "st.json").read_text())
        assert "backlog" in status
        assert "oldest_waiting_seconds" in status
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, out + err
    body = s3.get_object(Bucket=bucket, Key="ev/2025/08/01/20250801_120500.xml")["Body"].read()
    assert body == slow.read_bytes()
    puts = proxy.requests(r"^PUT ")
    assert len(puts) == 2  # once each; the half-written file was never sent
    assert "2 uploaded" in out


def test_outage_then_recovery_loses_nothing(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "in", {f"f{i}.xml": 20 for i in range(3)})
    proxy.add(r"^PUT ", "status", times=6, status=503, code="SlowDown")
    process = proxied_cli.start(
        "watch", "in", f"s3://{bucket}/p", "--settle", "0", "--ledger", "l.db", env=FAST
    )
    try:
        _wait(lambda: len(_keys(s3, bucket)) == 3, timeout=40)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert process.returncode == 0
    assert len(proxy.requests(r"^PUT ")) >= 7


def test_after_upload_move_and_delete_only_when_verified(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "in", {"a.xml": 5, "b.xml": 6, "bad.xml": 7})
    proxy.add(r"^PUT /[^?]*bad\.xml", "status", times=100, status=500, code="InternalError")
    result = proxied_cli(
        "watch",
        "in",
        f"s3://{bucket}/p",
        "--settle",
        "0",
        "--once",
        "--after-upload",
        "move:done",
        "--ledger",
        "l.db",
        "--max-wait",
        "2",
        env=FAST,
    )
    assert (tmp_path / "done" / "a.xml").exists()
    assert (tmp_path / "done" / "b.xml").exists()
    assert (tmp_path / "in" / "bad.xml").exists()  # not verified: left in place
    assert result.code == 1
    assert "p/bad.xml" not in _keys(s3, bucket)
    make_tree(tmp_path / "in2", {"c.xml": 5})
    deleted = proxied_cli(
        "watch",
        "in2",
        f"s3://{bucket}/q",
        "--settle",
        "0",
        "--once",
        "--after-upload",
        "delete",
        "--ledger",
        "l.db",
    )
    assert deleted.code == 0
    assert not (tmp_path / "in2" / "c.xml").exists()
    assert "q/c.xml" in _keys(s3, bucket)


def test_watch_bad_input(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert cli("watch", "missing-dir", f"s3://{bucket}/p").code == 2
    (tmp_path / "d").mkdir()
    assert cli("watch", "d", f"s3://{bucket}/p", "--after-upload", "shred").code == 2


def test_once_reports_a_file_that_never_settles(proxied_cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import threading

    make_tree(tmp_path / "in", {"busy.xml": 10})
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set():
            with (tmp_path / "in" / "busy.xml").open("ab") as handle:
                handle.write(b"x")
            time.sleep(0.1)

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        result = proxied_cli(
            "--json",
            "watch",
            "in",
            f"s3://{bucket}/p",
            "--settle",
            "0.5",
            "--max-wait",
            "1.5",
            "--once",
            "--ledger",
            "l.db",
        )
    finally:
        stop.set()
        writer.join()
    assert result.code == 1
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["uploaded"] == 0
    assert len(summary["still_changing"]) == 1


def test_notification_alone_uploads_a_new_file(proxied_cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A file written while watching goes up on its notification: the rescan is set
    far beyond the test's timeout, so only the notification can bring it in. Two files
    written one after the other prove the watcher keeps hearing after its first batch."""
    inbox = tmp_path / "in"
    inbox.mkdir()
    process = proxied_cli.start(
        "watch",
        "in",
        f"s3://{bucket}/n",
        "--settle",
        "0.5",
        "--rescan",
        "3600",
        "--ledger",
        "l.db",
    )
    try:
        time.sleep(1.5)  # the watcher is up and has drained its (empty) inbox
        (inbox / "a.xml").write_bytes(b"<a/>")
        _wait(lambda: _keys(s3, bucket) == {"n/a.xml"}, timeout=20)
        (inbox / "b.xml").write_bytes(b"<b/>")
        _wait(lambda: _keys(s3, bucket) == {"n/a.xml", "n/b.xml"}, timeout=20)
        time.sleep(1.5)  # reading a file to upload it is no change that queues it again
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "watch: 2 uploaded, 0 failed attempts\n" in out


def test_once_uploads_old_files_without_waiting_and_status_shows_the_watch(
    cli,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """Files last modified an hour ago have settled long since: --once takes them at
    once (the settle time here is longer than the command may take), and the
    heartbeat shows the watch's run id, totals and backlog."""
    import os

    make_tree(tmp_path / "in", {"old1.xml": 10, "old2.xml": 20})
    hour_ago = time.time() - 3600
    for name in ("old1.xml", "old2.xml"):
        os.utime(tmp_path / "in" / name, (hour_ago, hour_ago))
    args = ("watch", "in", f"s3://{bucket}/o", "--settle", "600", "--once", "--ledger", "l.db")
    result = cli(*args, "--status-json", "st.json", timeout=60)
    assert result.code == 0, result.output
    assert _keys(s3, bucket) == {"o/old1.xml", "o/old2.xml"}
    data = json.loads((tmp_path / "st.json").read_text())
    shown = cli("status", "st.json")
    assert shown.code == 0, shown.output
    assert f"(run {data['run_id']})" in shown.stdout
    assert "(run ?)" not in shown.stdout
    assert "backlog 0" in shown.stdout
    assert "2 uploaded" in shown.stdout
    again = cli(*args, timeout=60)  # a restart finds both done: skipped, not uploaded
    assert again.code == 0, again.output
    assert "watch: 0 uploaded, 0 failed attempts, 2 already done" in again.stdout


def test_include_and_exclude_select_by_path_as_upload_does(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(
        tmp_path / "in",
        {
            "keep/a.xml": 5,
            "keep/skip-b.xml": 5,
            "keep/c.txt": 5,
            "other/d.xml": 5,
            "keep/.hidden.xml": 5,  # hidden: excluded by default
            "keep/e.xml.part": 5,  # temporary: excluded by default
            "keep/.env": 5,  # taken back by "!.env"
        },
    )
    done = cli(
        "watch",
        "in",
        f"s3://{bucket}/w",
        "--include",
        "keep/*.xml",
        "--pattern",  # the old name of --include
        "keep/.env",
        "--exclude",
        "keep/skip-*",
        "--exclude",
        "!.env",
        "--settle",
        "0",
        "--once",
        "--ledger",
        "l.db",
    )
    assert done.code == 0, done.output
    assert _keys(s3, bucket) == {"w/keep/a.xml", "w/keep/.env"}


@pytest.mark.engines
def test_after_upload_move_into_the_watched_folder_is_not_watched(
    cli,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """``move:in/sent`` inside the watched ``in``: a moved file is done, not a new one
    (each went up again as sent/a.xml, sent/sent/a.xml, ... while watching, and at the
    next start)."""
    make_tree(tmp_path / "in", {"a.xml": 5})
    args = ("watch", "in", f"s3://{bucket}/p", "--after-upload", "move:in/sent")
    opts = ("--settle", "0.2", "--rescan", "0.3", "--ledger", "l.db")
    process = cli.start(*args, *opts)
    try:
        _wait(lambda: (tmp_path / "in" / "sent" / "a.xml").exists())
        time.sleep(2)  # several rescans and notifications of the moved file
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert process.returncode == 0
    assert _keys(s3, bucket) == {"p/a.xml"}
    again = cli(*args, *opts, "--once")  # a restart finds only the moved file
    assert again.code == 0, again.output
    assert _keys(s3, bucket) == {"p/a.xml"}
    assert (tmp_path / "in" / "sent" / "a.xml").exists()


def test_a_stopped_watch_says_the_files_it_left_waiting(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Ctrl+C with files not yet settled ended with "0 uploaded, 0 failed attempts" and
    nothing of the backlog, though the next start uploads it."""
    make_tree(tmp_path / "in", {"a.xml": 5, "b.xml": 6})  # written now: not settled for 60 s
    opts = ("--settle", "60", "--ledger", "l.db")
    for flags in ((), ("--json",)):
        process = cli.start(*flags, "watch", "in", f"s3://{bucket}/p", *opts)
        assert process.stderr is not None
        assert process.stdout is not None
        if flags:  # its start event, once the backlog is tracked
            assert json.loads(process.stdout.readline())["event"] == "watch_start"
        else:
            assert "watching in" in process.stderr.readline()
        time.sleep(1)  # past the first scan
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
        if flags:
            summary = json.loads(stdout.splitlines()[-1])
            assert (summary["uploaded"], summary["backlog"]) == (0, 2), summary
        else:
            assert "2 files still waiting (the next start uploads them)" in stdout, stdout
    assert _keys(s3, bucket) == set()


@pytest.mark.engines
def test_rescans_do_not_send_finished_files_again(
    cli,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """Every rescan put every file of the tree through the engine again, counted as
    "already done" each time: 3 files watched for 5 s said `3 uploaded, 8 already
    done`. A file the watch finished is passed by until it changes."""
    make_tree(tmp_path / "in", {"a.xml": 5, "b.xml": 6})
    args = ("watch", "in", f"s3://{bucket}/p", "--settle", "0.2", "--rescan", "0.3")
    opts = ("--ledger", "l.db", "--status-json", "st.json", "--status-interval", "0.2")
    process = cli.start(*args, *opts)
    try:
        _wait(lambda: len(_keys(s3, bucket)) == 2)
        time.sleep(1.5)  # several rescans
        (tmp_path / "in" / "b.xml").write_bytes(b"changed!")
        _wait(lambda: s3.get_object(Bucket=bucket, Key="p/b.xml")["ContentLength"] == 8)
        time.sleep(1.5)
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=20)
    assert process.returncode == 0
    totals = json.loads((tmp_path / "st.json").read_text())["totals"]
    assert (totals["uploaded"], totals["skipped"]) == (3, 0), totals
    again = cli(*args, *opts, "--once")  # a restart: each file already done, once
    assert again.code == 0, again.output
    totals = json.loads((tmp_path / "st.json").read_text())["totals"]
    assert (totals["uploaded"], totals["skipped"]) == (0, 2), totals


@pytest.mark.engines
def test_after_upload_spares_a_file_written_to_after_its_upload(
    server,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """A writer that appends after the upload was verified (it paused longer than the
    settle time) and before ``--after-upload delete``: the file was deleted with bytes
    that never reached S3. It is kept now, and goes up again changed."""
    from s3stow import Watcher, load_settings, open_ledger, parse_target
    from s3stow.models import SourceFile, UploadResult
    from s3stow.report.observer import Observer
    from s3stow.transfer.engine import Uploader

    spool = tmp_path / "in"
    make_tree(spool, {"a.log": 5})

    class LateWriter(Observer):  # runs before the watcher sees the verified result
        def __init__(self) -> None:
            self.appended = False

        def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
            if not self.appended:
                self.appended = True
                with open(result.path, "ab") as handle:
                    handle.write(b"+late")

    settings = load_settings(env={}, flags={"endpoint_url": server.endpoint_url})
    target = parse_target(f"s3://{bucket}/p")

    def watch(observers: list[Observer]) -> None:
        ledger = open_ledger(str(tmp_path / "l.db"))
        uploader = Uploader(settings, ledger=ledger, observers=observers)
        Watcher(uploader, spool, target, settle=0, after_upload="delete").run(once=True)
        ledger.close()

    watch([LateWriter()])
    assert (spool / "a.log").exists()  # not deleted: its last 5 bytes are not in S3
    late = (spool / "a.log").read_bytes()
    assert late.endswith(b"+late")
    watch([])  # the next pass sends the longer file, then deletes it
    assert not (spool / "a.log").exists()
    assert s3.get_object(Bucket=bucket, Key="p/a.log")["Body"].read() == late


def test_dry_run_setting_is_refused_not_spun_on(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``S3STOW_DRY_RUN=1`` (or ``dry_run: true`` in a shared config file): a dry-run
    batch uploads nothing, so ``watch --once`` waited for its backlog forever, a core
    busy, saying `backlog 1` with no word why. It is refused (exit 2), naming it."""
    make_tree(tmp_path / "in", {"a.xml": 5})
    args = ("watch", "in", f"s3://{bucket}/p", "--settle", "0", "--once", "--ledger", "l.db")
    result = cli(*args, "--after-upload", "delete", env={"S3STOW_DRY_RUN": "1"}, timeout=30)
    assert result.code == 2, result.output
    assert "watch has no dry run" in result.stderr
    assert "Traceback" not in result.output
    assert (tmp_path / "in" / "a.xml").exists()
    assert _keys(s3, bucket) == set()


def test_a_watch_says_its_run_id_and_retry_takes_it(
    proxied_cli, proxy, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``watch`` never printed its run id (the one ``stats``, ``restore`` and ``retry
    --run`` take), and ``retry --run`` with it found nothing: a watch records each
    batch as ``<id>.<n>``."""
    import os

    make_tree(tmp_path / "in", {"a.xml": 10, "b.xml": 20})
    hour_ago = time.time() - 3600
    for name in ("a.xml", "b.xml"):
        os.utime(tmp_path / "in" / name, (hour_ago, hour_ago))
    proxy.add(r"^PUT /[^/]+/w/b\.xml", "status", times=100, status=503, code="SlowDown")
    args = ("watch", "in", f"s3://{bucket}/w", "--once", "--ledger", "l.db")
    result = proxied_cli("--json", *args, env=FAST, timeout=60)
    assert result.code == 1, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    run = events[0]["run_id"]
    assert events[0]["event"] == "watch_start"
    assert events[-1]["event"] == "watch_summary"
    assert events[-1]["run_id"] == run
    assert all(e["run_id"].startswith(f"{run}.") for e in events if e["event"] == "start")
    human = proxied_cli(*args[:-1], "h.db", env=FAST, timeout=60)  # its own ledger
    assert " as run " in human.stderr
    listed = proxied_cli("--json", "retry", "--run", run, "--ledger", "l.db", "--list")
    assert listed.code == 0, listed.output
    assert json.loads(listed.stdout)["failed"] == 1
    proxy.reset()
    retried = proxied_cli("retry", "--run", run, "--ledger", "l.db")
    assert retried.code == 0, retried.output
    assert "1 item retried, 1 now done" in retried.stdout
    unknown = proxied_cli("retry", "--run", "no-such-run", "--ledger", "l.db")
    assert unknown.code == 2
    assert "no run 'no-such-run' in the ledger" in unknown.stderr


def test_what_a_watch_cannot_upload_is_reported_never_dropped(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A name that is not UTF-8 (and a key with a control character) in a watched folder:
    a scan left the first out silently (no line, nothing in the ledger, exit 0), a
    notification of one ended the watch in an UnicodeEncodeError (exit 3), and without
    -q no failure was named with its reason."""
    import os

    inbox = tmp_path / "in"
    make_tree(inbox, {"ok.xml": 5, "new\nline.xml": 3})
    os.mkfifo(inbox / "pipe")  # a special file: named under -v, no failure
    with open(os.fsencode(inbox) + b"/bad\xffname.xml", "wb") as handle:
        handle.write(b"x")
    hour_ago = time.time() - 3600
    for name in os.listdir(os.fsencode(inbox)):
        os.utime(os.fsencode(inbox) + b"/" + name, (hour_ago, hour_ago))
    once = cli("watch", "in", f"s3://{bucket}/o", "--once", "--ledger", "l.db", timeout=60)
    assert once.code == 1, once.output
    assert "failed: in/bad\\xffname.xml: [InvalidName] name is not valid UTF-8" in once.stderr
    assert "failed: in/new\\nline.xml: [UnsafeKey]" in once.stderr
    assert "pipe" not in once.output
    assert "watch: 1 uploaded, 2 failed attempts" in once.stdout
    listed = cli("retry", "--list", "--ledger", "l.db")
    assert "InvalidName" in listed.stdout, listed.output
    live = inbox / "live"
    live.mkdir()
    process = cli.start(
        "watch", "in", f"s3://{bucket}/n", "--settle", "0.5", "--rescan", "3600",
        "--ledger", "l2.db",
    )  # fmt: skip
    try:
        time.sleep(1.5)  # the watcher is up, its backlog scanned (and reported)
        with open(os.fsencode(live) + b"/late\xfe.xml", "wb") as handle:
            handle.write(b"y")
        (live / "after.xml").write_bytes(b"<a/>")
        _wait(lambda: "n/live/after.xml" in _keys(s3, bucket), timeout=20)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "failed: in/live/late\\xfe.xml: [InvalidName]" in err
    assert err.count("late\\xfe") == 1  # said once, not at every tick


def test_an_after_upload_folder_that_cannot_be_made_is_a_usage_error(
    cli, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``move:FILE`` (or a folder that cannot be made) was "unexpected FileExistsError ...
    please report it", exit 3."""
    make_tree(tmp_path / "in", {"a.xml": 5})
    (tmp_path / "taken").write_text("a file")
    result = cli(
        "watch", "in", f"s3://{bucket}/m", "--once", "--ledger", "l.db",
        "--after-upload", "move:taken",
    )  # fmt: skip
    assert result.code == 2, result.output
    assert "--after-upload move:taken: cannot make the folder taken: it is a file" in (
        result.stderr
    )
    assert "unexpected" not in result.output
    assert (tmp_path / "in" / "a.xml").exists()


def test_a_watched_folder_that_goes_away_is_said_once(cli, tmp_path: Path, bucket) -> None:  # type: ignore[no-untyped-def]
    """The watched folder removed while watching: every rescan found nothing and said
    nothing (its Skipped root is ``.``, which the hidden-name rule left out)."""
    import shutil
    import threading

    inbox = tmp_path / "in"
    inbox.mkdir()
    process = cli.start(
        "watch", "in", f"s3://{bucket}/g", "--settle", "0.5", "--rescan", "0.3",
        "--ledger", "l.db", "--status-json", "st.json",
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []

    def read() -> None:
        assert process.stderr is not None
        lines.extend(iter(process.stderr.readline, ""))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        _wait((tmp_path / "st.json").exists)  # written once the notifications run
        shutil.rmtree(inbox)
        _wait(lambda: any("cannot read the watched folder" in line for line in lines))
        time.sleep(1.5)  # several rescans more: still said once
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)
        reader.join(timeout=5)
    assert process.returncode == 0, "".join(lines)
    said = [line for line in lines if "cannot read the watched folder" in line]
    assert len(said) == 1, said
    assert "No such file or directory" in said[0]
