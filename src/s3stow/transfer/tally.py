"""Counting a run: ``Tally``.

Outcomes are counted as the main thread records them (uploaded, skipped, failed,
changed, by group). Bytes are counted from the transfer threads as S3 acknowledges
them: the bytes this run sent (a part counts when its answer arrives, so a run
interrupted in the middle of a multipart upload counts what it sent), and, apart
from them, the parts an earlier run sent that a resumed upload reuses. ``mark`` and
``close`` scope the byte counts to one run of an ``Uploader`` that runs many
(``watch``, ``retry``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from s3stow.models import Reason, RunSummary, SourceFile, Status, UploadResult


@dataclass(frozen=True, slots=True)
class Mark:
    """The byte counts when a run started."""

    sent: dict[str, int]
    resumed: int


class Tally:
    """Outcome and byte counts (the byte counts are thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sent: dict[str, int] = {}  # by group
        self._resumed = 0

    def add_sent(self, source: SourceFile, count: int) -> None:
        """``count`` bytes of ``source`` sent by this run and acknowledged by S3."""
        group = source.group or "(none)"
        with self._lock:
            self._sent[group] = self._sent.get(group, 0) + count

    def add_resumed(self, count: int) -> None:
        """``count`` bytes already in S3: parts an earlier run sent."""
        with self._lock:
            self._resumed += count

    def mark(self) -> Mark:
        with self._lock:
            return Mark(dict(self._sent), self._resumed)

    def close(self, summary: RunSummary, mark: Mark) -> None:
        """Put the bytes counted since ``mark`` into ``summary``."""
        with self._lock:
            for group, count in self._sent.items():
                summary.add_sent(group, count - mark.sent.get(group, 0))
            summary.bytes_resumed = self._resumed - mark.resumed

    @staticmethod
    def count(summary: RunSummary, result: UploadResult, source: SourceFile | None) -> None:
        """Count one file's outcome in ``summary``."""
        group = source.group if source is not None else "(none)"
        if result.status == Status.DONE and result.reason == Reason.REMOTE_MATCH:
            summary.skipped += 1
            summary.count_group(group, "skipped")
        elif result.status == Status.DONE:
            summary.uploaded += 1
            summary.count_group(group, "uploaded")
        elif result.status == Status.SKIPPED:
            summary.skipped += 1
            summary.count_group(group, "skipped")
            if result.reason == Reason.NO_CLOBBER:  # its bytes are not proven in S3: named
                why = Reason.NO_CLOBBER.value
                summary.skip_reasons[why] = summary.skip_reasons.get(why, 0) + 1
        else:
            if result.status == Status.CHANGED:
                summary.changed += 1
            else:
                summary.failed += 1
            summary.failures.append(result)
            summary.count_group(group, "failed")
