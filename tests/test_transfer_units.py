"""Part sizing within S3's limits, the AIMD request limiter, the memory budget."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3stow.errors import TransferError
from s3stow.transfer.limits import MemoryBudget, RequestLimiter
from s3stow.transfer.parts import (
    MAX_OBJECT,
    MAX_PART,
    MAX_PARTS,
    MIN_PART,
    choose_part_size,
    part_ranges,
)

MiB = 1024 * 1024
GiB = 1024 * MiB


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (100 * MiB, 8 * MiB),
        (512 * MiB - 1, 8 * MiB),
        (512 * MiB, 64 * MiB),
        (600 * MiB, 64 * MiB),
        (8 * GiB, 64 * MiB),
        (8 * GiB + 1, 128 * MiB),
        (9 * GiB, 128 * MiB),
    ],
)
def test_adaptive_part_sizes(size: int, expected: int) -> None:
    assert choose_part_size(size) == expected


@given(
    st.integers(min_value=1, max_value=MAX_OBJECT),
    st.one_of(st.none(), st.integers(min_value=MIN_PART, max_value=MAX_PART)),
)
def test_part_size_always_within_limits(size: int, requested: int | None) -> None:
    part = choose_part_size(size, requested)
    assert MIN_PART <= part <= MAX_PART
    assert -(-size // part) <= MAX_PARTS


def test_part_ranges_cover_the_file_exactly() -> None:
    ranges = part_ranges(23 * MiB, 8 * MiB)
    assert [(n, o, ln) for n, o, ln in ranges] == [
        (1, 0, 8 * MiB),
        (2, 8 * MiB, 8 * MiB),
        (3, 16 * MiB, 7 * MiB),
    ]


def test_too_large_file_is_refused() -> None:
    with pytest.raises(TransferError, match="5 TiB"):
        choose_part_size(MAX_OBJECT + 1)


def test_limiter_halves_on_throttle_and_recovers() -> None:
    limiter = RequestLimiter(16, cooldown=0.0)
    limiter.on_throttle()
    assert limiter.limit == 8
    limiter.on_throttle()
    assert limiter.limit == 4
    for _ in range(4):
        limiter.on_success()
    assert limiter.limit == 5
    for _ in range(200):  # +1 per `limit` successes: 5 + 6 + ... + 15 < 200
        limiter.on_success()
    assert limiter.limit == 16


def test_limiter_caps_concurrency() -> None:
    limiter = RequestLimiter(3)
    peak = 0
    active = 0
    lock = threading.Lock()
    barrier = threading.Event()

    def work() -> None:
        nonlocal peak, active
        with limiter.slot():
            with lock:
                active += 1
                peak = max(peak, active)
            barrier.wait(0.05)
            with lock:
                active -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 3


def test_memory_budget_blocks_until_released() -> None:
    budget = MemoryBudget(10)
    entered = threading.Event()
    with budget.hold(8):

        def second() -> None:
            with budget.hold(5):
                entered.set()

        worker = threading.Thread(target=second, daemon=True)
        worker.start()
        assert not entered.wait(0.2)
    assert entered.wait(2)
    with budget.hold(50):  # larger than the budget: admitted when nothing else is held
        pass


def test_limiter_cuts_once_per_cooldown_never_below_one_and_counts_every_throttle() -> None:
    limiter = RequestLimiter(4, cooldown=3600.0)
    limiter.on_throttle()
    limiter.on_throttle()  # within the cooldown: counted, not cut again
    assert (limiter.limit, limiter.throttle_events) == (2, 2)
    quick = RequestLimiter(3, cooldown=0.0)
    quick.on_throttle()
    assert quick.limit == 1  # halved, rounded down
    quick.on_throttle()
    assert quick.limit == 1
    quick.on_success()  # one success at limit 1: 2
    assert quick.limit == 2
    quick.on_success()  # one of the two needed
    quick.on_throttle()  # a cut forgets the successes counted so far
    assert quick.limit == 1
    quick.on_success()
    quick.on_success()  # 1 -> 2, then one of two
    assert quick.limit == 2
    wide = RequestLimiter(8, cooldown=0.0)
    wide.on_throttle()
    wide.on_throttle()  # 2
    wide.on_success()  # one of two
    wide.on_throttle()  # 1, the success forgotten
    for _ in range(3):
        wide.on_success()  # 1 -> 2 after one, then two more: 2 -> 3
    assert wide.limit == 3
    again = RequestLimiter(8, cooldown=0.0)
    again.on_success()  # at the maximum: not counted
    again.on_throttle()  # 4
    for _ in range(3):
        again.on_success()
    assert again.limit == 4  # 3 of the 4 needed
    again.on_success()
    assert again.limit == 5
    full = RequestLimiter(2)
    for _ in range(10):
        full.on_success()
    assert full.limit == 2  # never above the configured concurrency


def test_limiter_slot_frees_on_error_and_admits_a_waiter() -> None:
    limiter = RequestLimiter(1)
    with pytest.raises(RuntimeError), limiter.slot():
        raise RuntimeError("boom")
    assert limiter.active == 0
    entered = threading.Event()
    with limiter.slot():

        def take() -> None:
            with limiter.slot():
                entered.set()

        worker = threading.Thread(target=take, daemon=True)
        worker.start()
        assert not entered.wait(0.1)
    assert entered.wait(5)


def test_limiter_cooldown_is_measured_inclusively(monkeypatch: pytest.MonkeyPatch) -> None:
    """A throttle exactly ``cooldown`` after the last cut cuts again (a frozen clock)."""
    import s3stow.transfer.limits as limits

    now = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    limiter = RequestLimiter(16, cooldown=2.0)
    limiter.on_throttle()
    now[0] += 1.5
    limiter.on_throttle()
    assert limiter.limit == 8
    now[0] += 0.5  # exactly 2.0 later
    limiter.on_throttle()
    assert limiter.limit == 4
