"""What a watch is told: the paths watchdog says changed, as the files the watch names.

``Notifications`` runs a watchdog observer on the watched directory (recursively) and
keeps each changed path (a moved file's both paths) until the watch drains them; reads
(opened, closed without writing: the watch's own upload among them) are not changes.
A notified path is mapped to the same file under the directory as given, the form a
scan finds it in: macOS's FSEvents names the real path (``/private/tmp/in/a.xml`` for
a watch of ``/tmp/in``), and Windows may name a file by its 8.3 short name
(``REPORT~1.XML``), so the file is neither dropped nor uploaded a second time under
another key. A path outside the tree is dropped.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer as FsObserver
from watchdog.observers.api import BaseObserver

_READS = frozenset({EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})


class _Events(FileSystemEventHandler):
    """Hands every changed path to ``notify`` (watchdog's thread)."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        self.notify = notify

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Opening and closing without writing are reads (our own upload among them):
        # they change nothing, and would queue an uploaded file again.
        if event.is_directory or event.event_type in _READS:
            return
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path:
                self.notify(os.fsdecode(path))


class Notifications:
    """The changed paths under ``directory``, kept until ``drain`` takes them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._real_directory = Path(os.path.realpath(directory))
        self._inbox: set[str] = set()
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None

    def start(self) -> None:
        """Start watchdog's observer of the directory and everything below it."""
        self._observer = FsObserver()
        self._observer.schedule(_Events(self.notify), str(self.directory), recursive=True)
        self._observer.start()

    def stop(self) -> None:
        """Stop the observer (waiting for its thread up to 5 s)."""
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)

    def notify(self, path: str) -> None:
        """Keep ``path`` for the next ``drain`` (from any thread)."""
        with self._lock:
            self._inbox.add(path)

    def drain(self) -> list[Path]:
        """The paths notified since the last call, each as the file under the directory
        (``located``); those outside the tree are dropped."""
        # The inbox is swapped under the lock and ``notify`` always adds to
        # ``self._inbox`` (never to a set it captured once), so no notification lands
        # in a set nobody reads again.
        with self._lock:
            paths, self._inbox = self._inbox, set()
        located = (self.located(Path(path)) for path in paths)
        return [path for path in located if path is not None]

    def located(self, path: Path) -> Path | None:
        """A notified ``path`` as the same file under ``directory`` as given (the form a
        scan finds it in), or ``None`` when it is not in the tree.

        macOS's FSEvents names the real path (``/private/tmp/in/a.xml`` for a watch of
        ``/tmp/in``), and Windows may name a file by its 8.3 short name
        (``REPORT~1.XML``: ``ReadDirectoryChangesW`` returns either name, unspecified
        which); both are mapped through ``os.path.realpath``, so the file is neither
        dropped nor uploaded a second time under another key."""
        try:
            path.relative_to(self.directory)
        except ValueError:
            pass
        else:
            if not (sys.platform == "win32" and "~" in path.name):
                return path
        real = Path(os.path.realpath(path))
        try:
            rel = real.relative_to(self._real_directory)
        except ValueError:
            return None
        return self.directory / rel
