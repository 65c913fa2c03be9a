"""Concurrency and memory limits shared by every transfer of a run.

``RequestLimiter`` is an adjustable semaphore: it admits at most ``limit`` requests
at once. Below the configured concurrency it applies AIMD: it halves the limit (at
most once per ``cooldown`` seconds) when S3 throttles and adds one back after
``limit`` consecutive successes. Above it, up to ``ceiling``, it grows only while
that pays: over a long round trip, requests in flight are what sets the pace
(files/s ~= in flight / round trip), so the limit doubles as long as the completions
per second rise with it, and settles where they stop rising (see ``Growth``); with
``slow_start`` the limit first doubles round by round while the requests' latency
(the quickest request of a round, or with ``slow_start_by="median"``, restores, the
median one) does not rise (``SlowStart``, transfer/slowstart.py), then ``Growth``
goes on.
``StreamLimiter`` is the same limiter for streams of bytes (a large object's ranged
GETs in a restore): it starts low and grows by the same judgement (``Growth``), fed
bytes per second instead of completions per second. ``MemoryBudget`` caps the bytes
held in buffers: memory ~= min(limit, budget / part) * part.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Literal

from s3stow.transfer.slowstart import SlowStart

# Growth past the configured concurrency, judged per window of completions.
WINDOW_MIN = 64  # completions per window at least (a window is max(limit, this))
SCALING = 0.5  # keep doubling while files/s rose by at least half of what the limit did
WORTH = 0.2  # a rise below 20% is not worth the requests: back to the previous limit
HOLD = 32  # windows to wait after a step that did not pay before trying again
# Growth of streams (StreamLimiter), judged per window of bytes.
STREAM_WINDOW = 4 * 1024 * 1024  # bytes per stream in a window (4 reads of 1 MiB)
STREAM_WINDOW_MIN = 4  # streams' worth at least (a window: max(limit, this) x the above)
STREAM_WINDOW_SECONDS = 0.25  # and at least this long: a fast link's windows of a few
# tens of MiB last tens of ms, where one stall of a thread or of the server decides


class Growth:
    """When to raise the request limit past ``concurrency``, from measured windows.

    A window is ``max(limit, WINDOW_MIN)`` completions, measured as completions per
    second. One window settles after each change of the limit (requests admitted
    under the previous limit are still finishing); the next is judged, and only if
    every slot was taken at some moment of it (``full``: otherwise the work, not the
    slots, set the pace, and more slots would change nothing; after a step, such a
    window takes the step back). With ``base`` the last judged (limit, rate):

    - no base yet: the better of two windows becomes the base and the limit doubles
      (up to ``ceiling``);
    - after a step from base (B, Rb) to L: a rate R >= Rb * (1 + SCALING * (L/B - 1))
      keeps L and doubles again; R >= Rb * (1 + WORTH) is measured once more, and if
      the mean of the two windows holds it L is kept and growth stops there; less goes
      back to B (the extra requests bought only latency). A stop holds the limit
      for HOLD windows, then a fresh base is measured and growth tried again.

    Pure state: no clock, no lock (the limiter holds its lock around ``judge``).
    """

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.base_limit = 0  # 0: no base measured at the current limit
        self.base_rate = 0.0
        self.settling = True
        self.hold = 0
        self.confirming = 0.0  # the rate of a window that gained a little, to confirm
        self.steps = 0  # increases that were kept
        self.reverts = 0  # increases that did not pay and were taken back

    def judge(self, limit: int, rate: float, *, full: bool) -> int:
        """The limit after a window of ``rate`` completions/s at ``limit``."""
        if self.settling:
            self.settling = False
            return limit
        if self.hold:
            self.hold -= 1
            if not self.hold:  # measure afresh before the next try
                self.settling, self.base_limit = True, 0
            return limit
        if not full:  # after a step: the new slots are not even used, so back
            if 0 < self.base_limit < limit:
                self.reverts += 1
                self.hold, self.settling, self.confirming = HOLD, True, 0.0
                return self.base_limit
            self.base_limit = 0
            return limit
        if self.base_limit == 0 or self.base_limit > limit:  # a base: the better of two
            self.base_limit, self.base_rate = limit, rate  # windows (a run's first ones
            return limit  # also walk the tree and learn the fast path: slower)
        if self.base_limit == limit:
            self.base_rate = max(self.base_rate, rate)
            return self._double(limit)
        scale = limit / self.base_limit
        if self.confirming:  # noise makes a single window's small gain likely
            rate, self.confirming = (rate + self.confirming) / 2, 0.0
            if rate >= self.base_rate * (1 + WORTH):
                self.steps += 1
                self.base_limit, self.base_rate = limit, rate
                self.hold = HOLD
                return limit
        elif rate >= self.base_rate * (1 + SCALING * (scale - 1)):
            self.steps += 1
            self.base_limit, self.base_rate = limit, rate
            return self._double(limit)
        elif rate >= self.base_rate * (1 + WORTH):
            self.confirming = rate
            return limit
        self.reverts += 1
        self.hold, self.settling = HOLD, True
        return self.base_limit

    def _double(self, limit: int) -> int:
        if limit >= self.ceiling:
            self.hold = HOLD
            return limit
        self.settling = True
        return min(self.ceiling, limit * 2)


class RequestLimiter:
    """At most ``limit`` requests in flight; AIMD on throttling, growth by throughput.

    ``maximum`` is the configured concurrency, where a run starts and up to which it
    recovers after throttling; ``ceiling`` (at least ``maximum``) is how far growth by
    throughput may take it: every ``max(limit, WINDOW_MIN)`` successes at or above
    ``maximum`` make a window, whose completions per second, and whether every slot
    was taken at some moment of it, ``Growth`` judges.

    With ``slow_start``, ``SlowStart`` first doubles the limit every round of requests
    whose quickest (``slow_start_by="median"``: median) is no slower than the previous
    round's (each request is timed in its slot); ``Growth``'s windows begin when it ends.

    Any throttling ends growth for the run (the server pushes back: AIMD decides).
    Only completions and a clock are used, so tests drive it with synthetic events.
    """

    def __init__(
        self,
        maximum: int,
        *,
        ceiling: int | None = None,
        cooldown: float = 1.0,
        clock: Callable[[], float] | None = None,
        slow_start: bool = False,
        slow_start_by: Literal["quickest", "median"] = "quickest",
    ) -> None:
        self.maximum = maximum
        self.ceiling = max(maximum, ceiling or maximum)
        self.limit = maximum
        self.active = 0
        self.peak = 0  # most requests in flight at once
        self.throttle_events = 0
        self.windows = 0  # windows judged
        self.growth = Growth(self.ceiling)
        self._growing = self.ceiling > maximum
        # climbs round by round before Growth's windows judge (transfer/slowstart.py)
        self.start = (
            SlowStart(self.ceiling, scaling=SCALING, worth=WORTH, by=slow_start_by)
            if slow_start and self._growing
            else None
        )
        self._successes = 0
        self._last_cut = float("-inf")  # the first throttle always cuts
        self._cooldown = cooldown
        self._clock = clock or (lambda: time.monotonic())  # looked up at each call
        self._window_start = self._clock()
        self._window_done = 0
        self._full = False  # every slot was taken at some moment of this window
        # StreamLimiter leaves time with no slot taken out of its windows
        self._skip_idle = False
        self._idle_since: float | None = None  # when the last slot was given back
        self._waiting = 0  # threads waiting for a slot (notify only when one does)
        self._cond = threading.Condition()

    def slot(self) -> RequestSlot:
        """A context that holds one request slot (waits for one while all are taken);
        a success in it (no exception) times the request for slow start."""
        return RequestSlot(self)

    def _enter(self) -> int:
        """Take a slot, waiting while every one is taken; the slow-start epoch the
        request is timed in (-1: not timed)."""
        epoch = -1
        with self._cond:
            while self.active >= self.limit:
                self._waiting += 1
                try:
                    self._cond.wait()
                finally:
                    self._waiting -= 1
            if self._idle_since is not None:  # the window resumes where it paused
                self._window_start += self._clock() - self._idle_since
                self._idle_since = None
            self.active += 1
            if self.active >= self.limit:
                self._full = True
            if self.active > self.peak:
                self.peak = self.active
            start = self.start
            if start is not None and start.active:
                epoch = start.admitted(self.active, self.limit)
        return epoch

    def _exit(self, epoch: int, began: float, *, succeeded: bool) -> None:
        """Give a slot back (a waiting thread is woken only if one waits)."""
        with self._cond:
            self.active -= 1
            if self._skip_idle and not self.active:
                self._idle_since = self._clock()
            if succeeded and epoch >= 0:
                self._climb(epoch, self._clock() - began)
            if self._waiting:
                self._cond.notify()

    def _climb(self, epoch: int, seconds: float) -> None:
        """Slow start's verdict on a request that took ``seconds``. Lock held."""
        start = self.start
        assert start is not None
        if not start.active or self.limit < self.maximum:  # ended, or throttled: AIMD
            return
        limit = start.completed(epoch, seconds, self.limit)
        if limit is not None:
            if limit > self.limit:
                self._cond.notify_all()
            self.limit = limit
        if not start.active:  # it ended here: Growth's windows start from now
            self._window_start, self._window_done, self._full = self._clock(), 0, False

    def on_throttle(self) -> None:
        with self._cond:
            self.throttle_events += 1
            self._growing = False
            if self.start is not None:
                self.start.stop()
            now = self._clock()
            if now - self._last_cut >= self._cooldown:
                self.limit = max(1, self.limit // 2)
                self._last_cut = now
                self._successes = 0

    def on_success(self) -> None:
        with self._cond:
            if self._recovering():
                return
            self._count(1, max(self.limit, WINDOW_MIN))

    def _recovering(self) -> bool:
        """After throttling, below ``maximum``: one more slot per ``limit`` successes
        (additive increase). Called with the lock held."""
        if self.limit >= self.maximum:
            return False
        self._successes += 1
        if self._successes >= self.limit:
            self.limit += 1
            self._successes = 0
            self._cond.notify()
        return True

    def _count(self, amount: int, window: int, *, seconds: float = 0.0) -> None:
        """``amount`` more done in the current window of ``window``; the window is
        judged once full (and ``seconds`` long). Called with the lock held."""
        if not self._growing or self.limit < self.maximum:
            return
        if self.start is not None and self.start.active:  # slow start climbs first
            return
        self._window_done += amount
        if self._window_done >= window and (
            not seconds or self._clock() - self._window_start >= seconds
        ):
            self._end_window()

    def _end_window(self) -> None:
        now = self._clock()
        elapsed = now - self._window_start
        rate = self._window_done / elapsed if elapsed > 0 else float("inf")
        limit = self.growth.judge(self.limit, rate, full=self._full)
        self.windows += 1
        self._window_start, self._window_done, self._full = now, 0, False
        if limit > self.limit:
            self._cond.notify_all()
        self.limit = limit


class StreamLimiter(RequestLimiter):
    """At most ``limit`` streams of bytes in flight (a restore's ranged GETs): it starts
    at ``start`` and grows up to ``ceiling`` while the bytes per second rise with it.

    ``RequestLimiter``'s rules, with windows of bytes: every
    ``max(limit, STREAM_WINDOW_MIN) * STREAM_WINDOW`` bytes received (``on_bytes``, as
    they arrive, so a window does not wait for a range to end) make a window, judged
    by ``Growth`` as bytes/s, once it has lasted ``STREAM_WINDOW_SECONDS``; a window
    in which every stream slot was taken at some moment is ``full``. Time with no
    stream in flight (between two large objects of a tree) is left out of the window:
    it says nothing about what more streams would carry. Throttling halves the limit
    (once per ``cooldown``) and ends growth for the run; successes (``on_success``, a
    whole range) add it back one by one up to ``start``.
    """

    def __init__(
        self,
        start: int,
        *,
        ceiling: int,
        cooldown: float = 1.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        start = max(1, min(start, ceiling))
        super().__init__(start, ceiling=ceiling, cooldown=cooldown, clock=clock)
        self._skip_idle = True
        self._idle_since = self._window_start  # the first window starts with a stream

    def on_success(self) -> None:
        with self._cond:
            self._recovering()

    def on_bytes(self, count: int) -> None:
        """``count`` bytes of a stream received."""
        with self._cond:
            window = max(self.limit, STREAM_WINDOW_MIN) * STREAM_WINDOW
            self._count(count, window, seconds=STREAM_WINDOW_SECONDS)


class MemoryBudget:
    """Blocks buffer allocation while more than ``capacity`` bytes are held."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._waiting = 0  # threads waiting for room
        self._cond = threading.Condition()

    def hold(self, size: int) -> BudgetHold:
        """A context that holds ``size`` bytes of the budget (waits while they do not
        fit; a single buffer larger than the budget is admitted when nothing else is
        held)."""
        return BudgetHold(self, size)

    def _take(self, size: int) -> None:
        with self._cond:
            while self.used and self.used + size > self.capacity:
                self._waiting += 1
                try:
                    self._cond.wait()
                finally:
                    self._waiting -= 1
            self.used += size

    def _give(self, size: int) -> None:
        with self._cond:
            self.used -= size
            if self._waiting:
                self._cond.notify_all()


class RequestSlot:
    """One request slot of a ``RequestLimiter``, held for a ``with`` block: a small
    class, not a generator context manager (taken and given back once per request)."""

    __slots__ = ("_began", "_epoch", "_limiter")

    def __init__(self, limiter: RequestLimiter) -> None:
        self._limiter = limiter
        self._epoch = -1
        self._began = 0.0

    def __enter__(self) -> None:
        limiter = self._limiter
        self._epoch = epoch = limiter._enter()
        if epoch >= 0:
            self._began = limiter._clock()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._limiter._exit(self._epoch, self._began, succeeded=exc_type is None)


class BudgetHold:
    """``size`` bytes of a ``MemoryBudget``, held for a ``with`` block."""

    __slots__ = ("_budget", "_size")

    def __init__(self, budget: MemoryBudget, size: int) -> None:
        self._budget = budget
        self._size = size

    def __enter__(self) -> None:
        self._budget._take(self._size)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._budget._give(self._size)
