"""A run's file threads (``FileThreads``, an upload's and a restore's): every job's
outcome comes back once, with its tag; a collector asking for N outcomes is woken once,
when the N-th is there, not per outcome; threads start only while more files are in
flight than threads, up to the allowed number, which only grows; leaving runs what is
queued and joins."""

from __future__ import annotations

import queue
import threading

import pytest

from s3stow.transfer import filethreads
from s3stow.transfer.filethreads import FileThreads


def _collect_all(files: FileThreads[int, object]) -> dict[int, object]:
    found: dict[int, object] = {}
    while files.in_flight:
        for tag, outcome in files.collect(block=True):
            assert tag not in found
            found[tag] = outcome
    return found


def test_every_outcome_comes_back_once_with_its_tag() -> None:
    def work(value: int) -> int:
        if value == 7:
            raise ValueError("seven")
        return value * value

    with FileThreads[int, object](work, 4) as files:
        for value in range(50):
            files.submit((value,), value)
        found = _collect_all(files)
    assert sorted(found) == list(range(50))
    assert all(found[v] == v * v for v in range(50) if v != 7)
    error = found[7]
    assert isinstance(error, ValueError)
    assert str(error) == "seven"
    assert files.collect(block=True) == []  # nothing in flight: no wait


def test_threads_start_only_while_files_outnumber_them_up_to_the_allowed() -> None:
    release = threading.Event()
    names: set[str] = set()

    def work(tag: int) -> int:
        names.add(threading.current_thread().name)
        release.wait()
        return tag

    counts = []
    with FileThreads[int, object](work, 2) as files:
        try:
            files.submit((0,), 0)
            counts.append(files.threads)
            for value in (1, 2, 3):
                files.submit((value,), value)
            counts.append(files.threads)  # the allowed number
            files.grow(3)
            files.submit((4,), 4)
            counts.append(files.threads)
            files.grow(1)  # never fewer
            files.submit((5,), 5)
            counts.append(files.threads)
        finally:
            release.set()
        assert sorted(_collect_all(files)) == list(range(6))
    assert counts == [1, 2, 3, 3]
    assert names == {"file_0", "file_1", "file_2"}


def test_one_thread_serves_files_submitted_one_at_a_time() -> None:
    with FileThreads[int, object](lambda tag: tag, 8) as files:
        for value in range(5):
            files.submit((value,), value)
            assert files.collect(block=True)[0][0] == value
    assert files.threads == 1


def test_leaving_runs_what_is_queued_and_joins_the_threads() -> None:
    ran: list[int] = []
    started = threading.Event()
    release = threading.Event()

    def work(tag: int) -> None:
        if tag == 0:
            started.set()
            release.wait()
        ran.append(tag)

    files = FileThreads[int, None](work, 1)

    def engine() -> None:
        with files:
            for value in range(4):
                files.submit((value,), value)
            started.wait()
            release.set()
            raise RuntimeError("the engine stopped")

    with pytest.raises(RuntimeError):
        engine()
    assert sorted(ran) == [0, 1, 2, 3]
    assert not any(thread.is_alive() for thread in files._threads)


def test_the_threads_queue_ahead_only_what_their_idle_threads_do_not_take() -> None:
    """``room``: ``limit`` files running and ``ahead`` queued; with threads allowed
    beyond the limit (a step taken back), as many fewer queued as there are extra."""
    with FileThreads[int, None](lambda tag: None, 16) as files:
        assert files.room(16, 16) == 32
        assert files.room(16, 0) == 16
        files.grow(24)
        assert files.room(16, 16) == 24
        files.grow(64)
        assert files.room(16, 16) == 16


class _CountedTokens(queue.SimpleQueue[None]):
    """The wake-up queue, counting the tokens put (each a wake-up of the collector)."""

    def __init__(self) -> None:
        self.puts = 0

    def put(self, item: None, block: bool = True, timeout: float | None = None) -> None:
        self.puts += 1
        super().put(item, block, timeout)


def _held(
    count: int, *, wake: queue.SimpleQueue[None] | None = None
) -> tuple[FileThreads[int, object], list[threading.Event]]:
    """``count`` jobs submitted, each finishing when its event is set (``wake``: the
    wake-up queue, put in place before the threads start, which take it at start)."""
    gates = [threading.Event() for _ in range(count)]

    def work(tag: int) -> int:
        gates[tag].wait()
        return tag

    files = FileThreads[int, object](work, count)
    if wake is not None:
        files._wake = wake
    for tag in range(count):
        files.submit((tag,), tag)
    return files, gates


def test_a_collector_asking_for_n_waits_for_n_then_takes_all(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(filethreads, "_WAIT", 60.0)  # no wait ends for the time here
    files, gates = _held(6)
    started, got = threading.Event(), []

    def collector() -> None:
        started.set()
        got.append(files.collect(block=True, want=5))

    with files:
        thread = threading.Thread(target=collector)
        thread.start()
        started.wait()
        for tag in range(4):
            gates[tag].set()
        thread.join(0.2)
        assert thread.is_alive()  # four of five: still waiting
        gates[4].set()
        thread.join(60)
        assert not thread.is_alive()
        assert sorted(tag for tag, _ in got[0])[:5] == [0, 1, 2, 3, 4]
        gates[5].set()
        rest = [tag for tag, _ in files.collect(block=True, want=5)]  # one in flight
    assert len(got[0]) + len(rest) == 6
    assert files.in_flight == 0


def test_the_collector_is_woken_once_for_the_n_it_asked_for_not_per_outcome(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(filethreads, "_WAIT", 60.0)  # only a token ends the wait in time
    tokens = _CountedTokens()
    files, gates = _held(8, wake=tokens)
    started, got = threading.Event(), []

    def collector() -> None:
        started.set()
        got.append(files.collect(block=True, want=8))

    with files:
        thread = threading.Thread(target=collector)
        thread.start()
        started.wait()
        for gate in gates:
            gate.set()
        thread.join(30)
        woken = not thread.is_alive()  # else it waits out the 60 s: no token came
    assert woken
    assert sorted(tag for tag, _ in got[0]) == list(range(8))
    assert tokens.puts <= 1  # none when all eight were there before it waited


def test_a_wait_that_times_out_takes_what_there_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filethreads, "_WAIT", 0.01)
    files, gates = _held(3)
    with files:
        gates[0].set()
        got: list[tuple[int, object]] = []
        while not got:  # the first outcome may not be there yet at the first timeout
            got = files.collect(block=True, want=3)
        assert got == [(0, 0)]
        assert files.in_flight == 2
        assert files.collect(block=False) == []
        gates[1].set()
        gates[2].set()
        assert sorted(_collect_all(files)) == [1, 2]
