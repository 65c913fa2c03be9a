"""Distributed jobs on PostgreSQL: workers share one job; leases survive deaths."""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import make_tree


def _states(url: str, job: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute(
                "SELECT state, count(*) FROM job_items WHERE job = %s GROUP BY state", (job,)
            ).fetchall()
        )


def _done_by(url: str, job: str) -> Counter[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT done_by FROM job_items WHERE job = %s AND state = 'done'", (job,)
        ).fetchall()
    return Counter(r[0] for r in rows)


def _wait(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _plan(
    cli: Any, url: str, job: str, bucket: str, *extra: str, env: dict[str, str] | None = None
) -> None:
    args = ("job", "plan", "src", f"s3://{bucket}/p", "--job", job, "--ledger", url, *extra)
    result = cli(*args, env=env)
    assert result.code == 0, result.output


def test_three_workers_upload_each_file_once(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    postgres_url: str,
    tmp_path: Path,
) -> None:
    tree = make_tree(tmp_path / "src", {f"d{i % 3}/f{i}.bin": 500 for i in range(45)})
    job = f"three-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, postgres_url, job, bucket)
    # The first uploads hang until every worker has started (seconds on a slow CI machine);
    # the others are slowed so that no worker can take the whole job alone.
    proxy.add(r"^PUT ", "delay", times=2, delay=6.0)
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.3)
    work = ("--json", "job", "work", "--job", job, "--ledger", postgres_url)
    workers = [proxied_cli.start(*work, "--batch", "5", "--concurrency", "2") for _ in range(3)]
    outputs = [w.communicate(timeout=120) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    assert _states(postgres_url, job) == {"done": 45}
    puts = Counter(line.split("?")[0] for line in proxy.requests(r"^PUT "))
    assert len(puts) == 45
    assert set(puts.values()) == {1}  # every file uploaded exactly once
    assert len(_done_by(postgres_url, job)) >= 2  # the work was shared
    for rel, data in tree.items():
        assert s3.get_object(Bucket=bucket, Key=f"p/{rel}")["Body"].read() == data
    status = json.loads(
        proxied_cli("--json", "job", "status", "--job", job, "--ledger", postgres_url).stdout
    )
    assert status["items"] == {"done": 45}
    assert len(status["workers"]) == 3


def test_a_killed_workers_items_are_finished_after_its_lease(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    postgres_url: str,
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {f"f{i:02d}.bin": 300 for i in range(20)})
    job = f"kill-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, postgres_url, job, bucket)
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.3)
    victim = proxied_cli.start(
        "job", "work", "--job", job, "--ledger", postgres_url, "--batch", "8", "--lease", "2"
    )
    _wait(lambda: len(proxy.requests(r"^PUT ")) >= 2)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    assert _states(postgres_url, job).get("claimed", 0) > 0  # its claims are orphaned
    proxy.reset()
    survivor = proxied_cli(
        "--json",
        "job",
        "work",
        "--job",
        job,
        "--ledger",
        postgres_url,
        "--batch",
        "4",
        "--lease",
        "2",
        timeout=120,
    )
    assert survivor.code == 0, survivor.output
    assert _states(postgres_url, job) == {"done": 20}
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert len(keys) == 20


def test_a_late_worker_picks_up_work(
    proxied_cli,
    proxy,
    bucket,
    postgres_url: str,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {f"f{i:02d}.bin": 100 for i in range(16)})
    job = f"late-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, postgres_url, job, bucket)
    held = proxy.add(r"^PUT ", "hold", times=1000)  # no PUT ends until both workers sent one
    work = ("job", "work", "--job", job, "--ledger", postgres_url, "--batch", "2")
    first = proxied_cli.start(*work, "--concurrency", "1")
    try:
        _wait(lambda: len(proxy.requests(r"^PUT ")) >= 1)
        late = proxied_cli.start(*work)
        # the first worker has one request in flight: a second PUT is the late worker's
        _wait(lambda: len(proxy.requests(r"^PUT ")) >= 2)
    finally:
        held.release()
    first.communicate(timeout=120)
    late.communicate(timeout=120)
    assert first.returncode == 0
    assert late.returncode == 0
    assert _states(postgres_url, job) == {"done": 16}
    assert len(_done_by(postgres_url, job)) == 2  # both workers finished items


def test_two_planners_at_once_do_not_duplicate(
    proxied_cli,
    bucket,
    postgres_url: str,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {f"f{i:03d}.bin": 10 for i in range(300)})
    job = f"plan-{uuid.uuid4().hex[:8]}"
    planners = [
        proxied_cli.start(
            "job", "plan", "src", f"s3://{bucket}/p", "--job", job, "--ledger", postgres_url
        )
        for _ in range(2)
    ]
    for planner in planners:
        planner.communicate(timeout=60)
        assert planner.returncode == 0
    assert _states(postgres_url, job) == {"pending": 300}


def test_jobs_need_postgresql(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "src").mkdir()
    result = cli("job", "plan", "src", f"s3://{bucket}/p", "--job", "x", "--ledger", "l.db")
    assert result.code == 2
    assert "PostgreSQL" in result.stderr


def _parts_done_by(url: str, job: str) -> Counter[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT done_by FROM job_parts WHERE job = %s AND state = 'done'", (job,)
        ).fetchall()
    return Counter(r[0] for r in rows)


PART_ENV = {"S3STOW_PART_SIZE": "5MiB"}
SPLIT = ("--split-above", "8MiB")  # stored with the job; workers may repeat it
BIG = 5 * 1024 * 1024 * 7 + 12345  # 8 parts of 5 MiB, the last one short


@pytest.mark.engines
def test_three_workers_share_the_parts_of_one_large_file(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    postgres_url: str,
    tmp_path: Path,
) -> None:
    tree = make_tree(tmp_path / "src", {"big.bin": BIG, **{f"small{i}.txt": 200 for i in range(4)}})
    job = f"parts-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, postgres_url, job, bucket, *SPLIT, env=PART_ENV)
    # The first two parts hang long enough for every worker to start (a slow CI machine
    # takes seconds per start); the others are slowed so no worker can take them all.
    proxy.add(r"^PUT .*partNumber=", "delay", times=2, delay=6.0)
    proxy.add(r"^PUT .*partNumber=", "delay", times=1000, delay=0.4)
    args = ("--json", "job", "work", "--job", job, "--ledger", postgres_url)
    workers = [
        proxied_cli.start(*args, "--split-above", "8MiB", "--concurrency", "2", "--batch", "1")
        for _ in range(3)
    ]
    outputs = [w.communicate(timeout=180) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    assert _states(postgres_url, job) == {"done": 5}
    parts = _parts_done_by(postgres_url, job)
    assert sum(parts.values()) == 8
    assert len(parts) >= 2  # the parts of one file were sent by several workers
    sent = Counter(
        line.split("?", 1)[1].split(" ")[0] for line in proxy.requests(r"^PUT .*partNumber=")
    )
    assert len(sent) == 8
    assert set(sent.values()) == {1}  # each part sent exactly once
    assert len(proxy.requests(r"^POST .*uploadId=")) == 1  # one CompleteMultipartUpload
    got = s3.get_object(Bucket=bucket, Key="p/big.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == tree["big.bin"]
    assert got["ChecksumType"] == "FULL_OBJECT"
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with psycopg.connect(postgres_url) as conn:
        ledger = conn.execute(
            "SELECT status, count(*) FROM items WHERE bucket = %s AND key = 'p/big.bin' "
            "GROUP BY status",
            (bucket,),
        ).fetchall()
    assert ledger == [("done", 1)]
    status = json.loads(
        proxied_cli("--json", "job", "status", "--job", job, "--ledger", postgres_url).stdout
    )
    assert status["parts"] == {"done": 8}
    assert sum(json.loads(o[0].splitlines()[-1])["parts_sent"] for o in outputs) == 8


def test_a_killed_workers_parts_are_sent_by_others_after_its_lease(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    postgres_url: str,
    tmp_path: Path,
) -> None:
    tree = make_tree(tmp_path / "src", {"big.bin": BIG})
    job = f"partkill-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, postgres_url, job, bucket, *SPLIT, env=PART_ENV)
    proxy.add(r"^PUT .*partNumber=", "delay", times=1000, delay=0.5)
    work = ("job", "work", "--job", job, "--ledger", postgres_url, "--split-above", "8MiB")
    victim = proxied_cli.start(*work, "--lease", "2", "--concurrency", "2")
    _wait(lambda: len(proxy.requests(r"^PUT .*partNumber=")) >= 3)
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    with psycopg.connect(postgres_url) as conn:
        held = conn.execute(
            "SELECT count(*) FROM job_parts WHERE job = %s AND state = 'claimed'", (job,)
        ).fetchone()[0]
    assert held  # the dead worker's parts are still claimed: their lease must expire
    proxy.reset()
    survivor = proxied_cli(*work, "--lease", "2", "--concurrency", "2", timeout=180)
    assert survivor.code == 0, survivor.output
    assert _states(postgres_url, job) == {"done": 1}
    assert sum(_parts_done_by(postgres_url, job).values()) == 8
    body = s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read()
    assert body == tree["big.bin"]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_a_split_file_that_changes_fails_cleanly(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    postgres_url: str,
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {"big.bin": BIG})
    job = f"partchg-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, postgres_url, job, bucket, *SPLIT, env=PART_ENV)
    proxy.add(r"^PUT .*partNumber=", "delay", times=1000, delay=0.5)
    worker = proxied_cli.start(
        "job", "work", "--job", job, "--ledger", postgres_url, "--split-above", "8MiB",
        "--concurrency", "1",
    )  # fmt: skip
    _wait(lambda: len(proxy.requests(r"^PUT .*partNumber=")) >= 1)
    with (tmp_path / "src" / "big.bin").open("ab") as handle:
        handle.write(b"appended while its parts were being sent")
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 1, out + err
    assert _states(postgres_url, job) == {"failed": 1}
    with psycopg.connect(postgres_url) as conn:
        error_class = conn.execute(
            "SELECT error_class FROM job_items WHERE job = %s", (job,)
        ).fetchone()[0]
    assert error_class == "SourceChanged"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="p/")
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_split_above_is_validated(cli, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("job", "work", "--job", "x", "--ledger", postgres_url, "--split-above", "1MiB")
    assert result.code == 2
    assert "5 MiB minimum part size" in result.stderr


def test_a_job_workers_status_file_says_job_work(
    cli,
    bucket,  # type: ignore[no-untyped-def]
    postgres_url: str,
    tmp_path: Path,
) -> None:
    """A worker's ``--status-json`` said ``"command": "upload"``: ``s3stow status`` and
    the page named the job's work an upload."""
    from s3stow.report.statushtml import render_main

    make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(3)})
    job = f"status-{uuid.uuid4().hex[:8]}"
    _plan(cli, postgres_url, job, bucket)
    # a host's own file: set on each worker (the environment), never stored with the job
    env = {"S3STOW_STATUS_JSON": str(tmp_path / "st.json")}
    result = cli("job", "work", "--job", job, "--ledger", postgres_url, env=env)
    assert result.code == 0, result.output
    status = json.loads((tmp_path / "st.json").read_text())
    assert status["command"] == "job work"
    assert status["totals"]["uploaded"] == 3
    assert "s3stow job work: done" in render_main(status, path=tmp_path / "st.json")
    shown = cli("status", "st.json")
    assert shown.code == 0, shown.output
    assert shown.stdout.startswith("job work: done"), shown.stdout


def test_a_job_worker_says_its_run_id_and_stats_restore_retry_take_it(
    cli,
    bucket,  # type: ignore[no-untyped-def]
    postgres_url: str,
    tmp_path: Path,
) -> None:
    """``job work``'s summary (human and ``--json``) said no run id, and each batch was
    a run of its own, with an id unrelated to the worker's: none of them was the one
    ``stats``, ``restore`` and ``retry --run`` take for the worker's uploads."""
    import re

    tree = make_tree(tmp_path / "src", {f"f{i}.txt": 10 + i for i in range(5)})
    job = f"runid-{uuid.uuid4().hex[:8]}"
    _plan(cli, postgres_url, job, bucket)
    work = ("job", "work", "--job", job, "--ledger", postgres_url, "--batch", "2")
    result = cli(*work)
    assert result.code == 0, result.output
    shown = re.search(r"^worker \S+: 5 done, .*; run (\S+)$", result.stdout, re.MULTILINE)
    assert shown is not None, result.stdout
    run = shown.group(1)
    stats = cli("--json", "stats", "--run", run, "--ledger", postgres_url)
    assert stats.code == 0, stats.output
    assert json.loads(stats.stdout)["overall"]["done"] == 5  # its three batches
    listed = cli("--json", "retry", "--run", run, "--ledger", postgres_url, "--list")
    assert listed.code == 0, listed.output
    assert json.loads(listed.stdout)["failed"] == 0
    back = cli("restore", "--run", run, "out", "--ledger", postgres_url)
    assert back.code == 0, back.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == tree
    again = f"again-{uuid.uuid4().hex[:8]}"
    _plan(cli, postgres_url, again, bucket)
    quiet = cli("--json", "job", "work", "--job", again, "--ledger", postgres_url)
    assert quiet.code == 0, quiet.output
    summary = json.loads(quiet.stdout.splitlines()[-1])
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", summary["run_id"]), summary
    assert summary["run_id"] != run


def test_a_plan_names_the_files_whose_keys_s3_cannot_take(  # type: ignore[no-untyped-def]
    cli, bucket, postgres_url: str, tmp_path: Path
) -> None:
    """``job plan`` dropped a file whose key holds a control character or passes 1024
    bytes without a word (exit 0, "1 file planned"); ``upload`` reports them as failed.
    They are named, counted in ``--json`` (``not_planned``) and the plan exits 1."""
    deep = "/".join(c * 250 for c in "defgh")  # a key of 1262 bytes
    make_tree(tmp_path / "src", {"ok.txt": 3, "new\nline.txt": 4, f"{deep}/x.txt": 5})
    job = f"odd-{uuid.uuid4().hex[:8]}"
    args = ("job", "plan", "src", f"s3://{bucket}/p", "--job", job, "--ledger", postgres_url)
    result = cli(*args)
    assert result.code == 1, result.output
    assert "job " + job + ": 1 file planned" in result.stdout
    assert "2 files not planned, never to be uploaded by this job" in result.stderr
    again = cli("--json", *args)
    assert again.code == 1, again.output
    summary = json.loads(again.stdout.splitlines()[-1])
    assert summary["files"] == 1
    assert sorted(item["reason"][:20] for item in summary["not_planned"]) == [
        "key contains a contr",
        "key is 1262 bytes lo",
    ]
    assert _states(postgres_url, job) == {"pending": 1}


def test_a_plan_names_odd_paths_escaped_as_upload_does(  # type: ignore[no-untyped-def]
    cli, bucket, postgres_url: str, tmp_path: Path
) -> None:
    """A name with a newline or an escape sequence reached the terminal raw through the
    "not planned" warning (a forged log line, a recoloured terminal), and an unreadable
    name as Python's ``\\udcff`` (``upload`` says ``\\xff``); ``[red]`` in a name was
    taken as rich markup."""
    import os

    make_tree(tmp_path / "src", {"ok.txt": 3, "evil\nERROR forged.txt": 4, "c\x1b[2J.txt": 5})
    with open(os.fsencode(tmp_path / "src") + b"/[red]bad\xffname", "wb") as handle:
        handle.write(b"x")
    job = f"esc-{uuid.uuid4().hex[:8]}"
    args = ("job", "plan", "src", f"s3://{bucket}/p", "--job", job, "--ledger", postgres_url)
    result = cli(*args)
    assert result.code == 1, result.output
    assert "not planned: src/evil\\nERROR forged.txt: key contains" in result.stderr
    assert "not planned: src/c\\x1b[2J.txt: key contains" in result.stderr
    assert "\x1b" not in result.output
    assert "\nERROR forged" not in result.output
    assert "(first: src/[red]bad\\xffname: name is not valid UTF-8" in result.stderr


def test_a_stopped_worker_exits_130_as_any_interrupted_run(  # type: ignore[no-untyped-def]
    proxied_cli, proxy, bucket, postgres_url: str, tmp_path: Path
) -> None:
    """SIGTERM to ``job work`` with items left ended 0, as a worker that found the job
    finished does: a script or a service manager could not tell them apart."""
    make_tree(tmp_path / "src", {f"f{i:02d}.bin": 300 for i in range(20)})
    job = f"stop-{uuid.uuid4().hex[:8]}"
    _plan(proxied_cli, postgres_url, job, bucket)
    held = proxy.add(r"^PUT ", "hold", times=1000)
    worker = proxied_cli.start("job", "work", "--job", job, "--ledger", postgres_url)
    try:
        _wait(lambda: len(proxy.requests(r"^PUT ")) >= 1)
        worker.send_signal(signal.SIGTERM)
    finally:
        held.release()
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 130, err
    assert "run the same command again to go on" in err
    assert _states(postgres_url, job).get("pending", 0) > 0
    proxy.reset()
    again = proxied_cli("--json", "job", "work", "--job", job, "--ledger", postgres_url)
    assert again.code == 0, again.output
    assert json.loads(again.stdout.splitlines()[-1])["interrupted"] is False
    assert _states(postgres_url, job) == {"done": 20}
