"""The file threads of a run (an upload's, a restore's): ``FileThreads`` hands files to
worker threads without a future per file, grows with the limiter's limit and keeps
``files_to_keep`` files submitted; the run's thread collects the outcomes, waking
once per as many as it asks for.

A ``concurrent.futures`` pool costs the thread that submits a file a ``Future``, a
work item, a done callback and a lock per file, and the file's thread a few more
lock rounds to settle the future. Here a file is one tuple on a queue: a worker
takes it, runs the work, and appends the file's tag and its outcome (the result, or
the exception the work raised) to the finished list, where the submitting thread
collects them (``collect``). There is no per-file object and no callback.

``collect(block=True, want=N)`` wakes the collecting thread once N outcomes are
there, not once per outcome: the worker that finishes the N-th (counted by an
``itertools.count``, whose ``next`` is one C call) puts one token on a
``SimpleQueue``, which the collector waits on (C code; each wake-up a context switch
and a turn at the interpreter's lock taken from the busy file threads). No lock and
no ``Condition``, whose ``wait``/``notify`` are Python code: the list's ``append``
and the collector's slice are single C calls under the interpreter's lock; the
collector publishes the count it waits for, then looks at the list again, so a
worker that finished the N-th file before the count was published is seen there. A
token left over from a wait that timed out only ends a later wait early, and the
collector waits again.

Threads start only as files are submitted, one more while more files are in
flight than threads exist, up to ``threads``; ``grow`` raises that number (the
engine follows the request limiter's limit up); a thread that exists is never
stopped before the end. Leaving the ``with`` block lets the queued files run (a
stopped run's work returns at once) and joins every thread.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

_Tag = TypeVar("_Tag")
_Result = TypeVar("_Result")
_WAIT = 0.5  # seconds a blocking collect waits at a time (Ctrl+C stays deliverable)


def files_to_keep(limit: int, ahead: int, *, threads: int) -> int:
    """Files to keep submitted: ``limit`` running and ``ahead`` queued, fewer queued
    while there may be more ``threads`` than the limit (after a step was taken back),
    so the extra threads wait for files, not for request slots: a thread that
    finishes a file then takes the next one without waking another."""
    return limit + max(0, ahead - (threads - limit))


class FileThreads(Generic[_Tag, _Result]):
    """Worker threads that run ``work(*args)`` for each submitted job, in order of
    submission, and hand back ``(tag, outcome)`` pairs.

    Only the thread that submits (the engine's) calls ``submit``, ``collect``,
    ``grow`` and ``room``; ``in_flight`` counts the jobs submitted and not collected.
    """

    def __init__(self, work: Callable[..., _Result], threads: int, *, name: str = "file") -> None:
        self._work = work
        self._max = max(1, threads)
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[tuple[object, ...], _Tag] | None] = queue.SimpleQueue()
        self._done: list[tuple[_Tag, _Result | BaseException]] = []  # finished, not collected
        self._finished = itertools.count(1)  # next(): outcomes appended so far, this one's
        self._wake_at = 0  # the count whose worker wakes the collector (0: none waits)
        self._wake: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._collected = 0
        self._threads: list[threading.Thread] = []
        self.in_flight = 0

    @property
    def threads(self) -> int:
        """Threads started so far."""
        return len(self._threads)

    def grow(self, threads: int) -> None:
        """Allow up to ``threads`` threads (never fewer than before)."""
        if threads > self._max:
            self._max = threads

    def room(self, limit: int, ahead: int) -> int:
        """Files to keep submitted (``files_to_keep``)."""
        return files_to_keep(limit, ahead, threads=self._max)

    def submit(self, args: tuple[object, ...], tag: _Tag) -> None:
        """Queue ``work(*args)``; its outcome comes back from ``collect`` with ``tag``."""
        self.in_flight += 1
        self._jobs.put((args, tag))
        started = len(self._threads)
        if self.in_flight > started and started < self._max:
            # not daemons: as a pool's, the interpreter waits for them at exit
            thread = threading.Thread(target=self._run, name=f"{self._name}_{started}")
            thread.start()
            self._threads.append(thread)

    def collect(self, *, block: bool, want: int = 1) -> list[tuple[_Tag, _Result | BaseException]]:
        """The outcomes of finished jobs; with ``block``, wait for ``want`` of them (as
        many as are in flight, when fewer), or for at least one once half a second has
        passed (none when nothing is in flight). An outcome is the result or the
        exception."""
        if not self.in_flight:
            return []
        done = self._done
        if block:
            want = min(max(1, want), self.in_flight)
            while len(done) < want:
                self._wake_at = self._collected + want
                woken = len(done) >= want or self._woken()  # looked at after publishing
                self._wake_at = 0
                if not woken and done:  # the time is up: what there is
                    break
        count = len(done)
        taken = done[:count]
        del done[:count]  # (a worker's append meanwhile stays for the next collect)
        self._collected += count
        self.in_flight -= count
        return taken

    def _woken(self) -> bool:
        """Wait for a worker's token; ``False`` when half a second passed first (a
        timeout keeps Ctrl+C deliverable on Windows)."""
        try:
            self._wake.get(timeout=_WAIT)
        except queue.Empty:
            return False
        return True

    def _run(self) -> None:
        jobs, done, work, finished = self._jobs, self._done, self._work, self._finished
        wake = self._wake
        while True:
            item = jobs.get()
            if item is None:
                return
            args, tag = item
            try:
                outcome: _Result | BaseException = work(*args)
            except BaseException as exc:  # noqa: BLE001 - raised in the submitting thread
                outcome = exc  # (as a Future's result() would)
            done.append((tag, outcome))
            if next(finished) == self._wake_at:  # the one the collector waits for
                wake.put(None)
            del item, args, tag, outcome

    def close(self) -> None:
        """Let the queued jobs run, then stop and join every thread."""
        for _ in self._threads:
            self._jobs.put(None)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> FileThreads[_Tag, _Result]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
