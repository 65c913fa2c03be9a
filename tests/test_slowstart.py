"""Slow start of the request limit: the rule fed synthetic rounds of latencies, and the
limiter timing its own slots with a fake clock (no sleeping, no time asserted)."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Literal

import pytest

from s3stow.transfer.limits import SCALING, WINDOW_MIN, WORTH, RequestLimiter
from s3stow.transfer.slowstart import START_RISE_FLOOR, START_ROUND_MIN, SlowStart


def slow_start(ceiling: int = 256) -> SlowStart:
    return SlowStart(ceiling, scaling=SCALING, worth=WORTH)


def round_at(start: SlowStart, limit: int, seconds: float, *, full: bool = True) -> int:
    """One round of ``limit`` requests taking ``seconds`` each: the limit after it."""
    epoch = start.admitted(limit if full else limit - 1, limit)
    new = None
    for _ in range(max(limit, START_ROUND_MIN)):
        new = start.completed(epoch, seconds, limit)
    return limit if new is None else new


def climb(start: SlowStart, limit: int, latency_of: object, rounds: int) -> list[int]:
    limits = [limit]
    for _ in range(rounds):
        limit = round_at(start, limit, latency_of(limit))  # type: ignore[operator]
        limits.append(limit)
    return limits


def test_doubles_every_round_while_latency_holds_up_to_the_ceiling() -> None:
    start = slow_start()  # 50 ms away, nothing queues: in flight sets the pace
    assert climb(start, 16, lambda _limit: 0.05, 6) == [16, 32, 64, 128, 256, 256, 256]
    assert not start.active
    assert start.stopped_by == "ceiling"
    assert start.doublings == 4


def test_a_round_trip_of_seconds_climbs_as_a_short_one_does() -> None:
    start = slow_start()  # a satellite link: 2 s a request, whatever the limit
    assert climb(start, 16, lambda _limit: 2.0, 3) == [16, 32, 64, 128]
    assert start.active


def test_latency_that_doubles_with_the_limit_goes_back_after_a_second_look() -> None:
    start = slow_start()  # a busy local server: twice the requests, twice the wait
    limits = climb(start, 16, lambda limit: limit * 0.001, 4)
    assert limits == [16, 32, 32, 16, 16]  # 32 measured twice, then back
    assert start.stopped_by == "latency"
    assert not start.active


def test_a_gain_worth_keeping_but_not_doubling_for_stops_there() -> None:
    start = slow_start()  # at 64, requests take 1.5 x as long: 1.33 x the files/s
    limits = climb(start, 16, lambda limit: 0.05 if limit < 64 else 0.075, 6)
    assert limits == [16, 32, 64, 64, 64, 64, 64]
    assert start.stopped_by == "latency"


def test_the_rule_at_its_boundaries() -> None:
    def after(ratio: float) -> list[int]:  # 50 ms at 32, 50 ms x ratio from 64 on
        start = slow_start()
        return climb(start, 32, lambda limit: 0.05 if limit < 64 else 0.05 * ratio, 3)

    keep = 2 / (1 + SCALING)  # a doubling pays while latency rises at most this much
    assert after(keep * 0.999) == [32, 64, 128, 256]
    assert after(keep * 1.001) == [32, 64, 64, 64]  # worth keeping, not doubling for
    back = 2 / (1 + WORTH)  # below 1 + WORTH the step is taken back
    assert after(back * 0.999) == [32, 64, 64, 64]
    assert after(back * 1.001) == [32, 64, 64, 32]


def test_a_first_round_that_did_not_pay_is_measured_again() -> None:
    start = slow_start()
    assert round_at(start, 16, 0.05) == 32
    assert round_at(start, 32, 0.2) == 32  # new connections, new threads: once more
    assert start.active
    assert round_at(start, 32, 0.05) == 64  # the quicker of the two rounds counts
    assert start.doublings == 2


def test_a_rise_below_the_floor_is_no_rise() -> None:
    start = slow_start()  # a local server's few milliseconds, doubled by noise
    tiny = START_RISE_FLOOR * 0.4
    assert climb(start, 16, lambda limit: tiny if limit == 16 else tiny * 2, 2) == [16, 32, 64]


def test_a_rise_of_exactly_the_floor_is_a_rise() -> None:
    """The floor is the smallest rise that counts: 1 ms at 16, 3 ms at 32 (three times
    as long for twice the requests) is judged, measured again and taken back."""
    assert START_RISE_FLOOR == 0.003 - 0.001  # exactly, in binary floating point too
    start = slow_start()
    assert climb(start, 16, lambda limit: 0.001 if limit == 16 else 0.003, 3) == [16, 32, 32, 16]
    assert start.stopped_by == "latency"


def test_rounds_with_a_slot_never_taken_teach_nothing() -> None:
    start = slow_start()  # the walk, not the slots, sets the pace
    for _ in range(5):
        assert round_at(start, 16, 0.05, full=False) == 16
    assert start.active
    assert start.doublings == 0
    assert round_at(start, 16, 0.05) == 32


def test_requests_admitted_before_a_step_do_not_count_in_the_next_round() -> None:
    start = slow_start()
    old = start.admitted(16, 16)
    assert round_at(start, 16, 0.05) == 32
    for _ in range(1000):  # stragglers of the old limit, however slow
        assert start.completed(old, 5.0, 32) is None
    assert round_at(start, 32, 0.05) == 64


def test_a_round_has_a_minimum_of_completions() -> None:
    start = slow_start()
    epoch = start.admitted(2, 2)
    results = [start.completed(epoch, 0.05, 2) for _ in range(START_ROUND_MIN)]
    assert results[:-1] == [None] * (START_ROUND_MIN - 1)
    assert results[-1] == 4


def test_throttling_ends_it() -> None:
    start = slow_start()
    start.stop()
    assert not start.active
    assert start.stopped_by == "throttling"
    assert round_at(start, 16, 0.05) == 16


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def full_round(limiter: RequestLimiter, clock: FakeClock, *, seconds: float) -> None:
    """Every slot taken at once, each request ``seconds`` long, each a success."""
    with ExitStack() as held:
        for _ in range(limiter.limit):
            held.enter_context(limiter.slot())
            limiter.on_success()
        clock.now += seconds


def test_the_limiter_times_its_slots_and_climbs() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(16, ceiling=128, clock=clock, slow_start=True)
    limits = [limiter.limit]
    for _ in range(4):
        full_round(limiter, clock, seconds=0.05)
        limits.append(limiter.limit)
    assert limits == [16, 32, 64, 128, 128]
    assert limiter.start is not None
    assert limiter.start.stopped_by == "ceiling"
    assert limiter.windows == 0  # Growth's windows wait for slow start to end
    assert limiter.peak == 128


def test_the_limiter_goes_back_when_its_requests_queue() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(16, ceiling=256, clock=clock, slow_start=True)
    for _ in range(4):
        full_round(limiter, clock, seconds=limiter.limit * 0.002)
    assert limiter.limit == 16
    assert limiter.start is not None
    assert limiter.start.stopped_by == "latency"
    for _ in range(8):  # Growth's windows count from here
        full_round(limiter, clock, seconds=0.032)
    assert limiter.windows >= 1


def test_growths_first_window_after_slow_start_is_a_whole_window() -> None:
    """When slow start ends, Growth's first window starts empty: it closes at exactly
    ``max(limit, WINDOW_MIN)`` completions counted from there, not one sooner."""
    clock = FakeClock()
    limiter = RequestLimiter(16, ceiling=256, clock=clock, slow_start=True)
    assert limiter.start is not None
    while limiter.start.active:  # 16, 32, 32 again, then back to 16: it ends there
        full_round(limiter, clock, seconds=limiter.limit * 0.002)
    assert (limiter.start.stopped_by, limiter.limit, limiter.windows) == ("latency", 16, 0)
    window = max(limiter.limit, WINDOW_MIN)
    with ExitStack() as held:
        for _ in range(limiter.limit):  # every slot taken
            held.enter_context(limiter.slot())
        clock.now += 1.0
        for _ in range(window - 1):
            limiter.on_success()
        assert limiter.windows == 0
        limiter.on_success()
        assert limiter.windows == 1


def test_a_failed_request_is_not_timed() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(16, ceiling=256, clock=clock, slow_start=True)
    for _ in range(40):
        with pytest.raises(OSError, match="reset"), limiter.slot():
            raise OSError("connection reset")
    assert limiter.limit == 16
    assert limiter.active == 0
    full_round(limiter, clock, seconds=0.05)
    assert limiter.limit == 32


def test_throttling_during_slow_start_halves_and_ends_it() -> None:
    clock = FakeClock()
    limiter = RequestLimiter(16, ceiling=256, clock=clock, cooldown=0.0, slow_start=True)
    full_round(limiter, clock, seconds=0.05)
    assert limiter.limit == 32
    limiter.on_throttle()
    assert limiter.limit == 16
    assert limiter.start is not None
    assert limiter.start.stopped_by == "throttling"
    for _ in range(6):
        full_round(limiter, clock, seconds=0.05)
    assert limiter.limit == 16


def test_only_where_growth_is_allowed() -> None:
    assert RequestLimiter(16, ceiling=256).start is None  # not asked (restores)
    assert RequestLimiter(16, ceiling=16, slow_start=True).start is None  # no ceiling above
    assert RequestLimiter(16, ceiling=32, slow_start=True).start is not None


# ---- judged by the median request of a round (restores) -----------------------------------
def round_of(start: SlowStart, limit: int, latencies: list[float]) -> int:
    """One full round whose requests take ``latencies`` (cycled): the limit after it."""
    epoch = start.admitted(limit, limit)
    new = None
    for n in range(max(limit, START_ROUND_MIN)):
        new = start.completed(epoch, latencies[n % len(latencies)], limit)
    return limit if new is None else new


def queued(limit: int) -> list[float]:
    """A local server's round: one request in eight as quick as ever (1 ms), the rest
    queued for the cores, each twice as long at twice the limit."""
    return [0.001] + [limit * 0.001] * 7


def test_by_the_median_a_round_whose_most_requests_queue_goes_back() -> None:
    start = SlowStart(256, scaling=SCALING, worth=WORTH, by="median")
    limits = [16]
    for _ in range(4):
        limits.append(round_of(start, limits[-1], queued(limits[-1])))
    assert limits == [16, 32, 32, 16, 16]  # 32 measured twice, then back
    assert start.stopped_by == "latency"


def test_by_the_quickest_the_same_rounds_climb_to_the_ceiling() -> None:
    start = SlowStart(256, scaling=SCALING, worth=WORTH)  # the default: uploads
    assert start.by == "quickest"
    limits = [16]
    for _ in range(5):
        limits.append(round_of(start, limits[-1], queued(limits[-1])))
    assert limits == [16, 32, 64, 128, 256, 256]
    assert start.stopped_by == "ceiling"


def test_by_the_median_a_few_slow_requests_do_not_stop_the_climb() -> None:
    start = SlowStart(256, scaling=SCALING, worth=WORTH, by="median")
    limits = [16]
    for _ in range(4):  # 50 ms away: three in eight open a connection (150 ms)
        limits.append(round_of(start, limits[-1], [0.05] * 5 + [0.15] * 3))
    assert limits == [16, 32, 64, 128, 256]
    assert start.active


def test_the_limiter_passes_the_median_rule_to_slow_start() -> None:
    """Each request's slot is timed: one in eight ends at once, the rest take as long
    as the limit is large (they queue); judged by the median the limiter goes back to
    16, by the quickest it climbs."""
    found: dict[str, int] = {}
    rules: tuple[Literal["quickest", "median"], ...] = ("quickest", "median")
    for by in rules:
        clock = FakeClock()
        limiter = RequestLimiter(16, ceiling=256, clock=clock, slow_start=True, slow_start_by=by)
        for _ in range(4):
            with ExitStack() as held:
                slots = []
                for _ in range(limiter.limit):
                    slot = ExitStack()
                    slot.enter_context(limiter.slot())
                    slots.append(slot)
                    held.callback(slot.close)
                clock.now += 0.001
                for index, slot in enumerate(slots):
                    if index % 8 == 0:
                        slot.close()
                        limiter.on_success()
                clock.now += limiter.limit * 0.001
                for index, slot in enumerate(slots):
                    if index % 8:
                        slot.close()
                        limiter.on_success()
        found[by] = limiter.limit
    assert found == {"quickest": 256, "median": 16}


def test_a_restore_judges_slow_start_by_the_median_an_upload_by_the_quickest() -> None:
    from s3stow.config import load_settings
    from s3stow.restore.engine import Restorer
    from s3stow.transfer.engine import Uploader

    settings = load_settings(env={}, flags={"endpoint_url": "http://127.0.0.1:9"})
    restorer, uploader = Restorer(settings), Uploader(settings)
    assert restorer.limiter.start is not None
    assert uploader.limiter.start is not None
    assert (restorer.limiter.start.by, uploader.limiter.start.by) == ("median", "quickest")
