"""A network partition between workers and PostgreSQL, with a split file in the job.

Each of three workers reaches PostgreSQL through a loopback TCP proxy of its own that
the test controls. While they work, every connection is dropped, then the worker
holding a part is cut off (a black hole: nothing in, nothing out) for longer than its
lease, so the others take its part over, and then heals. Afterwards every object
equals its file, every item is recorded exactly once (job table and ledger), and no
multipart upload is left open in S3.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import make_tree
from tests.tcpproxy import TcpProxy

PART_ENV = {"S3STOW_PART_SIZE": "5MiB"}
BIG = 3 * 5 * 1024 * 1024 + 4321  # 4 parts
LEASE = 2.0


def _rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


def _wait(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


@pytest.fixture
def pg_proxies(pg_schema_url: str) -> Iterator[list[TcpProxy]]:
    proxies = [TcpProxy(5432) for _ in range(3)]
    for proxy in proxies:
        proxy.start()
    yield proxies
    for proxy in proxies:
        proxy.stop()


def test_a_partitioned_worker_loses_its_part_and_nothing_is_lost_or_doubled(
    proxied_cli,
    proxy,
    s3,
    bucket,
    pg_schema_url: str,
    pg_proxies: list[TcpProxy],
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    tree = make_tree(
        tmp_path / "src", {"big.bin": BIG, **{f"s{i:02d}.txt": 300 for i in range(12)}}
    )
    job = f"partition-{uuid.uuid4().hex[:8]}"
    planned = proxied_cli(
        "job", "plan", "src", f"s3://{bucket}/p", "--job", job, "--ledger", pg_schema_url,
        "--split-above", "8MiB", env=PART_ENV,
    )  # fmt: skip
    assert planned.code == 0, planned.output
    proxy.add(r"^PUT .*partNumber=", "delay", times=1000, delay=0.8)
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.2)
    urls = [
        pg_schema_url.replace(":5432/", f":{p.port}/", 1) + "&connect_timeout=2" for p in pg_proxies
    ]
    workers = [
        proxied_cli.start(
            "--json", "job", "work", "--job", job, "--ledger", url, "--lease", str(LEASE),
            "--batch", "2", "--concurrency", "2", "--db-timeout", "60",
        )
        for url in urls
    ]  # fmt: skip
    pids = [str(w.pid) for w in workers]
    _wait(lambda: _rows(pg_schema_url, "SELECT count(*) FROM job_workers")[0][0] == 3)

    # 1. Every connection of every worker is reset (a failover, a restarted server).
    _wait(lambda: len(proxy.requests(r"^PUT .*partNumber=")) >= 1)
    for pg in pg_proxies:
        pg.drop()

    # 2. The worker holding a part is cut off from the database for three leases.
    holder: list[int] = []

    def someone_holds_a_part() -> bool:
        sql = "SELECT lease_owner FROM job_parts WHERE state = 'claimed' LIMIT 1"
        owners = _rows(pg_schema_url, sql)
        holder[:] = [pids.index(o.split("-")[-2]) for (o,) in owners if o.split("-")[-2] in pids]
        return bool(holder)

    _wait(someone_holds_a_part)
    cut = pg_proxies[holder[0]]
    cut.blackhole()
    time.sleep(3 * LEASE)
    cut.heal()

    outputs = [w.communicate(timeout=180) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], outputs
    stats = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert stats[holder[0]]["lost_leases"] >= 1  # its part was taken over, its answer refused

    # Every object byte-identical to its file.
    for rel, data in tree.items():
        assert s3.get_object(Bucket=bucket, Key=f"p/{rel}")["Body"].read() == data
    # Each item recorded exactly once: done in the job, one done outcome in the ledger.
    states = _rows(pg_schema_url, "SELECT state, count(*) FROM job_items GROUP BY state")
    assert states == [("done", len(tree))]
    ledger = _rows(
        pg_schema_url, "SELECT key, status, attempts FROM items WHERE bucket = %s", bucket
    )
    assert sorted(ledger) == sorted((f"p/{rel}", "done", 1) for rel in tree)
    assert sum(s["done"] for s in stats) == len(tree)
    assert _rows(pg_schema_url, "SELECT state, count(*) FROM job_parts GROUP BY state") == [
        ("done", 4)
    ]
    # No multipart upload left open, none left to abort.
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert _rows(pg_schema_url, "SELECT count(*) FROM job_orphans") == [(0,)]
