"""The ledger's database layer: SQLite through the standard library (no SQLAlchemy on
the upload path), its generated DDL kept equal to the SQLAlchemy declaration, and
older ledgers brought up to date."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from contextlib import suppress
from pathlib import Path

import pytest

from s3stow.errors import LedgerError
from s3stow.ledger import MultipartState, open_ledger, sqlite_ddl
from s3stow.ledger.sqlite_backend import SqliteDatabase
from s3stow.models import PartRecord, Status, UploadResult


def _result(key: str, *, status: Status = Status.DONE, attempts: int = 1) -> UploadResult:
    return UploadResult(
        path=Path("/data") / key,
        bucket="b",
        key=key,
        size=3,
        status=status,
        attempts=attempts,
        checksum="AAAA",
        checksum_algorithm="CRC64NVME",
        etag="e",
        error="boom" if status is Status.FAILED else None,
        error_class="Transient" if status is Status.FAILED else None,
    )


def test_generated_ddl_matches_the_sqlalchemy_schema() -> None:
    assert sqlite_ddl.generate() == Path(sqlite_ddl.__file__).read_text(encoding="utf-8"), (
        "schema.py changed: python -m s3stow.ledger.sqlite_ddl > src/s3stow/ledger/sqlite_ddl.py"
    )


def test_a_new_ledger_from_the_ddl_has_the_declared_columns(tmp_path: Path) -> None:
    from s3stow.ledger import schema

    ledger = open_ledger(str(tmp_path / "l.db"))
    ledger.close()
    connection = sqlite3.connect(tmp_path / "l.db")
    for table in schema.metadata.sorted_tables:
        columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table.name})")]
        assert columns == [column.name for column in table.columns]
    connection.close()
    assert (tmp_path / "l.db").stat().st_mode & 0o777 == 0o600


PROBE = """
import sys
import uuid
from pathlib import Path
from s3stow.ledger import open_ledger
from s3stow.models import PartRecord, Status, UploadResult
path = sys.argv[1]
for run in ("r1", "r2"):  # create, then reopen
    ledger = open_ledger(path)
    ledger.start_run(run, command="upload", bucket="b", prefix="", sources=["/d"], settings={})
    ledger.record(UploadResult(path=Path("/d/a"), bucket="b", key="a", size=1,
                               status=Status.DONE), mtime_ns=5, run_id=run)
    ledger.flush()
    assert ledger.lookup("b", ["a"])["a"].mtime_ns == 5
    ledger.finish_run(run, status="done", summary={})
    ledger.close()
print("sqlalchemy" in sys.modules)
"""


def test_the_upload_path_never_imports_sqlalchemy_for_a_sqlite_ledger(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(tmp_path / "l.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.strip() == "False", done.stderr


def test_an_older_ledger_gains_the_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    connection = sqlite3.connect(path)
    for statement in sqlite_ddl.STATEMENTS:
        if statement.startswith("CREATE TABLE items"):  # as before grp, ext, store existed
            statement = statement.replace("grp VARCHAR(255), ext VARCHAR(32), ", "")
            statement = statement.replace(", store TEXT", "")
            assert "grp" not in statement
            assert "store" not in statement
        connection.execute(statement)
    connection.execute(
        "INSERT INTO items (bucket, key, source_path, size, mtime_ns, status, attempts,"
        " run_id, created_at, updated_at) VALUES ('b', 'old', '/o', 1, 1, 'done', 1, 'r', 0, 0)"
    )
    connection.commit()
    connection.close()
    assert SqliteDatabase(path).missing_columns() == ["items.grp", "items.ext", "items.store"]

    ledger = open_ledger(str(path))
    ledger.record(_result("new.txt"), mtime_ns=1, run_id="r2", group="photos", store="aws:aws")
    ledger.flush()
    found = ledger.lookup("b", ["old", "new.txt"])
    assert {key: entry.store for key, entry in found.items()} == {"old": None, "new.txt": "aws:aws"}
    ledger.close()
    assert SqliteDatabase(path).missing_columns() == []


def test_outcomes_upsert_and_count_attempts(tmp_path: Path) -> None:
    ledger = open_ledger(str(tmp_path / "l.db"))
    ledger.record(_result("k", status=Status.FAILED), mtime_ns=1, run_id="r1")
    ledger.flush()
    ledger.record(_result("k", attempts=2), mtime_ns=2, run_id="r2")
    ledger.flush()
    entry = ledger.lookup("b", ["k"])["k"]
    assert (entry.status, entry.attempts, entry.mtime_ns, entry.run_id) == (Status.DONE, 3, 2, "r2")
    assert [e.key for e in ledger.items(statuses=[Status.FAILED])] == []
    assert [e.key for e in ledger.items(statuses=[])] == []
    assert [e.key for e in ledger.items(run_id="r2")] == ["k"]
    ledger.close()


def test_items_under_a_prefix_is_case_sensitive(tmp_path: Path) -> None:
    ledger = open_ledger(str(tmp_path / "l.db"))
    for key in ("Photos/a.jpg", "photos/b.jpg", "photos_c.jpg", "photo%/d.jpg"):
        ledger.record(_result(key), mtime_ns=1, run_id="r")
    assert [e.key for e in ledger.items_under("b", "photos/")] == ["photos/b.jpg"]
    assert [e.key for e in ledger.items_under("b", "photo%")] == ["photo%/d.jpg"]
    assert len(list(ledger.items_under("b", ""))) == 4
    ledger.close()


def test_a_ledger_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the tables you are looking for\n" * 100)
    with pytest.raises(LedgerError, match="cannot open the ledger"):
        open_ledger(str(path))


def test_threads_that_come_and_go_reuse_the_ledger_connections(tmp_path: Path) -> None:
    """A long watch starts new pool threads every cycle: each must not keep its own
    connection (file descriptors would grow for as long as the process runs)."""
    import threading

    ledger = open_ledger(str(tmp_path / "l.db"))
    database = ledger.database
    assert isinstance(database, SqliteDatabase)

    def use(index: int) -> None:
        ledger.record(_result(f"k{index}"), mtime_ns=index, run_id="r")
        ledger.flush()
        assert ledger.lookup("b", [f"k{index}"])

    for round_ in range(20):
        threads = [threading.Thread(target=use, args=(round_ * 3 + i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(database._all) <= 5  # at most the threads using it at once, plus the flusher
    assert len(list(ledger.items())) == 60
    ledger.close()
    assert database._all == []


def test_a_failed_transaction_is_rolled_back_and_the_connection_stays_usable(
    tmp_path: Path,
) -> None:
    database = SqliteDatabase(tmp_path / "l.db")
    assert database.create_if_empty()

    def insert_twice() -> None:
        with database.write() as session:
            session.execute("INSERT INTO s3stow_meta (name, value) VALUES ('a', '1')")
            session.execute("INSERT INTO s3stow_meta (name, value) VALUES ('a', '2')")

    with pytest.raises(sqlite3.IntegrityError):
        insert_twice()
    with database.read() as session:
        assert list(session.execute("SELECT count(*) FROM s3stow_meta WHERE name = 'a'")) == [(0,)]
    database.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_upload_id_and_a_part_are_durable_when_the_call_returns(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    """A part the ledger knows is never sent again after kill -9: so ``record_part`` has
    committed when it returns, whatever the flusher's interval (a second connection,
    as the next run's, sees it)."""
    target = (
        str(tmp_path / "l.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    )
    bucket, upload_id = f"d-{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    state = MultipartState(bucket, "big", upload_id, "/x/big", 12, 1, 5, "crc64nvme")
    writer = open_ledger(target, flush_interval=3600)
    reader = open_ledger(target, flush_interval=3600)
    writer.begin_multipart(state)
    assert reader.multipart_state(bucket, "big") == state
    writer.record_part(upload_id, PartRecord(2, "etag2", "Y2hlY2s=", 5))
    seen = reader.multipart_state(bucket, "big")
    assert seen is not None
    assert seen.parts == (PartRecord(2, "etag2", "Y2hlY2s=", 5),)
    writer.forget_multipart(bucket, "big")
    assert reader.multipart_state(bucket, "big") is None
    writer.close()
    reader.close()


def test_a_ledger_replaced_during_a_run_takes_no_more_records(tmp_path: Path) -> None:
    """Two benchmark runs once shared a ledger path: the second deleted the first's
    ledger (and its run lock) and made a new one there; the first run's next pooled
    connection opened the new file and recorded its files done in it, and the second
    run skipped them as done though its own server never received them (exit 0, 1,966
    of 2,000 objects). A connection that finds another file at the path must fail."""
    import threading

    path = tmp_path / "l.db"
    first = open_ledger(str(path))
    first.record(_result("before"), mtime_ns=1, run_id="first")
    first.flush()
    for leftover in tmp_path.glob("l.db*"):  # what the benchmark did before its next run
        leftover.unlink()
    second = open_ledger(str(path))
    held = threading.Event()
    release = threading.Event()

    def hold_a_connection() -> None:  # the first run's known connection stays busy
        with first.database.read():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold_a_connection)
    holder.start()
    held.wait(10)
    try:
        first.record(_result("after"), mtime_ns=2, run_id="first")
        with pytest.raises(LedgerError, match="deleted or replaced") as caught:
            first.flush()  # needs a second connection: opened by path, on the new file
        assert "a ledger of its own" in str(caught.value.hint)
    finally:
        release.set()
        holder.join()
    assert second.lookup("b", ["before", "after"]) == {}  # nothing of the first run in it
    second.close()
    with suppress(LedgerError):
        first.close()


_ODD = [  # values a ledger row holds: 64-bit extremes, NULL, any text, text that looks like JSON
    (1, 'k/ü 𝄞\n\t"\\', -(2**63), None),
    (2, '["not", "parsed"]', 2**63 - 1, "null"),
    (3, "", 1_700_000_000_123_456_789, "\x01\x7f"),
]


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_fetch_all_returns_what_the_rows_hold(
    tmp_path: Path, request: pytest.FixtureRequest, backend: str
) -> None:
    """``fetch_all`` (one JSON aggregate on SQLite) gives back exactly the rows a plain
    SELECT gives: integers to 64 bits, NULLs, and any text, JSON-looking or not."""
    target = (
        str(tmp_path / "l.db") if backend == "sqlite" else request.getfixturevalue("pg_schema_url")
    )
    ledger = open_ledger(target)
    table = f"odd_{uuid.uuid4().hex[:8]}"
    with ledger.database.write() as session:
        session.execute(f"CREATE TABLE {table} (id BIGINT, name TEXT, big BIGINT, note TEXT)")
        session.executemany(
            f"INSERT INTO {table} VALUES (:id, :name, :big, :note)",
            [dict(zip(("id", "name", "big", "note"), row, strict=True)) for row in _ODD],
        )
    columns = ("id", "name", "big", "note")
    with ledger.database.read() as session:
        got = session.fetch_all(columns, f"FROM {table} WHERE id IN (:a, :b, :c)", _ids())
        plain = list(session.execute(f"SELECT id, name, big, note FROM {table}"))
        none = session.fetch_all(columns, f"FROM {table} WHERE id = :a", {"a": 99})
    assert sorted(got) == sorted(tuple(row) for row in plain) == _ODD
    assert none == []
    ledger.close()


def _ids() -> dict[str, int]:
    return {"a": 1, "b": 2, "c": 3}


def test_fetch_all_on_sqlite_is_one_step_and_steps_rows_where_json_cannot_hold_them(
    tmp_path: Path,
) -> None:
    """On SQLite the rows come as one aggregate (so the sqlite3 module hands the GIL over
    once, not once a row, which a busy second thread turned into 0.45 s for a no-op's
    20,000 lookups); a value JSON cannot hold (a BLOB) falls back to stepping the rows."""
    database = SqliteDatabase(tmp_path / "l.db")
    database.create_if_empty()
    statements: list[str] = []
    with database.write() as session:
        session.execute("CREATE TABLE t (id INTEGER, body)")
        session.executemany("INSERT INTO t VALUES (:id, :body)", [{"id": 1, "body": "text"}])
    with database.read() as session:
        connection = session._connection  # type: ignore[attr-defined]
        connection.set_trace_callback(statements.append)
        assert session.fetch_all(("id", "body"), "FROM t", {}) == [(1, "text")]
        assert [s.split("(")[0] for s in statements] == ["SELECT json_group_array"]
        session.execute("INSERT INTO t VALUES (2, x'00ff')")
        got = session.fetch_all(("id", "body"), "FROM t", {})
        connection.set_trace_callback(None)
    assert sorted(got) == [(1, "text"), (2, b"\x00\xff")]
    database.close()
