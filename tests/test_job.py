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


def _plan(cli: Any, url: str, job: str, bucket: str) -> None:
    result = cli("job", "plan", "src", f"s3://{bucket}/p", "--job", job, "--ledger", url)
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
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.3)  # long enough for every worker to join
    workers = [
        proxied_cli.start(
            "--json", "job", "work", "--job", job, "--ledger", postgres_url, "--batch", "5"
        )
        for _ in range(3)
    ]
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
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.2)
    first = proxied_cli.start(
        "job", "work", "--job", job, "--ledger", postgres_url, "--batch", "2", "--concurrency", "1"
    )
    _wait(lambda: len(proxy.requests(r"^PUT ")) >= 2)
    late = proxied_cli(
        "job", "work", "--job", job, "--ledger", postgres_url, "--batch", "2", timeout=120
    )
    first.communicate(timeout=120)
    assert late.code == 0
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
