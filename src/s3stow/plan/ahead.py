"""Discovery and key planning run ahead of the transfers, in a thread of their own.

``RunAhead`` walks the sources and plans each file's key (selection, template,
refusals) up to ``backlog`` files ahead of the transfers, in batches, so a tree of a
few thousand files is counted whole within a second while its first files upload,
and the progress display can show a total that no longer grows. Bigger trees are
walked as fast as the transfers take them, never held in memory beyond the backlog.
Each batch it hands over pairs each found path with what the planner made of it
(``None`` for a skipped path or a file not selected). ``on_walk(files, bytes,
finished)`` reports the selected files found so far, and once more when the walk is
over. An error of the walk is raised where the batches are read; ``close`` stops
the thread (also when the transfers stop early).
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any

from s3stow.models import Skipped, SourceFile

BACKLOG = 10_000  # files planned ahead of the transfers at most (as rclone's --max-backlog)
BATCH = 256
_END = object()

Found = SourceFile | Skipped
Pair = tuple[Found, Any]


class RunAhead:
    """Iterates batches of ``(found, plan(found))`` computed in a background thread."""

    def __init__(
        self,
        found: Iterator[Found],
        plan: Callable[[SourceFile], Any],
        *,
        on_walk: Callable[[int, int, bool], None],
        backlog: int = BACKLOG,
    ) -> None:
        self._found = found
        self._plan = plan
        self._on_walk = on_walk
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max(1, backlog // BATCH))
        self._closed = threading.Event()
        # started by the first read: after the run's start is reported, so no observer
        # hears of the walk before it hears of the run
        self._thread = threading.Thread(target=self._run, name="discover", daemon=True)

    def _run(self) -> None:
        files = size = 0
        try:
            while chunk := list(itertools.islice(self._found, BATCH)):
                batch: list[Pair] = []
                for item in chunk:
                    outcome = None
                    if isinstance(item, SourceFile):
                        outcome = self._plan(item)
                        if outcome is not None:  # selected: counted in the run's totals
                            files += 1
                            size += item.size
                    batch.append((item, outcome))
                if not self._put(batch):
                    return
                self._on_walk(files, size, False)
            self._on_walk(files, size, True)
            self._put(_END)
        except BaseException as exc:  # noqa: BLE001 (handed to the reader, raised there)
            self._put(exc)

    def _put(self, item: Any) -> bool:
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[list[Pair]]:
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()
        while not self._closed.is_set():
            try:
                item = self._queue.get(timeout=0.5)  # a timeout keeps Ctrl+C deliverable
            except queue.Empty:
                continue
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop walking (what is left is not planned) and wait briefly for the thread."""
        self._closed.set()
        while True:  # unblock a put
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread.ident is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RunAhead:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
