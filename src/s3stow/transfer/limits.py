"""Concurrency and memory limits shared by every transfer of a run.

``RequestLimiter`` is an adjustable semaphore: it admits at most ``limit`` requests
at once. Below the configured concurrency it applies AIMD: it halves the limit (at
most once per ``cooldown`` seconds) when S3 throttles and adds one back after
``limit`` consecutive successes. Above it, up to ``ceiling``, it grows only while
that pays: over a long round trip, requests in flight are what sets the pace
(files/s ~= in flight / round trip), so the limit doubles as long as the completions
per second rise with it, and settles where they stop rising (see ``Growth``).
``MemoryBudget`` caps the bytes held in buffers: memory ~= min(limit, budget / part)
* part.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# Growth past the configured concurrency, judged per window of completions.
WINDOW_MIN = 64  # completions per window at least (a window is max(limit, this))
SCALING = 0.5  # keep doubling while files/s rose by at least half of what the limit did
WORTH = 0.2  # a rise below 20% is not worth the requests: back to the previous limit
HOLD = 32  # windows to wait after a step that did not pay before trying again


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
    ) -> None:
        self.maximum = maximum
        self.ceiling = max(maximum, ceiling or maximum)
        self.limit = maximum
        self.active = 0
        self.peak = 0  # most requests in flight at once
        self.throttle_events = 0
        self.growth = Growth(self.ceiling)
        self._growing = self.ceiling > maximum
        self._successes = 0
        self._last_cut = float("-inf")  # the first throttle always cuts
        self._cooldown = cooldown
        self._clock = clock or (lambda: time.monotonic())  # looked up at each call
        self._window_start = self._clock()
        self._window_done = 0
        self._full = False  # every slot was taken at some moment of this window
        self._cond = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._cond:
            while self.active >= self.limit:
                self._cond.wait()
            self.active += 1
            if self.active >= self.limit:
                self._full = True
            self.peak = max(self.peak, self.active)
        try:
            yield
        finally:
            with self._cond:
                self.active -= 1
                self._cond.notify()

    def on_throttle(self) -> None:
        with self._cond:
            self.throttle_events += 1
            self._growing = False
            now = self._clock()
            if now - self._last_cut >= self._cooldown:
                self.limit = max(1, self.limit // 2)
                self._last_cut = now
                self._successes = 0

    def on_success(self) -> None:
        with self._cond:
            if self.limit < self.maximum:  # recovering from throttling: additive
                self._successes += 1
                if self._successes >= self.limit:
                    self.limit += 1
                    self._successes = 0
                    self._cond.notify()
                return
            if not self._growing:
                return
            self._window_done += 1
            if self._window_done >= max(self.limit, WINDOW_MIN):
                self._end_window()

    def _end_window(self) -> None:
        now = self._clock()
        elapsed = now - self._window_start
        rate = self._window_done / elapsed if elapsed > 0 else float("inf")
        limit = self.growth.judge(self.limit, rate, full=self._full)
        self._window_start, self._window_done, self._full = now, 0, False
        if limit > self.limit:
            self._cond.notify_all()
        self.limit = limit


class MemoryBudget:
    """Blocks buffer allocation while more than ``capacity`` bytes are held."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.used = 0
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        with self._cond:
            # A single buffer larger than the budget is admitted when nothing else is held.
            while self.used and self.used + size > self.capacity:
                self._cond.wait()
            self.used += size
        try:
            yield
        finally:
            with self._cond:
                self.used -= size
                self._cond.notify_all()
