"""The ranges of a large restore in flight follow what pays (``StreamLimiter``), on
SeaweedFS: behind a per-connection bandwidth cap more streams go faster and their count
grows past the start; straight to the server it does not. What is observed is what the
run reports (``ranges_in_flight_peak`` in the ``--json`` summary), never a time."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3stow.devserver.seaweedfs import SeaweedServer
from s3stow.restore.download import START_STREAMS
from tests.conftest import (
    FIVE_MIB_PARTS,
    PIN_ETAG_CHECK,
    Cli,
    kill_after_ranges,
    make_tree,
)
from tests.faultproxy import FaultProxy

MiB = 1024 * 1024
SIZE = 192 * MiB  # 39 ranges of 5 MiB: room for the count to change twice
CONCURRENCY = "32"  # 4 x START_STREAMS: room for two steps


@pytest.fixture
def capped(seaweed_server: SeaweedServer, tmp_path: Path) -> Iterator[tuple[FaultProxy, Cli]]:
    """A fault proxy in front of SeaweedFS, and a CLI that goes through it."""
    proxy = FaultProxy("127.0.0.1", seaweed_server.port)
    proxy.start()
    runner = Cli(proxy.url, tmp_path, defaults=dict(PIN_ETAG_CHECK))
    try:
        yield proxy, runner
    finally:
        runner.kill_leftovers()
        proxy.stop()


def _summary(stdout: str) -> dict[str, Any]:
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    return [event for event in events if event.get("event") == "summary"][-1]


def _upload(cli: Cli, bucket: str, tmp_path: Path, *, size: int = SIZE) -> bytes:
    data = make_tree(tmp_path / "src", {"big.bin": size})["big.bin"]
    upload = cli("upload", "src", f"s3://{bucket}/p", "--ledger", "u.db")
    assert upload.code == 0, upload.output
    shutil.rmtree(tmp_path / "src")
    return data


def _restore(cli: Cli, bucket: str) -> dict[str, Any]:
    args = ("--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "r.db")
    result = cli(*args, *FIVE_MIB_PARTS, "--concurrency", CONCURRENCY, timeout=300)
    assert result.code == 0, result.output
    return _summary(result.stdout)


def test_behind_a_per_stream_cap_the_ranges_in_flight_grow(
    capped: tuple[FaultProxy, Cli],
    seaweed_cli: Cli,
    seaweed_bucket: str,
    tmp_path: Path,
) -> None:
    proxy, cli = capped
    data = _upload(seaweed_cli, seaweed_bucket, tmp_path)
    # each connection carries 4 MiB/s: 8 streams 32 MiB/s, 16 streams 64 MiB/s
    proxy.add(r"^GET /[^?]*big\.bin", "rate", times=10_000, rate=4 * MiB)
    summary = _restore(cli, seaweed_bucket)
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert summary["ranges_in_flight_peak"] > START_STREAMS  # grown past the start
    assert summary["ranges_in_flight_peak"] <= int(CONCURRENCY)
    gets = proxy.requests(r"^GET /[^?]*big\.bin")
    assert len(gets) == SIZE // (5 * MiB) + 1  # every range once: growth re-sends nothing


def test_behind_a_shared_link_the_ranges_in_flight_step_back(
    capped: tuple[FaultProxy, Cli],
    seaweed_cli: Cli,
    seaweed_bucket: str,
    tmp_path: Path,
) -> None:
    proxy, cli = capped
    # a step from 8 to 16 is judged after 3 windows of 32 MiB and 2 of 64 MiB: 224 MiB
    data = _upload(seaweed_cli, seaweed_bucket, tmp_path, size=255 * MiB)
    # 48 MiB/s shared by every connection: 16 streams are no faster than 8
    proxy.add(r"^GET /[^?]*big\.bin", "link", times=10_000, rate=48 * MiB)
    summary = _restore(cli, seaweed_bucket)
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert summary["ranges_in_flight_peak"] <= 2 * START_STREAMS  # one step tried at most
    assert summary["ranges_in_flight"] == START_STREAMS  # and taken back


def test_straight_to_the_server_the_ranges_in_flight_stay_low(
    seaweed_cli: Cli, seaweed_bucket: str, tmp_path: Path
) -> None:
    data = _upload(seaweed_cli, seaweed_bucket, tmp_path)
    summary = _restore(seaweed_cli, seaweed_bucket)
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    # at most one step tried (8 -> 16): loopback bytes/s do not double with the streams
    # (whether the step is taken back before the object ends depends on the machine's
    # speed: a step still settling when the last range starts stays, so not asserted)
    assert summary["ranges_in_flight_peak"] <= 2 * START_STREAMS
    assert summary["ranges_in_flight"] <= 2 * START_STREAMS


def test_large_objects_share_one_limit_on_ranges_in_flight(
    seaweed_cli: Cli, seaweed_bucket: str, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path / "src", {f"big{i}.bin": 20 * MiB for i in range(6)})
    url = f"s3://{seaweed_bucket}/p"
    assert seaweed_cli("upload", "src", url, "--ledger", "u.db").code == 0
    shutil.rmtree(tmp_path / "src")
    summary = _restore(seaweed_cli, seaweed_bucket)
    for rel, data in tree.items():
        assert (tmp_path / "out" / rel).read_bytes() == data, rel
    # six objects of four ranges each, all in flight at once (32 files in the file
    # pool, 32 threads in the part pool): without one limit for the run, 24 ranges
    assert summary["restored"] == 6
    assert START_STREAMS <= summary["ranges_in_flight_peak"] <= 2 * START_STREAMS


def test_a_download_resumes_with_its_recorded_range_size(
    capped: tuple[FaultProxy, Cli], seaweed_bucket: str, tmp_path: Path
) -> None:
    """Killed with 5 MiB ranges recorded, resumed by a run whose ranges would be 8 MiB
    (the default): only the missing 5 MiB ranges are fetched."""
    proxy, cli = capped
    data = make_tree(tmp_path / "src", {"big.bin": 35 * MiB})["big.bin"]  # 7 ranges of 5 MiB
    assert cli("upload", "src", f"s3://{seaweed_bucket}/p", "--ledger", "l.db").code == 0
    shutil.rmtree(tmp_path / "src")
    proxy.reset()
    proxy.add(r"^GET /[^?]*big\.bin", "delay", times=100, delay=0.6)
    args = ("restore", f"s3://{seaweed_bucket}/p", "out", "--ledger", "l.db")
    process = cli.start(*args, *FIVE_MIB_PARTS, "--concurrency", "2")
    db = tmp_path / "l.db"
    recorded = kill_after_ranges(process, db)
    assert 2 <= len(recorded) < 7
    proxy.reset()
    result = cli(*args)  # no --part-size: a new download would take 8 MiB ranges
    assert result.code == 0, result.output
    sent = {
        int(re.match(r"bytes=(\d+)-", headers.get("range", "")).group(1))  # type: ignore[union-attr]
        for line, headers in zip(list(proxy.log), list(proxy.headers), strict=False)
        if line.startswith("GET ") and "list-type" not in line
    }
    assert sent == {i * 5 * MiB for i in range(7)} - recorded  # only what was missing
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
