"""The Ctrl+C handler stops the run without deadlocking the thread it interrupts."""

from __future__ import annotations

import signal
import threading
from typing import Any, cast

from s3stow.cli.runsupport import install_signal_handlers


class _Uploader:
    def __init__(self) -> None:
        self.stop = threading.Event()

    def request_stop(self) -> None:
        self.stop.set()


def test_the_handler_does_not_deadlock_a_thread_waiting_on_the_stop_event() -> None:
    """A signal arrives while the main thread sits in ``Event.wait`` holding the event's
    lock (the watch loop's ``stop.wait``): setting the event right there would hang."""
    uploader = _Uploader()
    restore = install_signal_handlers(cast(Any, uploader))
    try:
        handler = signal.getsignal(signal.SIGINT)
        assert callable(handler)
        lock = uploader.stop._cond  # type: ignore[attr-defined]

        def interrupted_inside_wait() -> None:
            with lock:
                handler(signal.SIGINT, None)

        thread = threading.Thread(target=interrupted_inside_wait, daemon=True)
        thread.start()
        thread.join(timeout=5)
        assert not thread.is_alive(), "the handler deadlocked on the stop event's lock"
        assert uploader.stop.wait(timeout=5)
    finally:
        restore()
