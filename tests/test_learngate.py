"""``LearningGate``: one request of an unknown shape goes first, the rest wait for it."""

from __future__ import annotations

import threading
import time

from s3stow.store.learngate import LearningGate


def _race(gate: LearningGate, settled: threading.Event, *, threads: int, learn: bool) -> list[str]:
    """``threads`` threads pass the gate at once; a learner sleeps a little, then settles
    the shape when ``learn``. Returns each thread's path, in the order they finished."""
    seen: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(threads)

    def one() -> None:
        start.wait()
        with gate.first("shape", settled.is_set) as learner:
            if learner:
                time.sleep(0.05)
                if learn:
                    settled.set()
        with lock:
            seen.append("learner" if learner else "free")

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=10)
    return seen


def test_one_learns_while_the_others_wait_then_go_free() -> None:
    settled = threading.Event()
    seen = _race(LearningGate(), settled, threads=8, learn=True)
    assert seen[0] == "learner"  # the others waited for it
    assert seen.count("learner") == 1
    assert seen.count("free") == 7


def test_a_failed_learner_hands_over_and_the_gate_opens_after_its_attempts() -> None:
    settled = threading.Event()
    seen = _race(LearningGate(attempts=3), settled, threads=6, learn=False)
    # one at a time; once the third has started, nobody waits any more
    assert seen[:2] == ["learner"] * 2
    assert seen.count("learner") == 3


def test_a_settled_shape_lets_everyone_through_at_once() -> None:
    settled = threading.Event()
    settled.set()
    gate = LearningGate()
    with gate.first("shape", settled.is_set) as first, gate.first("shape", settled.is_set) as again:
        assert (first, again) == (False, False)


def test_shapes_are_independent() -> None:
    gate = LearningGate()
    never = threading.Event()
    with gate.first("a", never.is_set) as a, gate.first("b", never.is_set) as b:
        assert (a, b) == (True, True)


def test_a_slow_learner_holds_the_others_only_for_the_patience() -> None:
    gate = LearningGate(patience=0.2)
    never = threading.Event()
    inside = threading.Event()
    release = threading.Event()
    waited: list[tuple[bool, float]] = []

    def learner() -> None:
        with gate.first("shape", never.is_set) as first:
            assert first
            inside.set()
            release.wait(10)  # a large body over a slow link

    thread = threading.Thread(target=learner)
    thread.start()
    assert inside.wait(10)
    start = time.monotonic()
    with gate.first("shape", never.is_set) as second:
        waited.append((second, time.monotonic() - start))
    release.set()
    thread.join(10)
    ((second, seconds),) = waited
    assert second is False  # it went its own way (botocore) while the learner was out
    assert 0.15 < seconds < 5  # after the patience, not at once and not never
