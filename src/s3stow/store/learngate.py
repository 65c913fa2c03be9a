"""One botocore request at a time per request shape until the fast path has learned it.

The fast path (``fastpath.py``) copies a request only after botocore has sent one of the
same shape (bucket, operation, header names) and the copy is proved equal. Without a
gate, every request a run starts before that first one returns goes through botocore
too: the 16 parts of a 1 GiB file all start at once, so all 16 were signed (SHA-256 of
64 MiB each) and sent through ``http.client`` in 8 KiB writes, which tripled the client
CPU of a large upload. ``LearningGate.first`` lets one request of a shape through while
the shape is unknown; the others wait for it and then take the fast path.

It never holds a run up for long: a waiter waits at most ``patience`` seconds (2 s; a
learner that takes longer, a large body over a slow link or a server that is slow to
answer, must not stall every other request of its shape, so the waiter then goes
through botocore itself, as before the gate); a shape whose learning fails is let
through after ``attempts`` tries (each learner's failure wakes the next waiter, which
becomes the learner); a bucket the fast path turned off is let through at once. A
waiter may prepare while it waits (``before_wait``: the fast path opens its thread's
connection then, so its first request after the learner's pays no handshake).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager


class LearningGate:
    """Per-shape gate: ``first(shape, settled)`` yields True to the one thread that
    should send through botocore now, False to a thread that may go its own way."""

    def __init__(self, *, attempts: int = 3, patience: float = 2.0) -> None:
        self._attempts = attempts
        self._patience = patience
        self._cond = threading.Condition()
        self._learning: set[Hashable] = set()
        self._tries: dict[Hashable, int] = {}

    @contextmanager
    def first(
        self,
        shape: Hashable,
        settled: Callable[[], bool],
        *,
        before_wait: Callable[[], None] | None = None,
    ) -> Iterator[bool]:
        """``settled()``: the shape is known or will never be (the gate is open). The
        caller holding True sends through botocore inside the ``with`` block.
        ``before_wait``: called (outside the gate's lock) by a thread that finds another
        one learning, before it waits: its own preparation overlaps the learner's
        request (the fast path opens the thread's connection)."""
        deadline = time.monotonic() + self._patience
        if before_wait is not None:
            with self._cond:
                waits = not settled() and shape in self._learning
            if waits:
                before_wait()
        with self._cond:
            while True:
                if settled() or self._tries.get(shape, 0) >= self._attempts:
                    learner = False
                    break
                if shape not in self._learning:
                    self._learning.add(shape)
                    self._tries[shape] = self._tries.get(shape, 0) + 1
                    learner = True
                    break
                left = deadline - time.monotonic()
                if left <= 0:  # a slow learner: go without it
                    learner = False
                    break
                self._cond.wait(timeout=left)
        try:
            yield learner
        finally:
            if learner:
                with self._cond:
                    self._learning.discard(shape)
                    self._cond.notify_all()
