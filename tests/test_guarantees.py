"""Nothing verified is overwritten or misreported (issue 19).

File names reach their keys exactly; a key collision never overwrites a verified
object; a file rewritten in place during its upload (mtime put back) is never done;
bytes and rates count what this run sent; the first failed ledger write stops the
run; a foreign or newer database is refused; two runs of one ledger and target do
not run at once; s3stow's own working files are never uploaded.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from s3stow.errors import LedgerError
from s3stow.ledger import open_ledger, sqlite_ddl
from s3stow.ledger.marker import APPLICATION_ID, SCHEMA_VERSION
from s3stow.models import RunSummary
from tests.conftest import FIVE_MIB_PARTS, make_tree

MiB = 1024 * 1024


def _query(db: Path, sql: str) -> list[Any]:
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []


def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _body(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _events(stdout: str, kind: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [e for e in events if e.get("event") == kind]


# ---- 1. names kept exactly; collisions never overwrite -------------------------------


@pytest.mark.skipif(os.name == "nt", reason="a backslash is a separator on Windows")
def test_a_backslash_in_a_posix_name_reaches_the_key_unchanged(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "t", {"back/slash.txt": b"REAL"})
    first = cli("upload", "t", f"s3://{bucket}/c", "--ledger", "l.db")
    assert first.code == 0, first.output
    (tmp_path / "t" / "back\\slash.txt").write_bytes(b"OTHER")
    again = cli("upload", "t", f"s3://{bucket}/c", "--ledger", "l.db")
    assert again.code == 0, again.output
    assert _body(s3, bucket, "c/back/slash.txt") == b"REAL"
    assert _body(s3, bucket, "c/back\\slash.txt") == b"OTHER"


@pytest.mark.skipif(
    sys.platform == "darwin", reason="APFS keeps one of two names that differ in normalisation"
)
def test_a_collision_with_a_verified_object_overwrites_nothing(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """NFC and NFD spellings of one name share a key. The NFD twin, added after the
    NFC file was verified, is found first; it must not replace the verified object."""
    nfc, nfd = "caf\u00e9.txt", "cafe\u0301.txt"
    make_tree(tmp_path / "src", {nfc: b"REAL"})
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert proxied_cli(*args).code == 0
    (tmp_path / "src" / nfd).write_bytes(b"OTHER!")
    proxy.reset()
    again = proxied_cli(*args)
    assert again.code == 1, again.output
    assert proxy.requests(r"^(PUT|POST) ") == []
    assert _body(s3, bucket, f"p/{nfc}") == b"REAL"
    assert "KeyCollision" in again.stdout
    assert f"src/{nfd}" in again.stdout  # the refused file ...
    assert f"holds src/{nfc}, verified in S3" in again.stdout  # ... names the other
    rows = _query(tmp_path / "l.db", "SELECT key, source_path, status FROM items")
    assert (f"p/{nfc}", f"src/{nfc}", "done") in rows  # the verified row, untouched
    assert (str(tmp_path / "src" / nfd), str(tmp_path / "src" / nfd), "failed") in rows


# ---- 2. rewritten in place, mtime put back --------------------------------------------


def test_a_file_rewritten_in_place_with_its_mtime_put_back_is_never_done(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """While part 2 of 4 is in flight, 1 MiB at the start (part 1, sent) and at the end
    (part 4, not yet read) are overwritten and the mtime is put back: same size, same
    mtime. The upload must not complete; the next run uploads the new bytes."""
    make_tree(tmp_path / "src", {"f.bin": 16 * MiB})
    path = tmp_path / "src" / "f.bin"

    def rewrite(_: str) -> None:
        before = path.stat()
        with path.open("r+b") as handle:
            handle.write(b"\0" * MiB)
            handle.seek(-MiB, os.SEEK_END)
            handle.write(b"\0" * MiB)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    proxy.add(r"^PUT .*partNumber=2(&|$)", "callback", times=1, callback=rewrite)
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", *FIVE_MIB_PARTS)
    result = proxied_cli(*args, "--concurrency", "1")
    assert result.code == 1, result.output
    assert "changed during upload" in result.stdout
    assert _query(tmp_path / "l.db", "SELECT status, error_class FROM items") == [
        ("changed", "SourceChanged")
    ]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    again = proxied_cli(*args)
    assert again.code == 0, again.output
    assert _body(s3, bucket, "p/f.bin") == path.read_bytes()


# ---- 3. bytes and rates: what this run sent --------------------------------------------


def test_bytes_count_what_each_run_sent_interrupted_and_resumed(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """Ctrl+C mid-multipart: the summary counts the parts this run sent (not zero);
    the resumed run counts only the parts it sent (not the whole file)."""
    data = make_tree(tmp_path / "src", {"big.bin": 35 * MiB})["big.bin"]  # 7 parts
    db, status = tmp_path / "l.db", tmp_path / "st.json"
    args = (
        "--json", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--part-size",
        "5MiB", "--concurrency", "2", "--status-json", "st.json", "--status-interval", "0.01",
    )  # fmt: skip
    proxy.add(r"^PUT .*partNumber=", "delay", times=100, delay=0.5)
    process = proxied_cli.start(*args)
    _wait_for(lambda: len(_query(db, "SELECT number FROM parts")) >= 2)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    sent_first = _query(db, "SELECT SUM(size) FROM parts")[0][0]
    assert 0 < sent_first < len(data)
    (summary,) = _events(stdout, "summary")
    assert summary["bytes_uploaded"] == sent_first
    assert json.loads(status.read_text())["totals"]["bytes_uploaded"] == sent_first

    proxy.reset()
    result = proxied_cli(*args)
    assert result.code == 0, result.output
    sent_again = 5 * MiB * len(proxy.requests(r"^PUT .*partNumber="))
    (summary,) = _events(result.stdout, "summary")
    assert summary["bytes_uploaded"] == sent_again < len(data)
    assert summary["bytes_resumed"] == len(data) - sent_again
    assert summary["bytes_total"] == len(data)
    assert json.loads(status.read_text())["totals"]["bytes_uploaded"] == sent_again
    assert _body(s3, bucket, "p/big.bin") == data


# ---- 4. a ledger that cannot be written stops the run ---------------------------------


@pytest.mark.skipif(
    not hasattr(__import__("resource"), "prlimit") if os.name != "nt" else True,
    reason="needs prlimit (Linux) to fill the ledger's 'disk' under a running process",
)
def test_the_first_failed_ledger_write_stops_the_run(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """At the 11th PUT the run's file-size limit drops to one byte, so SQLite's next
    write fails for real (as on a full disk). No new work starts, the summary is
    printed with the reason, exit 3; nothing recorded done is missing from S3."""
    import resource

    make_tree(tmp_path / "src", {f"f{i:03d}.txt": 100 for i in range(200)})
    box: list[subprocess.Popen[str]] = []

    def disk_full(_: str) -> None:
        resource.prlimit(box[0].pid, resource.RLIMIT_FSIZE, (1, 1))

    proxy.add(r"^PUT /[^?]*f010\.txt", "callback", times=1, callback=disk_full)
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.05)
    box.append(
        proxied_cli.start(
            "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--concurrency", "2"
        )
    )
    stdout, stderr = box[0].communicate(timeout=120)
    assert box[0].returncode == 3, stdout + stderr
    assert "cannot write the ledger" in stderr
    assert stderr.count("cannot write the ledger") <= 2  # reported, not repeated
    assert " uploaded, " in stdout  # the summary
    assert len(proxy.requests(r"^PUT ")) < 100  # new work stopped
    done = {
        k for (k, s) in _query(tmp_path / "l.db", "SELECT key, status FROM items") if s == "done"
    }
    stored = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert done <= stored


# ---- 5. only s3stow's own ledgers, of a version this s3stow knows -----------------------


def _foreign_items_table(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, title TEXT, price REAL)")
        conn.execute("INSERT INTO items (title, price) VALUES ('apple', 1.5)")


def _newer_ledger(path: Path) -> None:
    open_ledger(str(path)).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE s3stow_meta SET value = '99' WHERE name = 'schema_version'")


def _other_application(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA application_id = 305419896")  # 0x12345678


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_foreign_items_table, "is not an s3stow ledger"),
        (_newer_ledger, "was written by a newer s3stow"),
        (_other_application, "another program's SQLite database (application_id 0x12345678)"),
    ],
)
def test_a_foreign_or_newer_database_is_refused_before_any_request(
    proxied_cli,
    proxy,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    make: Any,
    message: str,
) -> None:
    make_tree(tmp_path / "src", {"a.txt": 1})
    db = tmp_path / "app.db"
    make(db)
    before = db.read_bytes()
    result = proxied_cli("upload", "src", "s3://some-bucket/p", "--ledger", str(db))
    assert result.code == 3, result.output
    assert message in result.stderr
    assert str(db) in result.stderr
    assert "Traceback" not in result.stderr
    assert proxy.log == []
    assert db.read_bytes() == before  # not a byte changed


def test_a_ledger_from_before_the_marker_is_accepted_and_marked(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # as every earlier s3stow created it: no marker
        for statement in sqlite_ddl.STATEMENTS:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO items (bucket, key, source_path, size, mtime_ns, status, attempts,"
            " run_id, created_at, updated_at) VALUES ('b', 'k', '/k', 1, 1, 'done', 1, 'r', 0, 0)"
        )
    ledger = open_ledger(str(path))
    assert set(ledger.lookup("b", ["k"])) == {"k"}
    ledger.close()
    assert _query(path, "PRAGMA application_id") == [(APPLICATION_ID,)]
    assert _query(path, "SELECT value FROM s3stow_meta WHERE name = 'schema_version'") == [
        (str(SCHEMA_VERSION),)
    ]


def test_a_foreign_postgresql_table_is_refused(postgres_url: str) -> None:
    import psycopg

    schema = f"foreign_{os.getpid()}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.items (id serial PRIMARY KEY, title text)")
    try:
        with pytest.raises(LedgerError, match="is not an s3stow ledger") as caught:
            open_ledger(f"{postgres_url}?options=-csearch_path%3D{schema}")
        assert "runs" in str(caught.value)  # what it lacks is named
        with psycopg.connect(postgres_url) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
        assert tables == [("items",)]  # nothing created beside it
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# ---- 6. one run per ledger and target ---------------------------------------------------


def _second_run_is_refused(proxied_cli, proxy, bucket: str, tmp_path: Path, ledger: str) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(6)})
    held = proxy.add(r"^PUT /[^?]*/p/", "hold", times=100)  # the first run stays busy
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", ledger, "--concurrency", "1")
    first = proxied_cli.start(*args)
    try:
        _wait_for(lambda: len(proxy.requests(r"^PUT /[^?]*/p/")) >= 1)
        other = proxied_cli("upload", "src", f"s3://{bucket}/q", "--ledger", ledger)
        assert other.code == 0, other.output  # another target is not held up ...
        second = proxied_cli(*args)
        assert second.code == 3, second.output  # ... while the first run holds its own
        assert f"pid {first.pid} on {socket.gethostname()}" in second.stderr
        assert f"s3://{bucket}/p/" in second.stderr
    finally:
        held.release()
        stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stdout + stderr
    assert proxied_cli(*args).code == 0  # the lock ended with its run
    assert len(proxy.requests(r"^PUT /[^?]*/p/f")) == 6  # each file sent once (the probe apart)


def test_a_second_run_of_one_sqlite_ledger_and_target_exits_3(
    proxied_cli, proxy, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _second_run_is_refused(proxied_cli, proxy, bucket, tmp_path, "l.db")
    assert list(tmp_path.glob("l.db-*.lock")) == []


def test_a_second_run_of_one_postgresql_ledger_and_target_exits_3(  # type: ignore[no-untyped-def]
    proxied_cli, proxy, bucket, tmp_path: Path, postgres_url: str
) -> None:
    _second_run_is_refused(proxied_cli, proxy, bucket, tmp_path, postgres_url)


# ---- 7. s3stow's own working files are never uploaded --------------------------------


def test_own_working_files_inside_the_tree_are_left_out(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 1, "sub/b.txt": 2})
    args = (
        "-v", "upload", "src", f"s3://{bucket}/p", "--ledger", "src/l.db", "--status-json",
        "src/sub/st.json", "--failures-file", "src/failed.jsonl",
    )  # fmt: skip
    for _ in range(2):  # the second run finds them all present (and changed)
        result = cli(*args)
        assert result.code == 0, result.output
        stored = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
        assert stored == {"p/a.txt", "p/sub/b.txt"}
    assert "of 2 files" in result.stdout
    assert "src/l.db: it is the ledger (--ledger)" in result.stderr
    assert "src/sub/st.json: it is the --status-json file" in result.stderr
    assert "src/failed.jsonl: it is the --failures-file" in result.stderr


def test_a_resume_after_an_in_place_rewrite_starts_afresh(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """kill -9 after part 2 of 4; the file is rewritten in place, its mtime put back.
    The next run must not complete the old upload with parts of two versions."""
    make_tree(tmp_path / "src", {"f.bin": 16 * MiB})
    path = tmp_path / "src" / "f.bin"
    box: list[subprocess.Popen[str]] = []
    proxy.add(
        r"^PUT .*partNumber=2(&|$)",
        "callback",
        times=1,
        callback=lambda _: os.kill(box[0].pid, signal.SIGKILL),
    )
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", *FIVE_MIB_PARTS)
    box.append(proxied_cli.start(*args, "--concurrency", "1"))
    box[0].wait(60)
    assert box[0].returncode == -signal.SIGKILL
    assert len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    before = path.stat()
    with path.open("r+b") as handle:
        handle.write(b"\0" * MiB)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    proxy.reset()
    result = proxied_cli(*args)
    assert result.code == 0, result.output
    assert len(proxy.requests(r"^POST [^?]*\?uploads")) == 1  # a new upload, not the old one
    assert _body(s3, bucket, "p/f.bin") == path.read_bytes()
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")  # the old one aborted


def test_the_progress_bar_counts_only_bytes_this_run_sends(tmp_path: Path) -> None:
    """Resumed parts, skipped files and what a failed file did not send leave the bar's
    total, so its rate and ETA are this run's own."""
    import io

    from rich.console import Console

    from s3stow.models import Decision, PlannedUpload, Reason, SourceFile, Status, UploadResult
    from s3stow.report.progress import LiveProgress, PlainProgress

    def source(name: str, size: int) -> SourceFile:
        return SourceFile(tmp_path / name, name, size, 1, tmp_path)

    big, done, broken = source("big", 10 * MiB), source("done", 3 * MiB), source("bad", 2 * MiB)
    bar = LiveProgress(Console(file=io.StringIO()))
    plain = PlainProgress(io.StringIO(), interval=3600)
    for observer in (bar, plain):
        observer.on_start("r", "s3://b/p")
        for item in (big, done, broken):
            observer.on_discovered(item)
        observer.on_decision(
            Decision(PlannedUpload(done, "b", "p/done"), False, Reason.LEDGER_DONE)
        )
        observer.on_resumed(big, 4 * MiB)  # parts an earlier run sent
        observer.on_bytes(big, 6 * MiB)
        observer.on_result(UploadResult(big.path, "b", "p/big", Status.DONE), big)
        observer.on_bytes(broken, 1 * MiB)  # one part, then it failed
        observer.on_result(UploadResult(broken.path, "b", "p/bad", Status.FAILED), broken)
        observer.on_finish(RunSummary("r"))
    for observer in (bar, plain):
        snap = observer.snapshot()
        assert (snap.sent, snap.total) == (7 * MiB, 7 * MiB)
