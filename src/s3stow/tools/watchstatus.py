"""What a watch shows of itself: its totals, a line for the terminal and its status file.

``WatchStats`` counts what the watch uploaded, skipped (already done, or already in
S3 with the same content) and failed, and the files still changing after
``max_wait``. ``WatchStatus`` tells ``on_progress`` one line whenever the backlog or
the totals change, and writes the ``--status-json`` heartbeat: atomically, at most
every ``interval`` seconds while watching and at the end, with the backlog and the age
of its oldest file, a bounded throughput trend and the latest failures (the status
page's). A watch runs for days: a write refused while watching is a warning (the next
tick writes again); the last one's error is raised.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3stow.localfiles import atomic_write_text
from s3stow.logs import warn_each
from s3stow.report.status import RecentFailures, Trend

log = logging.getLogger(__name__)


@dataclass
class WatchStats:
    uploaded: int = 0
    failed: int = 0
    skipped: int = 0  # already done (ledger) or already in S3 with the same content
    bytes_uploaded: int = 0
    too_busy: list[str] = field(default_factory=list)


class WatchStatus:
    """The terminal line and the status file of the watch ``run_id`` into ``target``
    (its URL), from its ``stats``, ``failures`` and ``backlog`` (files waiting, and when
    the oldest was first seen)."""

    def __init__(
        self,
        stats: WatchStats,
        failures: RecentFailures,
        *,
        backlog: Callable[[], tuple[int, float | None]],
        run_id: str,
        target: str,
        status_json: Path | None,
        interval: float,
        on_progress: Callable[[str], None] | None,
    ) -> None:
        self.stats = stats
        self.failures = failures
        self.backlog = backlog
        self.run_id = run_id
        self.target = target
        self.status_json = status_json
        self.interval = interval
        self.on_progress = on_progress
        self.started = time.time()
        self._trend = Trend()
        self._last_line: tuple[int, int, int, int] | None = None
        self._status_at = 0.0

    def progress_line(self, now: float | None = None) -> str:
        """One line for the terminal: backlog, oldest waiting file, totals."""
        now = time.time() if now is None else now
        waiting, oldest = self.backlog()
        line = f"backlog {waiting}"
        if oldest is not None:
            line += f" (oldest waiting {now - oldest:.0f} s)"
        line += f", uploaded {self.stats.uploaded}, failed {self.stats.failed}"
        if self.stats.skipped:
            line += f", already done {self.stats.skipped}"
        if self.stats.too_busy:
            line += f", still changing {len(self.stats.too_busy)}"
        return line

    def report_progress(self) -> None:
        """Tell ``on_progress`` whenever the backlog or the totals change."""
        if self.on_progress is None:
            return
        stats = self.stats
        state = (self.backlog()[0], stats.uploaded, stats.failed, stats.skipped)
        if state != self._last_line:
            self._last_line = state
            self.on_progress(self.progress_line())

    def write(self, phase: str) -> None:
        """Report the progress line, and write the status file (``phase``: watching,
        done or stopped; while watching, at most every ``interval`` seconds)."""
        self.report_progress()
        now = time.time()
        if self.status_json is None or (
            phase == "watching" and now - self._status_at < self.interval
        ):
            return
        self._status_at = now
        waiting, oldest = self.backlog()
        stats = self.stats
        data: dict[str, Any] = {
            "started_at": self.started,
            "phase": phase,
            "command": "watch",
            "run_id": self.run_id,
            "target": self.target,
            "backlog": waiting,
            "oldest_waiting_seconds": round(now - oldest, 1) if oldest else 0.0,
            "totals": {  # failed counts attempts: a queued file may fail and be retried
                "uploaded": stats.uploaded,
                "skipped": stats.skipped,
                "failed": stats.failed,
                "bytes_uploaded": stats.bytes_uploaded,
                "still_changing": len(stats.too_busy),
            },
            "last_update": now,
        }
        self._trend.add(now, stats.bytes_uploaded, stats.uploaded + stats.skipped + stats.failed)
        data["history"] = self._trend.points
        data["failures"] = self.failures.items()
        try:
            atomic_write_text(self.status_json, json.dumps(data, indent=2))
        except OSError as exc:
            if phase != "watching":
                raise
            # a watch runs for days: one write refused (on Windows, a reader holding the
            # file past the retries) must not end it; the next tick writes again
            warn_each(
                log, "status-write", "cannot write the status file %s: %s", self.status_json,
                exc.strerror or exc, example=str(self.status_json),
                many="status file writes failed",
            )  # fmt: skip
