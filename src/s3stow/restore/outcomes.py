"""A restore run's outcomes, recorded and counted in its main thread: ``Outcomes``.

Each outcome (a file restored, kept, refused or failed) becomes the ledger's row (queued,
committed in batches by ``RestoreLedger``), a count in the ``RestoreSummary`` and an
``on_result`` for the observers; an archived object whose restore is still pending is
kept waiting instead, when ``--wait`` asked for it (``Outcomes.waiting``). A file's row
is made in its own thread (``Worked``: the restored file's ``stat``), so the main
thread, which plans, hands out and records every file, does not give up the GIL and
wait to take it back from the file threads once per file. ``Received`` counts the bytes
the run received, by group, as the status file does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from s3stow.ledger.restores import RestoreLedger, RestoreRecord
from s3stow.models import SourceFile, Status, UploadResult
from s3stow.report.observer import Observer
from s3stow.restore import glacier
from s3stow.restore.glacier import GlacierOptions
from s3stow.restore.plan import RestoreItem
from s3stow.restore.report import RestoreSummary


@dataclass(frozen=True, slots=True)
class Worked:
    """A file's outcome from its thread, with its ledger row made there (``None``: the
    run records nothing, or the file was interrupted before an outcome)."""

    result: UploadResult
    record: RestoreRecord | None


class Outcomes:
    """Records and counts one run's outcomes (only its main thread calls ``settle``)."""

    def __init__(
        self,
        summary: RestoreSummary,
        *,
        restores: RestoreLedger | None,
        observer: Observer,
        stop: threading.Event,
        glacier_options: GlacierOptions,
    ) -> None:
        self.summary = summary
        self.restores = restores  # None: nothing recorded (no ledger, or a dry run)
        self.observer = observer
        self.stop = stop
        self.glacier = glacier_options
        self.waiting: list[RestoreItem] = []  # archived objects --wait waits for

    def settle(
        self,
        result: UploadResult,
        item: RestoreItem | None,
        *,
        wait: bool = True,
        source: SourceFile | None = None,
        worked: Worked | None = None,
    ) -> None:
        """Record and count one outcome (or keep an object waiting for Glacier);
        ``source``: a refusal's would-be file, when there is no item; ``worked``: the
        outcome with its ledger row, made in the file's thread."""
        if result.status == Status.PLANNED:  # interrupted before an outcome
            return
        pending = result.error_class == glacier.PENDING
        waits = wait and item is not None and self.glacier.wait
        if pending and waits and item is not None and not self.stop.is_set():
            self.waiting.append(item)
            return
        summary = self.summary
        try:
            if self.restores is not None and item is not None:
                record = worked.record if worked is not None else item.record(result)
                if record is not None:
                    self.restores.record(record, run_id=summary.run_id)
        finally:  # a ledger that failed stops the run; the file is still counted and said
            source = item.source if item is not None else source
            summary.count(result, source.group if source is not None else "(none)")
            self.observer.on_result(result, source)

    def still_pending(self) -> None:
        """A run stopped while objects waited for Glacier: each is reported pending."""
        waiting, self.waiting = self.waiting, []
        for item in waiting:
            message = glacier.message(item, glacier.PENDING, self.glacier)
            self.settle(item.failed(glacier.PENDING, message), item, wait=False)


class Received:
    """The bytes a run received, by group, as the status file counts them (a range that
    fails halfway taken back), objects finished or not: an interrupted run's summary
    says what it fetched, as an upload's says what it sent; and apart from them the
    ranges of earlier runs a resumed download kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_group: dict[str, int] = {}
        self.resumed = 0

    def add(self, source: SourceFile, count: int) -> None:
        with self._lock:
            self.by_group[source.group] = self.by_group.get(source.group, 0) + count

    def add_resumed(self, count: int) -> None:
        with self._lock:
            self.resumed += count

    def close(self, summary: RestoreSummary) -> None:
        with self._lock:
            for group, count in self.by_group.items():
                summary.add_sent(group, count)
            summary.bytes_resumed += self.resumed
