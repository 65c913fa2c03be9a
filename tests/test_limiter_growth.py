"""Growth of the request limit past ``concurrency``: the rule fed synthetic windows and
completions (a fake clock, no sleeping, no time asserted)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from s3stow.config import Settings
from s3stow.transfer.limits import (
    HOLD,
    STREAM_WINDOW,
    STREAM_WINDOW_MIN,
    STREAM_WINDOW_SECONDS,
    WINDOW_MIN,
    Growth,
    RequestLimiter,
    StreamLimiter,
)


def latency_bound(limit: int, *, rtt: float = 0.05, cap: float = 1e9) -> float:
    """Completions per second of a server ``rtt`` away that serves at most ``cap``/s."""
    return min(limit / rtt, cap)


def run_windows(growth: Growth, limit: int, windows: int, rate_of: object) -> list[int]:
    limits = [limit]
    for _ in range(windows):
        limit = growth.judge(limit, rate_of(limit), full=True)  # type: ignore[operator]
        limits.append(limit)
    return limits


def test_doubles_while_rate_follows_up_to_ceiling() -> None:
    growth = Growth(256)
    limits = run_windows(growth, 16, 12, latency_bound)
    assert limits[-1] == 256
    assert sorted(set(limits)) == [16, 32, 64, 128, 256]
    assert growth.reverts == 0


def test_goes_back_when_more_requests_do_not_pay() -> None:
    growth = Growth(256)  # a fast local server: the rate does not move with the limit
    limits = run_windows(growth, 16, 6, lambda _limit: 600.0)
    assert max(limits) == 32  # one try
    assert limits[-1] == 16
    assert growth.reverts == 1
    assert growth.steps == 0


def test_settles_where_the_rate_stops_rising() -> None:
    growth = Growth(256)  # 50 ms away, but the machine serves at most 1,600 files/s
    limits = run_windows(growth, 16, 3 * HOLD, lambda lim: latency_bound(lim, cap=1600.0))
    # 16 -> 32 (640/s) -> 64 (1,280/s) -> 128 (1,600/s: +25%, confirmed, no further)
    assert limits[-1] == 128
    assert 256 not in limits[: HOLD + 8]


def test_a_step_that_does_not_pay_is_retried_only_after_a_hold() -> None:
    growth = Growth(256)
    limits = run_windows(growth, 16, 2 * HOLD + 10, lambda _limit: 600.0)
    tries = sum(1 for before, after in itertools.pairwise(limits) if after > before)
    assert tries == 2  # at the start, and once more after HOLD windows
    assert limits[-1] == 16


def test_a_small_gain_must_hold_for_a_second_window() -> None:
    growth = Growth(256)
    assert growth.judge(16, 500.0, full=True) == 16  # settling (start-up)
    assert growth.judge(16, 550.0, full=True) == 16  # a base window
    assert growth.judge(16, 600.0, full=True) == 32  # the better of two, then a step
    assert growth.judge(32, 900.0, full=True) == 32  # settling
    assert growth.judge(32, 780.0, full=True) == 32  # +30%: to be confirmed
    assert growth.judge(32, 600.0, full=True) == 16  # mean +15%: back
    assert growth.reverts == 1
    growth = Growth(256)
    growth.judge(16, 500.0, full=True)
    growth.judge(16, 550.0, full=True)
    growth.judge(16, 600.0, full=True)
    growth.judge(32, 900.0, full=True)
    growth.judge(32, 780.0, full=True)
    assert growth.judge(32, 760.0, full=True) == 32  # mean +28%: kept, growth stops
    assert growth.steps == 1
    assert growth.hold == HOLD


def test_no_growth_unless_every_slot_was_taken() -> None:
    growth = Growth(256)
    limit = 16
    for _ in range(10):
        limit = growth.judge(limit, latency_bound(limit), full=False)
    assert limit == 16


def test_a_step_whose_slots_stay_unused_is_taken_back() -> None:
    growth = Growth(256)  # the work arrives no faster than 16 slots take it
    for rate in (500.0, 550.0, 600.0):
        limit = growth.judge(16, rate, full=True)
    assert limit == 32
    assert growth.judge(32, 900.0, full=False) == 32  # settling
    assert growth.judge(32, 900.0, full=False) == 16
    assert growth.reverts == 1


def test_a_step_capped_by_the_ceiling_needs_a_proportionate_gain() -> None:
    growth = Growth(48)  # 16 -> 32 -> 48: the last step adds half the slots
    assert [growth.judge(16, 100.0, full=True) for _ in range(3)] == [16, 16, 32]
    assert growth.judge(32, 0.0, full=True) == 32
    assert growth.judge(32, 200.0, full=True) == 48
    assert growth.judge(48, 0.0, full=True) == 48
    assert growth.judge(48, 250.0, full=True) == 48  # +25% for +50% slots: kept
    assert (growth.steps, growth.reverts, growth.hold) == (2, 0, HOLD)


def test_never_past_the_ceiling() -> None:
    growth = Growth(40)
    limits = run_windows(growth, 16, 20, latency_bound)
    assert max(limits) == 40


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def saturate(limiter: RequestLimiter) -> None:
    """Take every slot at once for a moment (more work than slots)."""
    held = [limiter.slot() for _ in range(limiter.limit)]
    for cm in held:
        cm.__enter__()
    for cm in held:
        cm.__exit__(None, None, None)
    assert limiter.active == 0


def complete(limiter: RequestLimiter, clock: FakeClock, count: int, *, rtt: float) -> None:
    """``count`` successes at ``limit`` in flight ``rtt`` seconds each."""
    for _ in range(count):
        clock.now += rtt / limiter.limit
        limiter.on_success()


def test_limiter_grows_from_synthetic_completions() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(16, ceiling=128, clock=clock)
    for _ in range(12):
        saturate(limiter)
        complete(limiter, clock, max(limiter.limit, WINDOW_MIN), rtt=0.05)
    assert limiter.limit == 128
    assert limiter.growth.steps >= 3


def test_throttling_ends_growth_and_halves() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(16, ceiling=128, cooldown=0.0, clock=clock)
    for _ in range(4):
        saturate(limiter)
        complete(limiter, clock, max(limiter.limit, WINDOW_MIN), rtt=0.05)
    grown = limiter.limit
    assert grown > 16
    limiter.on_throttle()
    assert limiter.limit == grown // 2
    for _ in range(10):
        saturate(limiter)
        complete(limiter, clock, 256, rtt=0.05)
    assert limiter.limit == grown // 2  # no growth after the server pushed back


def test_after_throttling_full_windows_grow_nothing() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(16, ceiling=128, cooldown=0.0, clock=clock)
    limiter.on_throttle()
    assert limiter.limit == 8
    while limiter.limit < 16:  # recovery: additive, up to concurrency
        limiter.on_success()
    for _ in range(12):
        saturate(limiter)
        complete(limiter, clock, max(limiter.limit, WINDOW_MIN), rtt=0.05)
    assert limiter.limit == 16


def window(limiter: RequestLimiter, clock: FakeClock, *, per_second: float | None) -> None:
    """One window, every slot taken, at ``per_second`` completions (None: no time)."""
    saturate(limiter)
    for _ in range(max(limiter.limit, WINDOW_MIN)):
        clock.now += 1 / per_second if per_second else 0.0
        limiter.on_success()


def test_the_limiter_measures_each_window_and_steps_back_when_the_rate_stays() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(16, ceiling=128, clock=clock)
    limits = []
    for _ in range(8):
        window(limiter, clock, per_second=600.0)  # whatever the limit: a busy server
        limits.append(limiter.limit)
    assert max(limits) == 32
    assert limiter.limit == 16
    assert (limiter.growth.steps, limiter.growth.reverts) == (0, 1)
    assert limiter.growth.base_rate == pytest.approx(600.0)


def test_a_window_without_measurable_time_counts_as_fast() -> None:
    clock = FakeClock()  # never moves
    limiter = RequestLimiter(16, ceiling=64, clock=clock)
    for _ in range(8):
        window(limiter, clock, per_second=None)
    assert limiter.limit == 64


def test_windows_with_a_slot_never_taken_grow_nothing() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(16, ceiling=128, clock=clock)
    for _ in range(10):
        complete(limiter, clock, max(limiter.limit, WINDOW_MIN), rtt=0.05)  # no saturate
    assert limiter.limit == 16
    assert limiter.peak == 0


def test_recovery_after_throttling_stops_at_concurrency() -> None:
    limiter = RequestLimiter(16, ceiling=256, cooldown=0.0)
    limiter.on_throttle()
    for _ in range(1000):
        limiter.on_success()
    assert limiter.limit == 16


def test_without_a_ceiling_it_stays_at_concurrency() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(16, clock=clock)
    for _ in range(6):
        saturate(limiter)
        complete(limiter, clock, WINDOW_MIN, rtt=0.05)
    assert limiter.limit == 16
    assert limiter.peak == 16


def test_ceiling_setting() -> None:
    assert Settings().concurrency_ceiling == 256
    assert Settings(concurrency=4).concurrency_ceiling == 64
    assert Settings(concurrency=512).concurrency_ceiling == 512
    assert Settings(max_concurrency=8).concurrency_ceiling == 16  # below: no growth
    assert Settings(max_concurrency="cpu*64").max_concurrency is not None


def test_each_rule_of_growth_at_its_boundary() -> None:
    """Window by window, rates at the thresholds themselves (>= keeps): the base,
    doubling while the rate follows, a small gain confirmed then held, the ceiling."""
    growth = Growth(512)
    # (limit, rate, every slot taken) -> the limit after the window
    windows = [
        ((16, 1.0, True), 16),  # settling after the start
        ((16, 100.0, False), 16),  # slots not all taken, no base: nothing to judge
        ((16, 90.0, True), 16),  # a base
        ((16, 100.0, True), 32),  # the better of two: 100/s, double
        ((32, 0.0, True), 32),  # settling
        ((32, 150.0, True), 64),  # twice the slots, +50% exactly (SCALING): double
        ((64, 0.0, True), 64),
        ((64, 225.0, True), 128),  # +50% of 150 exactly: double again
        ((128, 0.0, True), 128),
        ((128, 270.0, True), 128),  # +20% of 225 exactly (WORTH): to be confirmed
        ((128, 270.0, True), 128),  # the mean holds +20%: kept, growth stops
    ]
    for (limit, rate, full), after in windows:
        assert growth.judge(limit, rate, full=full) == after, (limit, rate)
    assert (growth.steps, growth.reverts, growth.hold) == (3, 0, HOLD)
    assert (growth.base_limit, growth.base_rate, growth.confirming) == (128, 270.0, 0.0)
    for _ in range(HOLD):
        assert growth.judge(128, 1000.0, full=True) == 128  # held, whatever the rate
    assert growth.settling
    assert growth.base_limit == 0
    assert growth.judge(128, 0.0, full=True) == 128  # settling
    assert growth.judge(128, 300.0, full=True) == 128  # a fresh base
    assert growth.judge(128, 300.0, full=True) == 256
    assert growth.judge(256, 0.0, full=True) == 256
    assert growth.judge(256, 450.0, full=True) == 512  # +50%: double, to the ceiling
    assert growth.judge(512, 0.0, full=True) == 512
    assert growth.judge(512, 675.0, full=True) == 512  # at the ceiling: held there
    assert (growth.steps, growth.reverts, growth.hold) == (5, 0, HOLD)


def test_a_step_back_holds_and_then_measures_afresh() -> None:
    """From a limit of 1: a step whose slots stay unused goes back at once; one that
    does not pay goes back too; each time HOLD windows pass, then one settles and a
    fresh base is measured before the next try."""
    growth = Growth(64)
    assert [growth.judge(1, 10.0, full=True) for _ in range(3)] == [1, 1, 2]
    assert growth.judge(2, 0.0, full=True) == 2  # settling
    assert growth.judge(2, 20.0, full=False) == 1  # the new slot unused: back
    assert (growth.reverts, growth.hold, growth.settling) == (1, HOLD, True)
    assert growth.confirming == 0.0
    limits = [growth.judge(1, 10.0, full=True) for _ in range(HOLD + 4)]
    # one settling window, HOLD held, one settling, a base, then the better of two
    assert limits == [1] * (HOLD + 3) + [2]
    assert growth.judge(2, 0.0, full=True) == 2
    assert growth.judge(2, 11.0, full=True) == 1  # +10%: not worth the requests: back
    assert growth.reverts == 2
    assert (growth.hold, growth.settling) == (HOLD, True)
    assert growth.judge(1, 10.0, full=True) == 1  # settling again first
    assert growth.hold == HOLD
    # after the hold a fresh base again, a step, its slots unused: the third step back
    limits = [growth.judge(1, 10.0, full=True) for _ in range(HOLD + 3)]
    assert limits == [1] * (HOLD + 2) + [2]
    assert growth.judge(2, 0.0, full=True) == 2
    assert growth.judge(2, 20.0, full=False) == 1
    assert growth.reverts == 3
    growth = Growth(64)
    assert [growth.judge(16, 100.0, full=True) for _ in range(2)] == [16, 16]  # a base
    assert growth.judge(16, 100.0, full=False) == 16  # not full at the base: no step back
    assert (growth.reverts, growth.hold, growth.base_limit) == (0, 0, 0)


# ---- StreamLimiter: ranges in flight, judged by bytes/s ---------------------------------

MiB = 1024 * 1024


def stream_window(
    limiter: StreamLimiter, clock: FakeClock, *, per_stream: float, cap: float = float("inf")
) -> None:
    """One window of bytes, every stream slot taken: each stream carries ``per_stream``
    bytes/s, the whole at most ``cap`` (a server or a link that is full)."""
    with streams_busy(limiter):
        feed_window(limiter, clock, per_stream=per_stream, cap=cap)


@contextmanager
def streams_busy(limiter: StreamLimiter) -> Iterator[None]:
    """Every stream slot taken while the bytes arrive, as ranges in flight hold them."""
    held = [limiter.slot() for _ in range(limiter.limit)]
    for cm in held:
        cm.__enter__()
    try:
        yield
    finally:
        for cm in held:
            cm.__exit__(None, None, None)


def feed_window(limiter: StreamLimiter, clock: FakeClock, *, per_stream: float, cap: float) -> None:
    limit, judged = limiter.limit, limiter.windows
    rate = min(limit * per_stream, cap)
    least = max(max(limit, STREAM_WINDOW_MIN) * STREAM_WINDOW, STREAM_WINDOW_SECONDS * rate)
    received = 0
    while limiter.windows == judged and received < 2 * least:  # none judged: not growing
        clock.now += MiB / rate
        limiter.on_bytes(MiB)
        received += MiB
    assert limiter.windows == judged or received >= least  # never before both floors


def stream_limits(
    limiter: StreamLimiter, clock: FakeClock, windows: int, **link: float
) -> list[int]:
    limits = [limiter.limit]
    for _ in range(windows):
        stream_window(limiter, clock, **link)
        limits.append(limiter.limit)
    return limits


def test_streams_grow_while_bytes_per_second_follow() -> None:
    clock = FakeClock()  # a remote S3: each connection carries 40 MB/s, whatever the count
    limiter = StreamLimiter(4, ceiling=16, clock=clock)
    limits = stream_limits(limiter, clock, 10, per_stream=40e6)
    assert sorted(set(limits)) == [4, 8, 16]
    assert limits[-1] == 16
    assert limiter.peak == 16
    assert (limiter.growth.steps, limiter.growth.reverts) == (2, 0)


def test_streams_stay_where_more_do_not_pay() -> None:
    clock = FakeClock()  # a loopback server: 600 MB/s with 4 streams or 16
    limiter = StreamLimiter(4, ceiling=16, clock=clock)
    limits = stream_limits(limiter, clock, HOLD, per_stream=400e6, cap=600e6)
    assert max(limits) == 8  # one try
    assert limits[-1] == 4
    assert (limiter.growth.steps, limiter.growth.reverts) == (0, 1)


def test_streams_settle_where_the_rate_stops_rising() -> None:
    clock = FakeClock()  # 40 MB/s per stream, 360 MB/s in all: 8 pay, 16 add 12.5%
    limiter = StreamLimiter(4, ceiling=16, clock=clock)
    limits = stream_limits(limiter, clock, HOLD, per_stream=40e6, cap=360e6)
    assert max(limits) == 16
    assert limits[-1] == 8
    assert (limiter.growth.steps, limiter.growth.reverts) == (1, 1)


def test_streams_count_bytes_not_ranges() -> None:
    clock = FakeClock()  # one window's bytes, however few ranges ended in it
    limiter = StreamLimiter(4, ceiling=16, clock=clock)
    for _ in range(3):
        stream_window(limiter, clock, per_stream=40e6)
    assert limiter.limit == 8
    for _ in range(1000):  # whole ranges ending add no bytes (and there is no throttling)
        limiter.on_success()
    assert limiter.limit == 8


def test_streams_halve_on_throttling_and_grow_no_more() -> None:
    clock = FakeClock()
    limiter = StreamLimiter(4, ceiling=16, cooldown=0.0, clock=clock)
    stream_limits(limiter, clock, 6, per_stream=40e6)
    assert limiter.limit == 16
    limiter.on_throttle()
    assert limiter.limit == 8
    limiter.on_throttle()
    assert limiter.limit == 4
    stream_limits(limiter, clock, 10, per_stream=40e6)
    assert limiter.limit == 4  # the server pushed back: no growth for the run
    limiter.on_throttle()
    assert limiter.limit == 2  # below the start: ranges that end add streams back
    stream_limits(limiter, clock, 4, per_stream=40e6)
    assert limiter.limit == 2  # bytes alone do not
    for _ in range(2 + 3):
        limiter.on_success()
    assert limiter.limit == 4  # additive, up to the start
    for _ in range(100):
        limiter.on_success()
    assert limiter.limit == 4


def test_streams_never_exceed_the_ceiling() -> None:
    clock = FakeClock()
    assert StreamLimiter(4, ceiling=2, clock=clock).limit == 2  # concurrency 2: 2 streams
    limiter = StreamLimiter(4, ceiling=12, clock=clock)
    limits = stream_limits(limiter, clock, 12, per_stream=40e6)
    assert max(limits) == 12
    assert limiter.peak == 12
    limiter = StreamLimiter(4, ceiling=4, clock=clock)
    assert max(stream_limits(limiter, clock, 12, per_stream=40e6)) == 4


def test_time_without_streams_is_left_out_of_the_windows() -> None:
    """Between two large objects no range is in flight (small files, a listing page):
    that time does not dilute the bytes/s a window measures. Here every window after
    the first step has a minute without streams in it; counted, it would take the step
    back."""
    clock = FakeClock()
    clock.now = 100.0  # the run started long before its first large object
    limiter = StreamLimiter(4, ceiling=16, clock=clock)
    for _ in range(8):
        judged, pause = limiter.windows, limiter.limit > 4
        with streams_busy(limiter):  # an object's last ranges
            for _ in range(4):
                clock.now += MiB / (limiter.limit * 40e6)
                limiter.on_bytes(MiB)
        clock.now += 60.0 if pause else 0.0  # small files
        with streams_busy(limiter):  # the next object
            while limiter.windows == judged:
                clock.now += MiB / (limiter.limit * 40e6)
                limiter.on_bytes(MiB)
    assert limiter.limit == 16
    assert limiter.growth.reverts == 0
