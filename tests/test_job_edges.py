"""Distributed jobs at their edges: stale completions, vanished uploads, database drops,
stale ledger writes, concurrent schema creation, one job-wide configuration.

Every test has a PostgreSQL schema of its own (``pg_schema_url``), so the job tables
start empty and nothing collides with tests running beside it.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import make_tree
from tests.tcpproxy import TcpProxy

PART_ENV = {"S3STOW_PART_SIZE": "5MiB", "S3STOW_MULTIPART_THRESHOLD": "5MiB"}
BIG = 2 * 5 * 1024 * 1024 + 12345  # 3 parts of 5 MiB, the last one short
needs_sigstop = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="POSIX signals")


def _rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def _states(url: str, job: str) -> dict[str, int]:
    sql = "SELECT state, count(*) FROM job_items WHERE job = %s GROUP BY state"
    return dict(_rows(url, sql, job))  # type: ignore[arg-type]


def _wait(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _plan(
    cli: Any,
    url: str,
    job: str,
    bucket: str,
    *extra: str,
    env: dict[str, str] = PART_ENV,
    code: int = 0,
) -> Any:
    result = cli("job", "plan", "src", f"s3://{bucket}/p", "--job", job, "--ledger", url, *extra,
                 env=env)  # fmt: skip
    assert result.code == code, result.output
    return result


def _last_json(out: str) -> dict[str, Any]:
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _open_uploads(s3: Any, bucket: str) -> list[Any]:
    return s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])  # type: ignore[no-any-return]


def _ledger(url: str, bucket: str) -> dict[str, tuple[str, int]]:
    sql = "SELECT key, status, attempts FROM items WHERE bucket = %s"
    return {key: (status, attempts) for key, status, attempts in _rows(url, sql, bucket)}


@pytest.fixture
def pg_proxy(pg_schema_url: str) -> Iterator[TcpProxy]:
    proxy = TcpProxy(5432)
    proxy.start()
    yield proxy
    proxy.stop()


def _via(proxy: TcpProxy, url: str) -> str:
    """``url`` through the proxy, with a short connect timeout (a black hole answers nothing)."""
    return url.replace(":5432/", f":{proxy.port}/", 1) + "&connect_timeout=2"


# ---- 1. no stale completion ------------------------------------------------------------


@needs_sigstop
def test_a_completion_paused_past_a_replan_is_not_recorded_done(
    proxied_cli,
    proxy,
    s3,
    bucket,
    pg_schema_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """The probe's reproduction: the completer pauses inside Complete; meanwhile the file
    is rewritten (same size) and re-planned. The old upload may land in S3, but it is not
    recorded done over the new file: the worker loses the item and uploads the new bytes."""
    make_tree(tmp_path / "src", {"big.bin": BIG})
    job = f"stale-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, pg_schema_url, job, bucket, "--split-above", "8MiB")
    proxy.add(r"^POST .*uploadId=", "delay", times=1, delay=2.0)  # the first Complete
    worker = proxied_cli.start(
        "--json", "job", "work", "--job", job, "--ledger", pg_schema_url, "--lease", "2",
        "--split-above", "8MiB",
    )  # fmt: skip
    _wait(lambda: len(proxy.requests(r"^POST .*uploadId=")) >= 1)
    worker.send_signal(signal.SIGSTOP)
    try:
        path = tmp_path / "src" / "big.bin"
        with path.open("r+b") as handle:
            handle.write(os.urandom(1024 * 1024))
        _plan(proxied_cli, pg_schema_url, job, bucket, "--split-above", "8MiB")
        time.sleep(2.5)  # the delayed Complete of the old bytes reaches S3
    finally:
        worker.send_signal(signal.SIGCONT)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, out + err
    assert s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read() == path.read_bytes()
    assert _states(pg_schema_url, job) == {"done": 1}
    assert _ledger(pg_schema_url, bucket)["p/big.bin"][0] == "done"
    assert _last_json(out)["lost_leases"] == 1
    assert _open_uploads(s3, bucket) == []


@pytest.mark.skipif(sys.platform == "win32", reason="Windows has no inode change time")
def test_a_split_file_rewritten_in_place_is_caught_before_complete(
    proxied_cli,
    proxy,
    s3,
    bucket,
    pg_schema_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Same size, mtime put back: only the inode change time tells. The completion checks
    it before Complete, so the object never holds a mix of two versions."""
    make_tree(tmp_path / "src", {"big.bin": BIG})
    job = f"inplace-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, pg_schema_url, job, bucket, "--split-above", "8MiB")
    proxy.add(r"^PUT .*partNumber=3", "delay", times=1, delay=1.5)
    worker = proxied_cli.start(
        "job", "work", "--job", job, "--ledger", pg_schema_url, "--split-above", "8MiB",
        "--concurrency", "1",
    )  # fmt: skip
    _wait(lambda: len(proxy.requests(r"^PUT .*partNumber=3")) >= 1)
    path = tmp_path / "src" / "big.bin"
    before = path.stat()
    with path.open("r+b") as handle:
        handle.write(os.urandom(1024 * 1024))  # inside part 1, which S3 already has
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 1, out + err
    assert _states(pg_schema_url, job) == {"failed": 1}
    sql = "SELECT error_class FROM job_items WHERE job = %s"
    assert _rows(pg_schema_url, sql, job) == [("SourceChanged",)]
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="p/")
    assert _open_uploads(s3, bucket) == []


def test_an_old_job_database_gains_the_new_columns(pg_schema_url: str) -> None:
    """Job tables made by an earlier s3stow (no version columns) are migrated in place."""
    from s3stow.job.queue import JobQueue
    from s3stow.ledger import open_ledger

    with psycopg.connect(pg_schema_url) as conn:
        conn.execute(
            "CREATE TABLE job_items (id BIGSERIAL PRIMARY KEY, job VARCHAR(255) NOT NULL,"
            " path TEXT NOT NULL, rel_path TEXT NOT NULL, key TEXT NOT NULL,"
            " size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, grp VARCHAR(255),"
            " state VARCHAR(16) NOT NULL, lease_owner VARCHAR(128),"
            " lease_until TIMESTAMP WITH TIME ZONE, attempts INTEGER NOT NULL,"
            " error_class VARCHAR(64), error TEXT, done_by VARCHAR(128),"
            " CONSTRAINT uq_job_items_key UNIQUE (job, key))"
        )
        conn.execute(
            "INSERT INTO job_items (job, path, rel_path, key, size, mtime_ns, state, attempts)"
            " VALUES ('old', '/x/a', 'a', 'p/a', 1, 1, 'pending', 0)"
        )
    ledger = open_ledger(pg_schema_url)
    try:
        queue = JobQueue(ledger.engine, "old")
        claimed = queue.claim("w1", limit=5, lease=30)
        assert [c.key for c in claimed] == ["p/a"]
        assert claimed[0].version == 1
    finally:
        ledger.close()
    with psycopg.connect(pg_schema_url) as conn:
        columns = {
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_name = 'job_items' AND table_schema = current_schema()"
            )
        }
    assert "version" in columns


# ---- 2. a vanished multipart upload ----------------------------------------------------


def _abort_all(s3: Any, bucket: str) -> Any:
    """A proxy callback: abort every open upload of ``bucket`` in the server, as a lifecycle
    rule or an operator would (the proxy then answers NoSuchUpload, as S3 does)."""

    def abort(_line: str) -> None:
        for upload in _open_uploads(s3, bucket):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])

    return abort


def test_a_vanished_upload_restarts_the_split(
    proxied_cli,
    proxy,
    s3,
    bucket,
    pg_schema_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """A part meets NoSuchUpload: the split starts again with a new upload (it used to stay
    claimed, renewed by the heartbeat, forever)."""
    tree = make_tree(tmp_path / "src", {"big.bin": BIG})
    job = f"vanish-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, pg_schema_url, job, bucket, "--split-above", "8MiB")
    proxy.add(r"^PUT .*partNumber=2", "status", times=1, status=404, code="NoSuchUpload",
              callback=_abort_all(s3, bucket))  # fmt: skip
    worker = proxied_cli(
        "job", "work", "--job", job, "--ledger", pg_schema_url, "--split-above", "8MiB",
        "--concurrency", "1", timeout=60,
    )  # fmt: skip
    assert worker.code == 0, worker.output
    assert "vanished" in worker.stderr
    assert s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read() == tree["big.bin"]
    assert _states(pg_schema_url, job) == {"done": 1}
    assert _rows(pg_schema_url, "SELECT restarts FROM job_uploads") == [(1,)]
    assert len(proxy.requests(r"^POST .*uploads")) == 2  # a second CreateMultipartUpload
    assert _open_uploads(s3, bucket) == []


def test_an_upload_that_keeps_vanishing_fails_its_item(
    proxied_cli,
    proxy,
    s3,
    bucket,
    pg_schema_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Every Complete finds the upload gone (moto then answers 500 to the retries: the
    worker asks ListParts, which says NoSuchUpload). After three new uploads, the fourth
    vanishing fails the item with the reason."""
    make_tree(tmp_path / "src", {"big.bin": BIG})
    job = f"vanish3-{uuid.uuid4().hex[:8]}"
    fast = {**PART_ENV, "S3STOW_RETRY_BASE_DELAY": "0.01"}
    result = proxied_cli("job", "plan", "src", f"s3://{bucket}/p", "--job", job, "--ledger",
                         pg_schema_url, "--split-above", "8MiB", env=fast)  # fmt: skip
    assert result.code == 0, result.output
    proxy.add(r"^POST .*uploadId=", "status", times=1000, status=404, code="NoSuchUpload",
              callback=_abort_all(s3, bucket))  # fmt: skip
    worker = proxied_cli(
        "job", "work", "--job", job, "--ledger", pg_schema_url, "--split-above", "8MiB",
        timeout=90,
    )  # fmt: skip
    assert worker.code == 1, worker.output
    assert _states(pg_schema_url, job) == {"failed": 1}
    sql = "SELECT error_class, error FROM job_items WHERE job = %s"
    ((error_class, error),) = _rows(pg_schema_url, sql, job)
    assert error_class == "NoSuchUpload"
    assert "vanished 4 times, started again 3 times" in error
    assert _rows(pg_schema_url, "SELECT restarts FROM job_uploads") == [(3,)]
    assert _open_uploads(s3, bucket) == []


# ---- 3. database drops -------------------------------------------------------------------


def test_workers_ride_out_dropped_database_connections(
    proxied_cli,
    proxy,
    s3,
    bucket,
    pg_schema_url: str,
    pg_proxy: TcpProxy,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    tree = make_tree(tmp_path / "src", {f"f{i:02d}.bin": 700 for i in range(24)})
    job = f"drops-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, pg_schema_url, job, bucket)
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.15)
    url = _via(pg_proxy, pg_schema_url)
    work = ("--json", "job", "work", "--job", job, "--ledger", url, "--batch", "3", "--lease", "5")
    workers = [proxied_cli.start(*work, "--concurrency", "2") for _ in range(2)]
    # A worker that cannot reach the database when it starts exits at once (exit 3: a
    # wrong URL or password should not wait); the drops start once both are working.
    _wait(lambda: _rows(pg_schema_url, "SELECT count(*) FROM job_workers")[0][0] == 2)
    for _ in range(4):  # queries stall, then every connection is reset under them
        pg_proxy.blackhole()
        time.sleep(0.5)
        pg_proxy.heal()
        time.sleep(0.3)
    outputs = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert _states(pg_schema_url, job) == {"done": 24}
    ledger = _ledger(pg_schema_url, bucket)
    assert {f"p/{rel}" for rel in tree} == set(ledger)
    assert set(ledger.values()) == {("done", 1)}  # each recorded exactly once
    for rel, data in tree.items():
        assert s3.get_object(Bucket=bucket, Key=f"p/{rel}")["Body"].read() == data


def test_a_database_gone_past_the_deadline_stops_the_worker_clearly(
    proxied_cli,
    proxy,
    bucket,
    pg_schema_url: str,
    pg_proxy: TcpProxy,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    make_tree(tmp_path / "src", {f"f{i:02d}.bin": 100 for i in range(10)})
    job = f"dbgone-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, pg_schema_url, job, bucket)
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.3)
    url = _via(pg_proxy, pg_schema_url)
    worker = proxied_cli.start(
        "job", "work", "--job", job, "--ledger", url, "--batch", "2", "--db-timeout", "3"
    )
    _wait(lambda: len(proxy.requests(r"^PUT ")) >= 1)
    pg_proxy.refuse()
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 3, out + err
    assert "job database unreachable for 3 s" in err
    assert "Traceback" not in err
    assert "please report" not in err


# ---- 4. a stale worker and the shared ledger ---------------------------------------------


@needs_sigstop
def test_a_stale_worker_neither_overwrites_the_ledger_nor_fails_the_run(
    proxied_cli,
    proxy,
    s3,
    bucket,
    pg_schema_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """A pauses mid-multipart past its lease; B resumes the upload and records it done;
    A, resumed, meets NoSuchUpload. A's failure is a lost lease: not written over B's
    `done`, and not exit 1."""
    tree = make_tree(tmp_path / "src", {"mid.bin": BIG})
    job = f"staleledger-{uuid.uuid4().hex[:8]}"
    fast = {**PART_ENV, "S3STOW_RETRY_BASE_DELAY": "0.01", "S3STOW_MAX_ATTEMPTS": "1"}
    _plan(proxied_cli, pg_schema_url, job, bucket, "--split-above", "off", env=fast)
    proxy.add(r"^PUT .*partNumber=2", "delay", times=1, delay=1.0)
    work = ("--json", "job", "work", "--job", job, "--ledger", pg_schema_url, "--lease", "1",
            "--concurrency", "1")  # fmt: skip
    stale = proxied_cli.start(*work)
    _wait(lambda: len(proxy.requests(r"^PUT .*partNumber=2")) >= 1)
    stale.send_signal(signal.SIGSTOP)
    try:
        sql = "SELECT count(*) FROM job_items WHERE job = %s AND lease_until < now()"
        _wait(lambda: _rows(pg_schema_url, sql, job)[0][0] == 1)
        other = proxied_cli(*work)
        assert other.code == 0, other.output
        assert _ledger(pg_schema_url, bucket) == {"p/mid.bin": ("done", 1)}
    finally:
        stale.send_signal(signal.SIGCONT)
    out, err = stale.communicate(timeout=60)
    assert stale.returncode == 0, out + err
    assert _last_json(out)["lost_leases"] == 1
    assert _ledger(pg_schema_url, bucket) == {"p/mid.bin": ("done", 1)}
    assert _states(pg_schema_url, job) == {"done": 1}
    assert s3.get_object(Bucket=bucket, Key="p/mid.bin")["Body"].read() == tree["mid.bin"]


# ---- 5. concurrent first plans -------------------------------------------------------------


def test_concurrent_first_plans_on_an_empty_database(
    proxied_cli,
    bucket,
    pg_schema_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    make_tree(tmp_path / "src", {f"f{i}.bin": 10 for i in range(5)})
    job = f"first-{uuid.uuid4().hex[:8]}"
    planners = [
        proxied_cli.start(
            "job", "plan", "src", f"s3://{bucket}/p", "--job", job, "--ledger", pg_schema_url
        )
        for _ in range(4)
    ]
    results = [(p.communicate(timeout=60), p.returncode) for p in planners]
    assert [code for _, code in results] == [0, 0, 0, 0], results
    assert _states(pg_schema_url, job) == {"pending": 5}


# ---- 6. one job-wide configuration ---------------------------------------------------------


def test_the_split_threshold_is_the_jobs_and_a_contradiction_is_refused(
    proxied_cli,
    s3,
    bucket,
    pg_schema_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    tree = make_tree(tmp_path / "src", {"big.bin": BIG, "small.txt": 100})
    job = f"wide-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, pg_schema_url, job, bucket, "--split-above", "8MiB")
    refused = proxied_cli(
        "job", "work", "--job", job, "--ledger", pg_schema_url, "--split-above", "off"
    )
    assert refused.code == 2
    assert "--split-above off" in refused.stderr
    assert "8.0 MiB" in refused.stderr
    worker = proxied_cli("job", "work", "--job", job, "--ledger", pg_schema_url)  # no flag
    assert worker.code == 0, worker.output
    assert _rows(pg_schema_url, "SELECT count(*) FROM job_parts")[0][0] == 3  # split by the job
    assert s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read() == tree["big.bin"]
    status = proxied_cli("job", "status", "--job", job, "--ledger", pg_schema_url)
    assert "split above 8.0 MiB" in status.stdout


def test_the_job_stores_no_database_password(
    proxied_cli,
    bucket,
    pg_schema_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    make_tree(tmp_path / "src", {"a.txt": 5})
    secret = pg_schema_url.replace("postgres@", "postgres:hunter2secret@", 1)  # trust: ignored
    _plan(proxied_cli, secret, f"pw-{uuid.uuid4().hex[:8]}", bucket)
    ((settings,),) = _rows(pg_schema_url, "SELECT settings FROM jobs")
    assert "hunter2secret" not in settings


def test_deleted_files_are_gone_not_done(
    proxied_cli,
    bucket,
    pg_schema_url: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    make_tree(tmp_path / "src", {f"f{i}.txt": 50 for i in range(4)})
    job = f"gone-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, pg_schema_url, job, bucket)
    (tmp_path / "src" / "f0.txt").unlink()  # deleted between plan and work
    worker = proxied_cli("job", "work", "--job", job, "--ledger", pg_schema_url)
    assert worker.code == 0, worker.output
    assert _states(pg_schema_url, job) == {"done": 3, "gone": 1}
    (tmp_path / "src" / "f1.txt").unlink()  # deleted after its upload
    planned = _plan(proxied_cli, pg_schema_url, job, bucket)
    assert "1 gone" in planned.stdout
    assert _states(pg_schema_url, job) == {"done": 2, "gone": 2}
    status = json.loads(
        proxied_cli("--json", "job", "status", "--job", job, "--ledger", pg_schema_url).stdout
    )
    assert status["items"] == {"done": 2, "gone": 2}
    (tmp_path / "src" / "f1.txt").write_text("back again")
    _plan(proxied_cli, pg_schema_url, job, bucket)
    assert _states(pg_schema_url, job) == {"done": 2, "gone": 1, "pending": 1}


# ---- keys with a '\' on a server that stores it as '/' ------------------------------------

POSIX_ONLY = pytest.mark.skipif(os.name == "nt", reason="a backslash is a separator on Windows")


def _seaweed_keys(s3: Any, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


@POSIX_ONLY
def test_a_job_plans_keys_as_a_folding_server_stores_them(
    seaweed_cli: Any, seaweed_s3: Any, seaweed_bucket: str, pg_schema_url: str, tmp_path: Path
) -> None:
    """SeaweedFS stores ``a\\b`` as ``a/b``. The plan folds such keys, so the workers
    send, record and claim the key the server has; a file whose folded key is another
    file's is not planned. Before, a worker folded a small file's key itself, never
    matched its outcome to the claimed item and worked the job forever; a split file's
    parts went under the unfolded key."""
    tree = make_tree(
        tmp_path / "src",
        {"big\\x.bin": BIG, "small\\y.txt": 100, "ok.txt": 5, "dup\\z.txt": 7, "dup/z.txt": 9},
    )
    job = f"fold-{uuid.uuid4().hex[:8]}"
    planned = _plan(  # exit 1: a file is not planned (as an upload's collision fails)
        seaweed_cli, pg_schema_url, job, seaweed_bucket, "--split-above", "8MiB", code=1
    )
    assert "not planned" in planned.stderr
    assert "dup" in planned.stderr
    assert "2 files not planned, never to be uploaded by this job" in planned.stderr
    keys = _rows(pg_schema_url, "SELECT key FROM job_items WHERE job = %s ORDER BY key", job)
    assert [k for (k,) in keys] == ["p/big/x.bin", "p/ok.txt", "p/small/y.txt"]
    worker = seaweed_cli(
        "job", "work", "--job", job, "--ledger", pg_schema_url, env=PART_ENV, timeout=240
    )
    assert worker.code == 0, worker.output
    assert _states(pg_schema_url, job) == {"done": 3}
    assert _seaweed_keys(seaweed_s3, seaweed_bucket) == ["p/big/x.bin", "p/ok.txt", "p/small/y.txt"]
    body = seaweed_s3.get_object(Bucket=seaweed_bucket, Key="p/big/x.bin")["Body"].read()
    assert body == tree["big\\x.bin"]
    assert set(_ledger(pg_schema_url, seaweed_bucket)) == {
        "p/big/x.bin",
        "p/ok.txt",
        "p/small/y.txt",
    }


@POSIX_ONLY
def test_a_worker_refuses_a_key_the_plan_could_not_fold(
    seaweed_cli: Any, seaweed_s3: Any, seaweed_bucket: str, pg_schema_url: str, tmp_path: Path
) -> None:
    """A plan that could not ask the server (here: wrong credentials) keeps the key; a
    worker that finds the server folds it fails the item, saying to plan again."""
    make_tree(tmp_path / "src", {"small\\y.txt": 100, "ok.txt": 5})
    job = f"nofold-{uuid.uuid4().hex[:8]}"
    blind = {**PART_ENV, "AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "nothing"}
    _plan(seaweed_cli, pg_schema_url, job, seaweed_bucket, env=blind)
    worker = seaweed_cli("job", "work", "--job", job, "--ledger", pg_schema_url, timeout=240)
    assert worker.code == 1, worker.output
    assert _states(pg_schema_url, job) == {"done": 1, "failed": 1}
    assert "job plan" in worker.output
    assert "stores as '/'" in worker.output
    errors = _rows(pg_schema_url, "SELECT error_class FROM job_items WHERE state = 'failed'")
    assert errors == [("UnsafeKey",)]
    assert _seaweed_keys(seaweed_s3, seaweed_bucket) == ["p/ok.txt"]


def test_a_split_file_done_on_another_endpoint_is_sent_again(
    s3_server: Any, seaweed_cli: Any, seaweed_s3: Any, seaweed_bucket: str,
    pg_schema_url: str, tmp_path: Path,
) -> None:  # fmt: skip
    """A worker's ledger row for a split file proves it only on the S3 it was sent to:
    the same job run against another endpoint with the same bucket name splits and
    sends it there (it used to record it done without a request)."""
    from tests.conftest import Cli, s3_client

    s3_client(s3_server.endpoint_url).create_bucket(Bucket=seaweed_bucket)
    tree = make_tree(tmp_path / "src", {"big.bin": BIG})
    moto_cli = Cli(s3_server.endpoint_url, tmp_path)
    for cli, job in (
        (moto_cli, f"m-{uuid.uuid4().hex[:8]}"),
        (seaweed_cli, f"s-{uuid.uuid4().hex[:8]}"),
    ):
        _plan(cli, pg_schema_url, job, seaweed_bucket, "--split-above", "8MiB")
        worker = cli("job", "work", "--job", job, "--ledger", pg_schema_url, env=PART_ENV,
                     timeout=240)  # fmt: skip
        assert worker.code == 0, worker.output
    body = seaweed_s3.get_object(Bucket=seaweed_bucket, Key="p/big.bin")["Body"].read()
    assert body == tree["big.bin"]
