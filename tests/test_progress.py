"""The progress display's counts (a clock the test moves), discovery running ahead, and
the periodic line off a terminal."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3stow.models import Decision, PlannedUpload, Reason, SourceFile, Status, UploadResult
from s3stow.plan.ahead import BATCH, RunAhead
from s3stow.report.snapshot import Progress, bytes_text, files_text, plain_line
from s3stow.units import GiB, MiB
from tests.conftest import make_tree


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def source(name: str, size: int) -> SourceFile:
    return SourceFile(Path("/src") / name, name, size, 0, Path("/src"))


def done(
    src: SourceFile, status: Status = Status.DONE, reason: Reason | None = None
) -> UploadResult:
    return UploadResult(src.path, "b", src.rel_path, status, size=src.size, reason=reason)


def test_the_total_is_shown_apart_until_the_walk_ends() -> None:
    clock = Clock()
    progress = Progress(clock=clock)
    progress.on_start("r", "s3://b")
    progress.on_walk(512, 512 * MiB, False)
    walking = progress.snapshot()
    assert walking.walking
    assert walking.percent is None
    assert walking.eta is None
    assert files_text(walking) == "0 done, 512 found so far (walking)"
    assert bytes_text(walking) == "0 B sent of 512.0 MiB found so far"
    progress.on_walk(5003, 5003 * MiB, True)
    clock.now += 10
    whole = progress.snapshot()
    assert not whole.walking
    assert files_text(whole) == "0 / 5,003 files"
    assert bytes_text(whole) == "0 B / 4.9 GiB (0%)"


def test_rate_and_time_left_over_the_bytes_this_run_sends() -> None:
    clock = Clock()
    progress = Progress(clock=clock)
    progress.on_start("r", "s3://b")
    files = [source(f"f{i}", 10 * MiB) for i in range(10)]
    progress.on_walk(10, 100 * MiB, True)
    # two files the ledger has: they leave the total (nothing of them is sent)
    for src in files[:2]:
        item = PlannedUpload(src, "b", src.rel_path)
        progress.on_decision(Decision(item, False, Reason.LEDGER_DONE))
    for src in files[2:4]:
        progress.on_file_start(src, src.rel_path)
        clock.now += 1
        progress.on_bytes(src, src.size)
        progress.on_result(done(src), src)
    snap = progress.snapshot()
    assert (snap.files_done, snap.skipped, snap.total, snap.sent) == (4, 2, 80 * MiB, 20 * MiB)
    assert snap.rate == pytest.approx(10 * MiB)  # 20 MiB in 2 s
    assert snap.eta == pytest.approx(6.0)  # 60 MiB left at 10 MiB/s
    assert plain_line(snap) == (
        "progress: 4 / 10 files (2 skipped), 20.0 MiB / 80.0 MiB (25%), 10.0 MiB/s, "
        "ETA 6s, elapsed 2s"
    )
    # a failed file that sent one part of three: the rest leaves the total
    src = files[4]
    progress.on_file_start(src, src.rel_path)
    progress.on_bytes(src, 4 * MiB)
    progress.on_result(done(src, Status.FAILED), src)
    failed = progress.snapshot()
    assert (failed.failed, failed.total, failed.sent) == (1, 74 * MiB, 24 * MiB)


def test_a_large_file_shows_its_hashing_then_its_parts() -> None:
    clock = Clock()
    progress = Progress(clock=clock)
    progress.on_start("r", "s3://b")
    big = source("video/big.mov", 1 * GiB)
    progress.on_file_start(big, big.rel_path)
    clock.now += 1
    progress.on_hashed(big, 358 * MiB)
    (hashing,) = progress.snapshot().in_flight
    assert hashing.hashing
    assert hashing.text() == "hashing 35% of 1.0 GiB, 358.0 MiB/s"
    progress.on_hashed(big, GiB - 358 * MiB)
    progress.on_bytes(big, 256 * MiB)
    (sending,) = progress.snapshot().in_flight
    assert not sending.hashing
    assert sending.text().startswith("25% of 1.0 GiB, ")
    progress.on_bytes(big, 768 * MiB)
    (verifying,) = progress.snapshot().in_flight
    assert verifying.text() == "verifying 1.0 GiB"
    small = source("a.txt", 2 * MiB)
    progress.on_file_start(small, small.rel_path)
    assert progress.snapshot().in_flight[1].text() == "sending 2.0 MiB, 0s"


def test_a_resumed_upload_counts_what_this_run_sends() -> None:
    progress = Progress(clock=Clock())
    progress.on_start("r", "s3://b")
    big = source("big", 30 * MiB)
    progress.on_walk(1, 30 * MiB, True)
    progress.on_file_start(big, "big")
    progress.on_resumed(big, 20 * MiB)  # an earlier run's parts
    progress.on_bytes(big, 10 * MiB)
    progress.on_result(done(big), big)
    snap = progress.snapshot()
    assert (snap.total, snap.sent, snap.files_done) == (10 * MiB, 10 * MiB, 1)


def test_a_dry_run_and_the_limit_finish_files_at_their_decision() -> None:
    progress = Progress(plan=True, clock=Clock())
    progress.on_start("r", "s3://b")
    progress.on_walk(3, 3, True)
    a, b, c = (source(n, 1) for n in "abc")
    progress.on_decision(Decision(PlannedUpload(a, "b", "a"), True, Reason.NEW))
    progress.on_decision(Decision(PlannedUpload(b, "b", "b"), False, Reason.LIMIT))
    progress.on_decision(Decision(PlannedUpload(c, "b", "c"), False, Reason.REMOTE_MATCH))
    snap = progress.snapshot()
    assert (snap.files_done, snap.not_started) == (2, 1)  # c waits for its proof
    assert files_text(snap) == "2 / 3 files (1 not started)"


def test_an_interrupted_walk_never_shows_a_total() -> None:
    progress = Progress(clock=Clock())
    progress.on_start("r", "s3://b")
    progress.on_walk(10_240, 10_240, False)
    progress.end()
    snap = progress.snapshot()
    assert snap.stopped
    assert snap.percent is None
    assert files_text(snap) == "0 done of 10,240 found (the walk was stopped)"


# ---- discovery running ahead ---------------------------------------------------------------
def _files(count: int, taken: list[int]) -> Iterator[SourceFile]:
    for index in range(count):
        taken.append(index)
        yield source(f"f{index}", 1)


def test_discovery_runs_ahead_of_the_transfers_and_reports_the_walk() -> None:
    walked: list[tuple[int, int, bool]] = []
    finished = threading.Event()

    def on_walk(files: int, size: int, end: bool) -> None:
        walked.append((files, size, end))
        if end:
            finished.set()

    taken: list[int] = []
    plan = {True: "planned", False: None}
    with RunAhead(
        _files(3 * BATCH, taken), lambda f: plan[f.rel_path != "f7"], on_walk=on_walk
    ) as ahead:
        batches = iter(ahead)
        first = next(batches)  # the transfers hold one batch ...
        assert finished.wait(30)  # ... and the whole tree is walked meanwhile
        assert walked[-1] == (3 * BATCH - 1, 3 * BATCH - 1, True)  # f7 is not selected
        assert first[7] == (first[7][0], None)
        assert len(list(batches)) == 2


def test_an_error_of_the_walk_is_raised_where_the_batches_are_read() -> None:
    def broken() -> Iterator[SourceFile]:
        yield source("a", 1)
        raise OSError("the disk went away")

    with RunAhead(broken(), lambda f: f, on_walk=lambda *a: None) as ahead:  # noqa: SIM117
        with pytest.raises(OSError, match="the disk went away"):
            list(ahead)


def test_closing_stops_the_walk() -> None:
    taken: list[int] = []
    ahead = RunAhead(_files(10**9, taken), lambda f: f, on_walk=lambda *a: None, backlog=BATCH)
    next(iter(ahead))
    ahead.close()
    assert not ahead._thread.is_alive()
    assert len(taken) < 10**9


# ---- off a terminal ------------------------------------------------------------------------
def test_off_a_terminal_the_periodic_line_has_bytes_of_total_and_eta(
    proxied_cli,  # type: ignore[no-untyped-def]
    proxy,
    bucket: str,
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {f"f{i:02d}.bin": 64 * 1024 for i in range(12)})
    proxy.add(r"^PUT ", "delay", times=12, delay=0.15)
    done = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--concurrency",
        "2",
        env={"S3STOW_PROGRESS_INTERVAL": "0.2"},
    )
    assert done.code == 0, done.output
    lines = [line for line in done.stderr.splitlines() if line.startswith("progress: ")]
    assert lines, done.stderr
    assert all(" / 12 files" in line for line in lines), lines
    assert all(" / 768.0 KiB (" in line for line in lines), lines
    assert all(re.search(r", \d+(\.\d)? (B|KiB)/s, ETA (-|\d+s), elapsed ", line) for line in lines)


def test_the_periodic_line_goes_on_in_every_run_of_one_uploader() -> None:
    """retry's batches and a job worker's claims are runs of one uploader: each run
    gets its lines, not only the first."""
    import io
    import time

    from s3stow.models import RunSummary
    from s3stow.report.progress import PlainProgress

    stream = io.StringIO()
    plain = PlainProgress(stream, interval=0.01)
    for run in ("first", "second"):
        stream.seek(0)
        stream.truncate()
        plain.on_start(run, "s3://b")
        deadline = time.monotonic() + 30
        while "progress: " not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        plain.on_finish(RunSummary(run))
        assert "progress: " in stream.getvalue(), run
