"""The ``Ledger``: batched outcomes (by size, by time, on demand), runs, lookups in
chunks, multipart state, and database errors turned into ``LedgerError`` without
losing queued outcomes. Read back through a second connection, as the next run
would."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from s3stow.errors import ConfigError, LedgerError
from s3stow.ledger import MultipartState, open_ledger
from s3stow.ledger.opening import default_ledger_path
from s3stow.models import PartRecord, Status, UploadResult

TOKEN = "pAssw0rdThatMustNotLeak"


def _result(key: str, status: Status = Status.DONE, **fields: Any) -> UploadResult:
    values: dict[str, Any] = {"size": 3, "etag": "e", "checksum": "c", "attempts": 1}
    values.update(fields)
    return UploadResult(Path("/data") / key, "b", key, status, **values)


def _rows(db: Path, sql: str) -> list[Any]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def _eventually(predicate: Any) -> None:
    deadline = time.monotonic() + 30
    while not predicate():
        assert time.monotonic() < deadline, "not reached"
        time.sleep(0.02)


def test_outcomes_are_written_with_their_columns_and_failures_with_history(
    tmp_path: Path,
) -> None:
    db = tmp_path / "l.db"
    ledger = open_ledger(str(db), flush_interval=3600)
    ledger.record(_result("a/photo.JPG"), mtime_ns=7, run_id="r1", group="photos")
    ledger.record(_result("a/README"), mtime_ns=8, run_id="r1")
    ledger.record(_result("a/x." + "y" * 40), mtime_ns=9, run_id="r1")
    failed = _result(
        "a/f.txt",
        Status.FAILED,
        error_class="InternalError",
        error=f"postgresql://u:{TOKEN}@h/db refused",
        attempts=3,
    )
    ledger.record(failed, mtime_ns=10, run_id="r1")
    changed = _result("a/c.txt", Status.CHANGED, error_class="SourceChanged")
    ledger.record(changed, mtime_ns=11, run_id="r1")
    ledger.record(_result("a/f.txt", attempts=2), mtime_ns=12, run_id="r1")  # same batch
    ledger.flush()
    items = {
        row[0]: row[1:]
        for row in _rows(
            db,
            "SELECT key, ext, grp, mtime_ns, status, attempts, error_message, checksum,"
            " etag, source_path, size, run_id FROM items",
        )
    }
    assert items["a/photo.JPG"][:6] == ("jpg", "photos", 7, "done", 1, None)
    assert items["a/photo.JPG"][6:] == ("c", "e", str(Path("/data/a/photo.JPG")), 3, "r1")
    assert items["a/README"][0] == ""
    assert items["a/x." + "y" * 40][0] == "y" * 32
    assert items["a/f.txt"][3:5] == ("done", 5)  # the later outcome; attempts added up
    assert items["a/c.txt"][3] == "changed"
    history = _rows(db, "SELECT key, status, error_class, error_message, run_id FROM attempts")
    assert sorted(history) == [
        ("a/c.txt", "changed", "SourceChanged", None, "r1"),
        ("a/f.txt", "failed", "InternalError", "postgresql://u:***@h/db refused", "r1"),
    ]
    ledger.close()
    assert TOKEN.encode() not in db.read_bytes()


def test_lookup_reads_in_chunks_and_only_the_bucket_asked(tmp_path: Path) -> None:
    ledger = open_ledger(str(tmp_path / "l.db"))
    keys = [f"k{i:04d}" for i in range(1203)]
    for key in keys:
        ledger.record(_result(key), mtime_ns=1, run_id="r")
    other = UploadResult(Path("/o"), "other-bucket", "k0000", Status.FAILED, size=1)
    ledger.record(other, mtime_ns=1, run_id="r")
    ledger.flush()
    found = ledger.lookup("b", [*keys, "absent"])
    assert sorted(found) == keys
    entry = found["k0000"]
    assert (entry.bucket, entry.status, entry.size, entry.mtime_ns) == ("b", Status.DONE, 3, 1)
    assert (entry.checksum, entry.etag, entry.attempts, entry.run_id) == ("c", "e", 1, "r")
    assert entry.source_path == str(Path("/data") / "k0000")
    assert ledger.lookup("other-bucket", ["k0000"])["k0000"].status == Status.FAILED
    assert ledger.lookup("b", []) == {}
    ledger.close()


def test_a_full_batch_is_committed_without_waiting(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    ledger = open_ledger(str(db), flush_interval=3600, batch_size=3)
    for key in ("a", "b"):
        ledger.record(_result(key), mtime_ns=1, run_id="r")
    assert _rows(db, "SELECT count(*) FROM items") == [(0,)]
    ledger.record(_result("c"), mtime_ns=1, run_id="r")
    assert _rows(db, "SELECT count(*) FROM items") == [(3,)]
    ledger.record(_result("d"), mtime_ns=1, run_id="r")
    ledger.close()  # commits what is queued
    assert _rows(db, "SELECT count(*) FROM items") == [(4,)]


def test_the_flusher_commits_on_its_own_and_survives_a_database_error(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    ledger = open_ledger(str(db), flush_interval=0.05)
    (ddl,) = _rows(db, "SELECT sql FROM sqlite_master WHERE name = 'attempts'")[0]
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE attempts")
    ledger.record(_result("f", Status.FAILED, error="boom"), mtime_ns=1, run_id="r")
    with pytest.raises(LedgerError, match="cannot write the ledger: no such table: attempts") as e:
        ledger.flush()
    assert e.value.hint is not None
    assert e.value.hint.startswith("make the ledger writable again")  # not "replaced"
    assert _rows(db, "SELECT count(*) FROM items") == [(0,)]  # rolled back, kept queued
    with sqlite3.connect(db) as conn:
        conn.execute(ddl)
    _eventually(lambda: _rows(db, "SELECT status FROM items") == [("failed",)])
    ledger.record(_result("g"), mtime_ns=1, run_id="r")
    _eventually(lambda: _rows(db, "SELECT count(*) FROM items") == [(2,)])
    assert _rows(db, "SELECT key FROM attempts") == [("f",)]
    ledger.close()


def test_the_first_failed_write_is_kept_and_told_to_the_listeners_once(tmp_path: Path) -> None:
    """The engine stops the run when the ledger first fails (``on_failure``): every
    listener hears that error once; later failures neither repeat it nor replace it."""
    db = tmp_path / "l.db"
    ledger = open_ledger(str(db), flush_interval=3600)
    heard: list[LedgerError] = []
    ledger.on_failure(heard.append)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE attempts")
    errors = []
    for key in ("f", "g"):
        ledger.record(_result(key, Status.FAILED, error="boom"), mtime_ns=1, run_id="r")
        with pytest.raises(LedgerError) as caught:
            ledger.flush()
        errors.append(caught.value)
    assert errors[0] is not errors[1]
    assert heard == [errors[0]]
    assert ledger.failure is errors[0]
    ledger.close()  # the last flush fails again: already reported, not raised twice
    assert heard == [errors[0]]


def test_a_failed_multipart_write_is_a_write_error_told_to_the_listeners(tmp_path: Path) -> None:
    """Dropping the multipart state after a Complete is a write like any other: its
    failure says "write" and stops the run (``on_failure``), as an outcome's does."""
    db = tmp_path / "l.db"
    ledger = open_ledger(str(db), flush_interval=3600)
    heard: list[LedgerError] = []
    ledger.on_failure(heard.append)
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE parts")
    with pytest.raises(LedgerError) as e:
        ledger.forget_multipart("b", "big")
    assert e.value.args[0] == "cannot write the ledger: no such table: parts"
    assert e.value.hint is not None
    assert e.value.hint.startswith("make the ledger writable again")
    assert heard == [e.value]
    assert ledger.failure is e.value
    ledger.close()


def test_write_records_writes_outcomes_in_the_callers_transaction(tmp_path: Path) -> None:
    """The job queue's path: outcomes written at once (no queue), with their columns."""
    from s3stow.ledger.rows import ItemRecord, write_records

    db = tmp_path / "l.db"
    ledger = open_ledger(str(db), flush_interval=3600)
    before = time.time()
    records = [
        ItemRecord(_result("j/a.txt"), 5, "job-1", "photos"),
        ItemRecord(_result("j/b.txt", Status.FAILED, error_class="X", error="bad"), 6, "job-1"),
    ]
    with ledger.database.write() as session:
        write_records(session, records)
    rows = _rows(
        db,
        "SELECT key, status, mtime_ns, run_id, grp, attempts, created_at, updated_at"
        " FROM items ORDER BY key",
    )
    assert [row[:6] for row in rows] == [
        ("j/a.txt", "done", 5, "job-1", "photos", 1),
        ("j/b.txt", "failed", 6, "job-1", None, 1),
    ]
    assert all(before <= row[6] == row[7] <= time.time() for row in rows)
    assert _rows(db, "SELECT key, status, error_message, run_id FROM attempts") == [
        ("j/b.txt", "failed", "bad", "job-1")
    ]
    with ledger.database.write() as session:
        write_records(session, [])  # nothing to write: no statement
    ledger.close()


def test_runs_are_recorded_and_finishing_flushes_the_outcomes_first(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    ledger = open_ledger(str(db), flush_interval=3600)
    ledger.start_run(
        "r1", command="upload", bucket="b", prefix="p/", sources=["/src"], settings={"x": 1}
    )
    info = ledger.run_info("r1")
    assert info is not None
    assert (info["command"], info["bucket"], info["prefix"], info["status"]) == (
        "upload",
        "b",
        "p/",
        "running",
    )
    assert (info["sources"], info["settings"], info["finished_at"]) == (
        '["/src"]',
        '{"x": 1}',
        None,
    )
    ledger.record(_result("a"), mtime_ns=1, run_id="r1")
    ledger.finish_run("r1", status="done", summary={"uploaded": 1})
    info = ledger.run_info("r1")
    assert info is not None
    assert (info["status"], info["summary"]) == ("done", '{"uploaded": 1}')
    assert info["finished_at"] >= info["started_at"]
    assert _rows(db, "SELECT key FROM items") == [("a",)]
    assert ledger.run_info("nope") is None
    ledger.close()


def test_items_filter_by_status_and_run_in_recorded_order(tmp_path: Path) -> None:
    ledger = open_ledger(str(tmp_path / "l.db"))
    ledger.record(_result("z", Status.FAILED), mtime_ns=1, run_id="r1")
    ledger.record(_result("a"), mtime_ns=1, run_id="r1")
    ledger.record(_result("m", Status.CHANGED), mtime_ns=1, run_id="r2")
    keys = [e.key for e in ledger.items()]
    assert keys == ["z", "a", "m"]
    failed = ledger.items(statuses=[Status.FAILED, Status.CHANGED])
    assert [e.key for e in failed] == ["z", "m"]
    assert [e.key for e in ledger.items(statuses=[Status.CHANGED], run_id="r2")] == ["m"]
    assert [e.key for e in ledger.items(run_id="r1")] == ["z", "a"]
    assert [e.key for e in ledger.items_under("b", "")] == ["a", "m", "z"]
    ledger.close()


def test_a_new_upload_id_replaces_the_old_state_and_its_parts(tmp_path: Path) -> None:
    ledger = open_ledger(str(tmp_path / "l.db"))
    old = MultipartState("b", "big", "u1", "/x/big", 12, 1, 5, "crc64nvme")
    ledger.begin_multipart(old)
    for number in (2, 1):
        ledger.record_part("u1", PartRecord(number, f"e{number}", f"c{number}", 5))
    ledger.record_part("u1", PartRecord(2, "e2b", "c2b", 5))  # sent again: the last one holds
    state = ledger.multipart_state("b", "big")
    assert state is not None
    assert state.parts == (PartRecord(1, "e1", "c1", 5), PartRecord(2, "e2b", "c2b", 5))
    new = MultipartState("b", "big", "u2", "/x/big", 13, 2, 5, None)
    ledger.begin_multipart(new)
    assert ledger.multipart_state("b", "big") == new
    assert ledger.multipart_state("b", "other") is None
    ledger.close()
    assert _rows(tmp_path / "l.db", "SELECT upload_id FROM parts") == []


def test_an_unusable_ledger_is_a_clear_error_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(LedgerError) as caught:
        open_ledger(f"postgresql://u:{TOKEN}@127.0.0.1:1/nothing")
    message = caught.value.args[0]
    assert message.startswith("cannot open the ledger postgresql://u:***@127.0.0.1:1/nothing: ")
    assert TOKEN not in str(caught.value)
    assert "\n" not in message  # the driver's first line only
    # the driver is installed: the hint is about the URL and the server, not the extra
    assert caught.value.hint == (
        "check the --ledger path or URL, and that the database accepts connections"
    )
    with pytest.raises(LedgerError) as missing:  # a driver that is not installed
        open_ledger(f"postgresql+pg8000://u:{TOKEN}@127.0.0.1:1/nothing")
    assert TOKEN not in str(missing.value)
    assert (
        missing.value.hint
        == "PostgreSQL needs the 'postgres' extra: pip install 's3stow[postgres]'"
    )


def test_a_ledger_path_that_can_never_be_one_is_refused_naming_it_and_the_fix(
    tmp_path: Path,
) -> None:
    # the OS said "Not a directory" / "File exists", SQLite "disk I/O error"; exit 3
    (tmp_path / "afile").write_text("x")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ConfigError) as below_a_file:
        open_ledger(str(tmp_path / "afile" / "sub" / "l.db"))
    assert f"{tmp_path / 'afile'} is a file, not a folder" in str(below_a_file.value)
    assert "give --ledger" in below_a_file.value.hint
    with pytest.raises(ConfigError) as folder:
        open_ledger(f"sqlite:///{tmp_path / 'folder'}")
    assert f"the ledger {tmp_path / 'folder'} is a folder, not a file" in str(folder.value)
    assert str(tmp_path / "folder" / "ledger.db") in folder.value.hint
    assert not (tmp_path / "afile" / "sub").exists()


def test_a_ledger_in_a_folder_this_user_cannot_write_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "l.db").touch()
    locked.chmod(0o555)  # the file could be opened, but not its -wal and -shm beside it
    try:
        if os.access(locked, os.W_OK):  # root (as root: setpriv --bounding-set=-dac_override)
            pytest.skip("this user writes in a read-only folder")
        for target in (locked / "l.db", locked / "new" / "l.db"):
            with pytest.raises(ConfigError) as caught:
                open_ledger(str(target))
            assert f"this user cannot write in {locked}" in str(caught.value)
    finally:
        locked.chmod(0o755)


# Opens a ledger in a child process and prints the refusal's message and hint (nothing
# when it opens). As root, the child runs without the capabilities that let root write
# where a folder's or a file's mode says no (``setpriv``), so it meets the refusal any
# other user meets; the test above skips as root.
_OPEN_OR_REFUSE = (
    "import json, sys\n"
    "from s3stow.errors import ConfigError\n"
    "from s3stow.ledger import open_ledger\n"
    "try:\n"
    "    open_ledger(sys.argv[1]).close()\n"
    "except ConfigError as exc:\n"
    "    print(json.dumps([exc.message, exc.hint]))\n"
)


def _refusal_as_a_user(target: Path) -> list[str] | None:
    command = [sys.executable, "-c", _OPEN_OR_REFUSE, str(target)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("root, and no setpriv to drop its permission override")
        dropped = "-dac_override,-dac_read_search"
        command = [setpriv, f"--bounding-set={dropped}", f"--inh-caps={dropped}", *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout) if done.stdout.strip() else None


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes and capabilities")
def test_a_ledger_this_user_cannot_write_is_refused_with_why_and_the_fix_as_any_user(
    tmp_path: Path,
) -> None:
    """Exit 2 before anything is opened, the message naming why and the hint the fix:
    a folder this user cannot write (an existing ledger in it, or a new one below it),
    and a ledger file it cannot write in a folder it can. Checked as a user without
    root's override, also when the suite runs as root."""
    fix = "give --ledger (or S3STOW_LEDGER, ledger in the config file) a file path"
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "l.db").touch()
    read_only = tmp_path / "ro.db"
    open_ledger(str(read_only)).close()
    read_only.chmod(0o444)
    locked.chmod(0o555)
    try:
        for target in (locked / "l.db", locked / "new" / "l.db"):
            assert _refusal_as_a_user(target) == [
                f"the ledger {target} cannot be written: this user cannot write in {locked}",
                f"{fix} in a folder you can write, or make {locked} writable",
            ]
        assert _refusal_as_a_user(read_only) == [
            f"the ledger {read_only} cannot be written: this user cannot read and write it",
            f"make {read_only} readable and writable for this user, or {fix} of its own",
        ]
    finally:
        locked.chmod(0o755)
        read_only.chmod(0o644)
    assert _refusal_as_a_user(read_only) is None  # writable again: it opens
    assert not (locked / "new").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="a mount namespace of its own")
def test_a_ledger_on_a_read_only_file_system_is_refused_saying_so(tmp_path: Path) -> None:
    """A folder on a file system mounted read-only is refused as any folder this user
    cannot write, and the message says why: no change of permissions would help. The
    child mounts a read-only tmpfs in a mount namespace of its own (``unshare``; as
    another user, in a user namespace too), so nothing outside it sees the mount."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare")
    mount = tmp_path / "ro"
    mount.mkdir()
    namespaces = ["--mount"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--mount"]
    script = 'mount -t tmpfs -o ro s3stow-test "$1" || exit 77; exec "$2" -c "$3" "$1/l.db"'
    command = [unshare, *namespaces, "sh", "-c", script, "sh", str(mount), sys.executable]
    done = subprocess.run(
        [*command, _OPEN_OR_REFUSE], capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode == 77 or (done.returncode != 0 and "unshare" in done.stderr):
        pytest.skip(f"no read-only mount here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    fix = "give --ledger (or S3STOW_LEDGER, ledger in the config file) a file path"
    assert json.loads(done.stdout) == [
        f"the ledger {mount / 'l.db'} cannot be written: this user cannot write in {mount}"
        " (a read-only file system)",
        f"{fix} in a folder you can write, or make {mount} writable",
    ]
    assert list(mount.iterdir()) == []


def test_default_ledger_path(tmp_path: Path) -> None:
    assert default_ledger_path(tmp_path) == str(tmp_path / "ledger.db")


def test_a_failing_read_is_a_ledger_error_naming_the_read(tmp_path: Path) -> None:
    from s3stow.ledger.sql import first_line

    db = tmp_path / "l.db"
    ledger = open_ledger(str(db))
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE runs")
    with pytest.raises(LedgerError, match=r"^cannot read the ledger: no such table: runs$"):
        ledger.run_info("r")
    ledger.close()
    assert first_line(RuntimeError()) == "RuntimeError"
    assert first_line(RuntimeError(f"postgresql://u:{TOKEN}@h/x\nmore")) == "postgresql://u:***@h/x"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_watchs_batches_are_found_by_its_id_and_no_other(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``batches``: ``<id>.<n>`` in order; ``_`` and ``%`` in an id are not wildcards."""
    url = (
        str(tmp_path / "l.db") if backend == "sqlite" else request.getfixturevalue("pg_schema_url")
    )
    ledger = open_ledger(url)
    for run in ("w_1.1", "w_1.2", "wx1.1", "w_1", "w_10.1", "w%.1"):
        ledger.start_run(run, command="watch", bucket="b", prefix="p/", sources=[], settings={})
    assert [r["run_id"] for r in ledger.batches("w_1")] == ["w_1.1", "w_1.2"]
    assert [r["run_id"] for r in ledger.batches("w%")] == ["w%.1"]
    assert ledger.batches("w") == []
    ledger.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_forget_drops_only_rows_still_failed_and_keeps_the_history(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """``retry --forget``: the selected failed/changed rows go in one transaction; a row
    that became done since it was read stays; the ``attempts`` history stays."""
    url = (
        str(tmp_path / "l.db") if backend == "sqlite" else request.getfixturevalue("pg_schema_url")
    )
    ledger = open_ledger(url)
    ledger.record(_result("gone", Status.FAILED, error_class="SourceGone"), mtime_ns=1, run_id="r")
    ledger.record(_result("again", Status.CHANGED), mtime_ns=1, run_id="r")
    ledger.record(_result("kept", Status.FAILED), mtime_ns=1, run_id="r")
    chosen = [e for e in ledger.items(statuses=[Status.FAILED, Status.CHANGED]) if e.key != "kept"]
    ledger.record(_result("again"), mtime_ns=1, run_id="r2")  # done meanwhile
    ledger.flush()
    assert ledger.forget(chosen) == 1
    assert [e.key for e in ledger.items()] == ["again", "kept"]
    assert ledger.items(statuses=[Status.DONE]).__next__().key == "again"
    with ledger.database.read() as session:
        history = sorted(row[0] for row in session.execute("SELECT key FROM attempts"))
    assert history == ["again", "gone", "kept"]
    assert ledger.forget([]) == 0
    ledger.close()
