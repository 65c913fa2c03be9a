"""The finished files of a restore, handed back to the main thread in batches.

The main thread plans, hands out and records every file; the file threads finish them.
``Finished`` collects the finished futures (a done callback puts each one) and wakes
the main thread only once as many as it asked for are there (``take``): while the file
pool's queue is full, the main thread asks for half of the files queued ahead, so it
wakes once per that many files rather than once per file (each wake-up a context
switch, and a turn at the interpreter's lock taken from the busy file threads), and
the threads never run out of queued files meanwhile.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class Finished(Generic[T]):
    """Finished futures, taken by one consumer in batches."""

    def __init__(self) -> None:
        self._done: list[Future[T]] = []
        self._want = 0  # how many the waiting consumer asked for (0: none waits)
        self._cond = threading.Condition(threading.Lock())

    def put(self, future: Future[T]) -> None:
        """A future has finished (its done callback, in the thread that finished it)."""
        with self._cond:
            self._done.append(future)
            if self._want and len(self._done) >= self._want:  # no notify while none waits
                self._cond.notify()

    def take(self, at_least: int, *, timeout: float) -> list[Future[T]]:
        """Every finished future, waiting up to ``timeout`` seconds for ``at_least`` of
        them (fewer, or none, when the time is up)."""
        with self._cond:
            if len(self._done) < at_least:
                self._want = at_least
                self._cond.wait_for(lambda: len(self._done) >= at_least, timeout)
                self._want = 0
            done, self._done = self._done, []
        return done
