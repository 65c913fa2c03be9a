"""The live progress displays of a run: on a terminal, or as log lines.

``LiveProgress`` draws a ``Progress`` snapshot (``snapshot.py``: the counts and their
words) on a terminal four times a second with rich, and erases its frame before an
immediate exit (a second Ctrl+C); ``PlainProgress`` prints one line every ``interval``
seconds when the output is not a terminal (CI, logs, cron mail).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING, TextIO

from s3stow.models import RunSummary
from s3stow.report.snapshot import (
    Progress,
    Snapshot,
    bytes_text,
    eta_text,
    files_text,
    plain_line,
    rate_text,
    shorten,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live


class PlainProgress(Progress):
    """One line every ``interval`` seconds (output that is not a terminal)."""

    def __init__(
        self, stream: TextIO, *, interval: float, plan: bool = False, receiving: bool = False
    ) -> None:
        super().__init__(plan=plan, receiving=receiving)
        self.stream = stream
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def on_start(self, run_id: str, target: str) -> None:
        super().on_start(run_id, target)
        self._stop.clear()  # an uploader may run again (retry batches, a job's claims)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="progress")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            print(plain_line(self.snapshot()), file=self.stream, flush=True)

    def on_finish(self, summary: RunSummary) -> None:
        self._stop.set()
        self.end()


class LiveProgress(Progress):
    """Totals, rate, time left and the files in flight, redrawn on a terminal."""

    def __init__(
        self,
        console: Console,
        *,
        plan: bool = False,
        receiving: bool = False,
        transient: bool = False,
    ) -> None:
        super().__init__(plan=plan, receiving=receiving)
        self.console = console
        self.transient = transient  # erase the last frame (a job worker's many batches)
        self._live: Live | None = None
        self._render_lock = threading.Lock()  # held while drawing; taken to quit at once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._final = False

    def __rich__(self) -> RenderableType:
        return self.render(self.snapshot(whole_run=self._final))

    def render(self, snap: Snapshot) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 1))
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(no_wrap=True)
        transferred = Table.grid(padding=(0, 1))
        cells: list[RenderableType] = [Text(bytes_text(snap))]
        room = self.console.width - 78  # what the words leave for a bar
        if room >= 8:
            bar = ProgressBar(
                total=None if snap.partial else max(snap.total, 1), width=min(room, 30)
            )
            bar.completed = snap.sent
            cells.append(bar)
        cells.append(Text(f"{rate_text(snap.rate)}, ETA {eta_text(snap.eta)}"))
        for _ in cells:
            transferred.add_column(no_wrap=True)
        transferred.add_row(*cells)
        grid.add_row("Transferred:", transferred)
        grid.add_row("Files:", Text(files_text(snap)))
        grid.add_row("Elapsed:", Text(eta_text(snap.elapsed)))
        if not snap.in_flight or self._final:
            return grid
        rows: list[RenderableType] = [grid, Text("Transferring:", style="bold")]
        width = max(16, self.console.width // 2)
        for f in snap.in_flight:
            name = shorten(f.name, width)
            rows.append(
                Text(f" * {name:<{min(width, 40)}} {f.text()}", no_wrap=True, overflow="ellipsis")
            )
        if snap.more_in_flight:
            rows.append(Text(f"   … and {snap.more_in_flight} more in flight"))
        return Group(*rows)

    def on_start(self, run_id: str, target: str) -> None:
        from rich.live import Live

        super().on_start(run_id, target)
        self._stop.clear()  # an uploader may run again (retry batches, a job's claims)
        self._final = False
        self._live = Live(
            self,
            console=self.console,
            auto_refresh=False,
            transient=self.transient,
            redirect_stdout=False,
        )
        self._live.start(refresh=True)
        self._thread = threading.Thread(target=self._loop, daemon=True, name="progress")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            with self._render_lock:
                if self._live is not None and not self._stop.is_set():
                    self._live.refresh()

    def on_finish(self, summary: RunSummary) -> None:
        self._stop.set()
        self.end()
        with self._render_lock:
            self._final = True  # the last frame keeps the totals, not the files in flight
            if self._live is not None:
                self._live.stop()
                self._live = None

    def quit_now(self, message: str) -> None:
        """Before an immediate exit (a second Ctrl+C): erase the frame, show the cursor
        and leave ``message`` as the one line that says what happened."""
        self._stop.set()
        locked = self._render_lock.acquire(timeout=1.0)  # no frame is drawn after this
        try:
            erase = ""
            if self._live is not None and self.console.is_terminal:
                shape = getattr(self._live._live_render, "_shape", None)  # (width, height)
                height = shape[1] if shape else 0
                erase = "\r\x1b[2K" + "\x1b[1A\x1b[2K" * max(0, height - 1) + "\r"
            text = f"{erase}\x1b[?25h{message}\n"
            os.write(_fileno(self.console), text.encode("utf-8", "replace"))
        finally:
            if locked:
                self._render_lock.release()


def _fileno(console: Console) -> int:
    try:
        return console.file.fileno()
    except (AttributeError, OSError, ValueError):
        return sys.stderr.fileno()
