"""The job queue's compare-and-set steps on a real PostgreSQL (no S3): a claim is a
version, every write of it is conditional on that version, and every step can run
twice (a commit whose answer was lost) without doing its work twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from s3stow.job.queue import JobQueue, Outcome
from s3stow.ledger import open_ledger
from s3stow.ledger.rows import ItemRecord
from s3stow.localfiles import FileIdentity
from s3stow.models import SourceFile, Status, UploadResult


@pytest.fixture
def queue(pg_schema_url: str) -> Iterator[JobQueue]:
    ledger = open_ledger(pg_schema_url)
    yield JobQueue(ledger.engine, "j")
    ledger.close()


def _plan(queue: JobQueue, mtime_ns: int = 1, names: tuple[str, ...] = ("a",)) -> None:
    files = [(SourceFile(Path(f"/x/{n}"), n, 3, mtime_ns, Path("/x")), n) for n in names]
    with queue.plan(bucket="b", prefix="", settings={}) as plan:
        plan.add(files)


def _done(item: object) -> Outcome:
    result = UploadResult(Path("/x/a"), "b", "a", Status.DONE, size=3, etag="e")
    return Outcome(item, "done", record=ItemRecord(result, 1, "run"))  # type: ignore[arg-type]


def _ledger(url: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT key, status, attempts FROM items").fetchall()


def test_an_outcome_under_a_superseded_version_is_not_written(
    queue: JobQueue, pg_schema_url: str
) -> None:
    _plan(queue)
    (item,) = queue.claim("w1", limit=10, lease=60)
    _plan(queue, mtime_ns=2)  # the file changed: a new plan resets the item
    (again,) = queue.claim("w1", limit=10, lease=60)  # same worker, same state: new version
    assert again.version == item.version + 2
    kept, lost = queue.record("w1", [_done(item)])  # the outcome of the old file
    assert (kept, len(lost)) == ([], 1)
    assert _ledger(pg_schema_url) == []  # nothing in the ledger either
    kept, lost = queue.record("w1", [_done(again)])
    assert (len(kept), lost) == (1, [])


def test_a_replayed_record_is_recognised_and_written_once(
    queue: JobQueue, pg_schema_url: str
) -> None:
    _plan(queue)
    (item,) = queue.claim("w1", limit=10, lease=60)
    kept, _ = queue.record("w1", [_done(item)])
    replay, lost = queue.record("w1", [_done(item)])  # as if the first answer was lost
    assert (len(kept), len(replay), lost) == (1, 1, [])
    assert _ledger(pg_schema_url) == [("a", "done", 1)]
    stale, lost = queue.record("w2", [_done(item)])  # another worker's is not a replay
    assert (stale, len(lost)) == ([], 1)


def test_a_replayed_claim_returns_what_the_worker_already_holds(queue: JobQueue) -> None:
    _plan(queue, names=("a", "b", "c"))
    first = queue.claim("w1", limit=2, lease=60)
    again = queue.claim("w1", limit=2, lease=60)  # the first claim's answer was lost
    assert again == first
    assert [c.key for c in queue.claim("w2", limit=5, lease=60)] == ["c"]


def test_a_part_sent_to_a_replaced_upload_is_not_recorded(queue: JobQueue) -> None:
    _plan(queue)
    (item,) = queue.claim("w1", limit=1, lease=60)
    split = queue.split
    assert split.open(
        "w1", item, upload_id="u1", part_size=5, ranges=[(1, 0, 5), (2, 5, 5)],
        identity=FileIdentity(10, 1), checksum_algorithm=None,
    )  # fmt: skip
    part = split.claim_parts("w1", limit=1, lease=60)[0]
    restart = split.completions.request_restart("w2", part.file, lease=60, max_restarts=3)
    assert not isinstance(restart, str)
    assert split.completions.restarted("w2", restart.file, upload_id="u2")
    assert not split.part_done("w1", part, etag="e", checksum=None)  # sent to u1
    (fresh,) = [p for p in split.claim_parts("w1", limit=5, lease=60) if p.number == 1]
    assert fresh.file.upload_id == "u2"
    assert split.part_done("w1", fresh, etag="e", checksum=None)


def test_transient_database_failures_are_told_from_the_rest() -> None:
    from sqlalchemy.exc import IntegrityError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from s3stow.job.db import transient

    dropped = OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed"))
    assert transient(dropped)
    assert transient(PoolTimeout("QueuePool limit reached"))
    assert not transient(IntegrityError("INSERT", {}, psycopg.IntegrityError("duplicate")))


def test_a_step_is_retried_until_the_patience_runs_out(pg_schema_url: str) -> None:
    from sqlalchemy.exc import OperationalError

    from s3stow.job.db import DatabaseUnreachable, JobDatabase

    ledger = open_ledger(pg_schema_url)
    stopped: list[bool] = []
    db = JobDatabase(ledger.engine, patience=0.5, on_unreachable=lambda: stopped.append(True))
    tries: list[int] = []

    def flaky() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise OperationalError("SELECT 1", {}, psycopg.OperationalError("reset"))
        return "answer"

    assert db.call(flaky, what="flaky") == "answer"
    assert len(tries) == 3

    def down() -> str:
        raise OperationalError("SELECT 1", {}, psycopg.OperationalError("refused"))

    with pytest.raises(DatabaseUnreachable, match=r"unreachable for 0\.5 s"):
        db.call(down, what="down")
    assert stopped == [True]
    with pytest.raises(DatabaseUnreachable):  # every later step fails at once
        db.run(lambda conn: conn.exec_driver_sql("SELECT 1"), what="after")
    ledger.close()


def test_a_paused_workers_transaction_ends_and_frees_its_rows(pg_schema_url: str) -> None:
    """A worker stopped (SIGSTOP) inside a transaction would keep its row locks, and every
    other worker's claim would skip its items long after the lease expired: the server
    ends such a session after the worker's idle timeout."""
    from sqlalchemy.exc import DBAPIError

    from s3stow.job.db import JobDatabase, transient

    ledger = open_ledger(pg_schema_url)
    try:
        queue = JobQueue(JobDatabase(ledger.engine, idle_timeout=1), "j")
        _plan(queue)
        with ledger.engine.connect() as paused:
            paused.exec_driver_sql("SELECT id FROM job_items FOR UPDATE")  # then nothing
            time.sleep(1.5)
            assert [c.key for c in queue.claim("w2", limit=5, lease=60)] == ["a"]
            with pytest.raises(DBAPIError) as ended:  # the worker, resumed, retries the step
                paused.exec_driver_sql("SELECT 1")
            assert transient(ended.value)
    finally:
        ledger.close()


def test_a_plan_that_loses_its_connection_marks_nothing_gone(
    pg_schema_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The keys a plan found live in a temporary table on its own connection: when that
    connection drops, its batches still reach the queue (retried), but nothing is
    marked gone, since the plan no longer knows what it found."""
    from tests.tcpproxy import TcpProxy

    proxy = TcpProxy(5432)
    proxy.start()
    ledger = open_ledger(pg_schema_url.replace(":5432/", f":{proxy.port}/", 1))
    try:
        queue = JobQueue(ledger.engine, "j")
        _plan(queue, names=("old",))
        files = [(SourceFile(Path(f"/x/{n}"), n, 3, 1, Path("/x")), n) for n in "ab"]
        with queue.plan(bucket="b", prefix="", settings={}) as plan:
            plan.add(files[:1])
            proxy.drop()
            plan.add(files[1:])
            assert plan.mark_gone(["/x"]) is None
        assert "marked gone by the next one" in caplog.text
        with psycopg.connect(pg_schema_url) as conn:
            states = conn.execute("SELECT key, state FROM job_items ORDER BY key").fetchall()
        assert states == [("a", "pending"), ("b", "pending"), ("old", "pending")]
    finally:
        ledger.close()
        proxy.stop()
