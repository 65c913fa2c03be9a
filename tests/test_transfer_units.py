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
    [(100 * MiB, 8 * MiB), (600 * MiB, 64 * MiB), (8 * GiB, 64 * MiB), (9 * GiB, 128 * MiB)],
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
