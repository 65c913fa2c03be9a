"""Growth past ``concurrency`` over a long round trip, uploading and restoring, on a
real server: SeaweedFS behind ``bench/delay_proxy.py`` (50 ms added to every
request). Observed through the run's summary and the limiter's counters, never
through time."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3stow import Uploader
from s3stow.config import Settings
from s3stow.devserver.seaweedfs import SeaweedServer
from s3stow.ledger import open_ledger
from s3stow.restore.engine import Restorer
from tests.conftest import Cli

PROXY = Path(__file__).resolve().parent.parent / "bench" / "delay_proxy.py"
FILES = 400


@pytest.fixture
def slow_endpoint(seaweed_server: SeaweedServer) -> Iterator[str]:
    """The SeaweedFS server 50 ms away."""
    proxy = subprocess.Popen(
        [sys.executable, str(PROXY), str(seaweed_server.port), "50"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proxy.stdout is not None
        yield f"http://127.0.0.1:{proxy.stdout.readline().strip()}"
    finally:
        proxy.kill()
        proxy.wait()


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    for index in range(FILES):
        folder = root / f"d{index % 8}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:04d}.txt").write_bytes(b"%d\n" % index * 64)
    return root


def _upload(endpoint: str, tree: Path, bucket: str, tmp_path: Path, **settings: Any) -> Any:
    uploader = Uploader(
        Settings(endpoint_url=endpoint, concurrency=4, **settings),
        ledger=open_ledger(str(tmp_path / f"l-{len(list(tmp_path.iterdir()))}.db")),
    )
    summary = uploader.upload_tree([tree], f"s3://{bucket}/p")
    return uploader, summary


def _count(s3: Any, bucket: str) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="p/")
    return sum(len(page.get("Contents", [])) for page in pages)


def test_more_than_concurrency_in_flight_over_a_long_round_trip(
    slow_endpoint: str, small_tree: Path, seaweed_bucket: str, seaweed_s3: Any, tmp_path: Path
) -> None:
    uploader, summary = _upload(
        slow_endpoint, small_tree, seaweed_bucket, tmp_path, max_concurrency=32
    )
    assert summary.ok
    assert summary.uploaded == FILES
    assert _count(seaweed_s3, seaweed_bucket) == FILES
    assert summary.concurrency_peak > 4  # grown past --concurrency
    assert uploader.limiter.start is not None
    assert uploader.limiter.start.doublings >= 1  # slow start climbed, round by round
    assert summary.concurrency_peak <= 32
    assert uploader.limiter.peak == summary.concurrency_peak
    assert summary.totals()["concurrency_peak"] == summary.concurrency_peak


def test_no_growth_when_max_concurrency_is_concurrency(
    slow_endpoint: str, small_tree: Path, seaweed_bucket: str, tmp_path: Path
) -> None:
    _, summary = _upload(slow_endpoint, small_tree, seaweed_bucket, tmp_path, max_concurrency=4)
    assert summary.ok
    assert summary.concurrency_peak == 4
    assert summary.concurrency == 4


def _restore(endpoint: str, bucket: str, tmp_path: Path, dest: Path, **settings: Any) -> Any:
    restorer = Restorer(
        Settings(endpoint_url=endpoint, concurrency=4, **settings),
        ledger=open_ledger(str(tmp_path / f"r-{len(list(tmp_path.iterdir()))}.db")),
    )
    return restorer, restorer.restore_tree(f"s3://{bucket}/p", dest)


def test_a_restore_grows_past_concurrency_over_a_long_round_trip(
    seaweed_server: SeaweedServer,
    slow_endpoint: str,
    small_tree: Path,
    seaweed_bucket: str,
    tmp_path: Path,
) -> None:
    _, uploaded = _upload(seaweed_server.endpoint_url, small_tree, seaweed_bucket, tmp_path)
    assert uploaded.uploaded == FILES
    dest = tmp_path / "back"
    restorer, summary = _restore(slow_endpoint, seaweed_bucket, tmp_path, dest, max_concurrency=32)
    assert summary.ok
    assert summary.uploaded == FILES  # a restore's summary counts restored files there
    for path in small_tree.rglob("*.txt"):  # every file back, byte for byte
        assert (dest / path.relative_to(small_tree)).read_bytes() == path.read_bytes()
    assert 4 < summary.concurrency_peak <= 32
    assert restorer.limiter.start is not None
    assert restorer.limiter.start.doublings >= 1


def test_a_restore_does_not_grow_when_max_concurrency_is_concurrency(
    seaweed_server: SeaweedServer,
    slow_endpoint: str,
    small_tree: Path,
    seaweed_bucket: str,
    tmp_path: Path,
) -> None:
    _upload(seaweed_server.endpoint_url, small_tree, seaweed_bucket, tmp_path)
    cli = Cli(slow_endpoint, tmp_path)
    result = cli(
        "--json",
        "restore",
        f"s3://{seaweed_bucket}/p",
        "back",
        "--ledger",
        "r.db",
        "--concurrency",
        "4",
        "--max-concurrency",
        "4",
    )
    assert result.code == 0, result.stderr
    summary = [json.loads(line) for line in result.stdout.splitlines() if '"summary"' in line]
    assert summary[-1]["restored"] == FILES
    assert summary[-1]["concurrency_peak"] == 4
