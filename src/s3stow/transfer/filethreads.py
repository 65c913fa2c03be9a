"""The file threads of a run: ``FileThreads`` (an upload's) hands files to worker
threads without a future per file; ``FilePool`` (a restore's) is a thread pool; both
grow with the limiter's limit and keep ``files_to_keep`` files submitted.

A ``concurrent.futures`` pool costs the thread that submits a file a ``Future``, a
work item, a done callback and a lock per file, and the file's thread a few more
lock rounds to settle the future. In ``FileThreads`` a file is one tuple on a queue: a worker
takes it, runs the work, and puts the file's tag and its outcome (the result, or
the exception the work raised) on the results queue, where the submitting thread
collects them (``collect``). There is no per-file object and no callback.

Threads start only as files are submitted, one more while more files are in
flight than threads exist, up to ``threads``; ``grow`` raises that number (the
engine follows the request limiter's limit up); a thread that exists is never
stopped before the end. Leaving the ``with`` block lets the queued files run (a
stopped run's work returns at once) and joins every thread.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
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


class FilePool(ThreadPoolExecutor):
    """The restore's file pool (a future per file, which its handout waits on), whose
    thread count follows the limiter's limit up as ``FileThreads``' does."""

    def grow(self, workers: int) -> None:
        if workers > self._max_workers:  # read each time the pool considers a new thread
            self._max_workers = workers

    def room(self, limit: int, ahead: int) -> int:
        """Files to keep submitted (``files_to_keep``)."""
        return files_to_keep(limit, ahead, threads=self._max_workers)


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
        self._done: queue.SimpleQueue[tuple[_Tag, _Result | BaseException]] = queue.SimpleQueue()
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

    def collect(self, *, block: bool) -> list[tuple[_Tag, _Result | BaseException]]:
        """The outcomes of finished jobs; with ``block``, wait for at least one (none
        when nothing is in flight). An outcome is the result or the exception."""
        done: list[tuple[_Tag, _Result | BaseException]] = []
        if not self.in_flight:
            return done
        results = self._done
        while block and not done:  # a timeout keeps Ctrl+C deliverable on Windows
            try:
                done.append(results.get(timeout=_WAIT))
            except queue.Empty:
                continue
        while True:
            try:
                done.append(results.get_nowait())
            except queue.Empty:
                break
        self.in_flight -= len(done)
        return done

    def _run(self) -> None:
        jobs, done, work = self._jobs, self._done, self._work
        while True:
            item = jobs.get()
            if item is None:
                return
            args, tag = item
            try:
                outcome: _Result | BaseException = work(*args)
            except BaseException as exc:  # noqa: BLE001 - raised in the submitting thread
                outcome = exc  # (as a Future's result() would)
            done.put((tag, outcome))
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
