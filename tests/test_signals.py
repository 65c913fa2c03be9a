"""The Ctrl+C handler stops the run without deadlocking the thread it interrupts."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, cast

import pytest

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


_PAUSE_APP_IMPORT = '''
import os, sys, time

class _Pause:
    """Holds the import of the command line until the test has sent its signal."""

    def find_spec(self, name, path=None, target=None):
        if name == "s3stow.cli.app":
            open(os.environ["S3STOW_TEST_PAUSED"], "w").close()
            while True:
                time.sleep(0.05)
        return None

sys.meta_path.insert(0, _Pause())
'''


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_the_command_line_is_imported_is_interrupted_not_a_traceback(
    tmp_path: Path, signum: int
) -> None:
    """Ctrl+C in the first few tenths of a second (typer, click and rich being
    imported) printed a KeyboardInterrupt traceback; SIGTERM then killed the process
    without a word (-15, the shell's 143), not the documented 130."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_PAUSE_APP_IMPORT)
    paused = tmp_path / "paused"
    env = {**os.environ, "PYTHONPATH": str(hook), "S3STOW_TEST_PAUSED": str(paused)}
    process = subprocess.Popen(
        [sys.executable, "-m", "s3stow", "stats", "--ledger", str(tmp_path / "l.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        while not paused.exists() and process.poll() is None:
            time.sleep(0.02)
        process.send_signal(signum)
        _out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert err == "error: interrupted\n"
