"""The finished files of a restore, handed back to the main thread in batches.

The main thread plans, hands out and records every file; the file threads finish them.
``Finished`` collects the finished futures (a done callback puts each one) and wakes
the main thread only once as many as it asked for are there (``take``): while the file
pool's queue is full, the main thread asks for half of the files queued ahead, so it
wakes once per that many files rather than once per file (each wake-up a context
switch, and a turn at the interpreter's lock taken from the busy file threads), and
the threads never run out of queued files meanwhile.

The wake-up is a token in a ``queue.SimpleQueue`` (its waiting is C code, as the queue
of finished futures it replaces was): a done callback puts one when its future makes
the count the consumer asked for. The list and the count the consumer waits for are
read and written under one lock (a plain lock: no ``Condition``, whose ``notify`` and
``wait`` are Python code, once per file where the concurrency is 1); the wait is
outside it. A token left over from a wait that timed out only ends a later wait early,
and the consumer asks again.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


class Finished(Generic[T]):
    """Finished futures, taken by one consumer in batches."""

    def __init__(self) -> None:
        self._done: list[Future[T]] = []
        self._want = 0  # how many the waiting consumer asked for (0: none waits)
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._lock = threading.Lock()

    def put(self, future: Future[T]) -> None:
        """A future has finished (its done callback, in the thread that finished it)."""
        with self._lock:
            self._done.append(future)
            wake = 0 < self._want <= len(self._done)
            if wake:
                self._want = 0  # one token per wait
        if wake:
            self._wake.put(None)

    def take(self, at_least: int, *, timeout: float) -> list[Future[T]]:
        """Every finished future, waiting up to ``timeout`` seconds for ``at_least`` of
        them (fewer, or none, when the time is up or an earlier wake-up was left)."""
        with self._lock:
            wait = len(self._done) < at_least
            if wait:
                self._want = at_least
        if wait:
            with contextlib.suppress(queue.Empty):
                self._wake.get(timeout=timeout)
        with self._lock:
            self._want = 0
            done, self._done = self._done, []
        return done
