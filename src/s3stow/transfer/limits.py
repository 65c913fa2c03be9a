"""Concurrency and memory limits shared by every transfer of a run.

``RequestLimiter`` is an adjustable semaphore: it admits at most ``limit``
requests at once and applies AIMD to that limit, halving it (at most once per
``cooldown`` seconds) when S3 throttles and adding one back after ``limit``
consecutive successes, up to the configured concurrency. ``MemoryBudget`` caps
the bytes held in buffers: memory ~= min(concurrency, budget / part) * part.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class RequestLimiter:
    """At most ``limit`` requests in flight; AIMD on throttling."""

    def __init__(self, maximum: int, *, cooldown: float = 1.0) -> None:
        self.maximum = maximum
        self.limit = maximum
        self.active = 0
        self.throttle_events = 0
        self._successes = 0
        self._last_cut = float("-inf")  # the first throttle always cuts
        self._cooldown = cooldown
        self._cond = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._cond:
            while self.active >= self.limit:
                self._cond.wait()
            self.active += 1
        try:
            yield
        finally:
            with self._cond:
                self.active -= 1
                self._cond.notify()

    def on_throttle(self) -> None:
        with self._cond:
            self.throttle_events += 1
            now = time.monotonic()
            if now - self._last_cut >= self._cooldown:
                self.limit = max(1, self.limit // 2)
                self._last_cut = now
                self._successes = 0

    def on_success(self) -> None:
        with self._cond:
            if self.limit >= self.maximum:
                return
            self._successes += 1
            if self._successes >= self.limit:
                self.limit += 1
                self._successes = 0
                self._cond.notify()


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
