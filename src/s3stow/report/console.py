"""Human and machine output of a run: rich progress, plain lines, JSON events.

``RichProgress`` draws files and bytes done/total, rate and ETA on a terminal
(totals grow while discovery runs). Its bytes are those this run sends: a file
skipped, resumed from an earlier run's parts or failed leaves the total with what
it did not send, so the rate and ETA are this run's own. ``PlainProgress`` prints one line every N
seconds when output is not a terminal. ``JsonEvents`` prints one JSON object
per event. ``FailuresFile`` writes every failed item as a JSON line.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from rich.progress import TaskID

from s3stow.keys import display_path
from s3stow.logs import redact
from s3stow.models import Decision, RunSummary, Skipped, SourceFile, Status, UploadResult
from s3stow.report.observer import Observer
from s3stow.units import format_duration, format_size


class RichProgress(Observer):
    """Live progress bars on a terminal."""

    def __init__(self, console: Console, *, description: str = "uploading") -> None:
        self.description = description
        # imported here: a quiet or non-terminal run never draws bars (about 30 ms)
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[files]}"),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._files_done = 0
        self._files_total = 0
        self._bytes_total = 0
        self._file_bytes: dict[str, int] = {}  # sent or resumed, per file in flight
        self._lock = threading.Lock()

    def on_start(self, run_id: str, target: str) -> None:
        self.progress.start()
        self._task = self.progress.add_task(self.description, total=0, files="0/0 files")

    def on_discovered(self, source: SourceFile) -> None:
        with self._lock:
            self._files_total += 1
            self._bytes_total += source.size
            assert self._task is not None
            self.progress.update(self._task, total=self._bytes_total, files=self._files_text())

    def on_bytes(self, source: SourceFile, count: int) -> None:
        with self._lock:
            key = str(source.path)
            self._file_bytes[key] = self._file_bytes.get(key, 0) + count
        assert self._task is not None
        self.progress.advance(self._task, count)

    def on_resumed(self, source: SourceFile, count: int) -> None:
        with self._lock:  # already in S3: neither sent now nor left to send
            key = str(source.path)
            self._file_bytes[key] = self._file_bytes.get(key, 0) + count
            self._bytes_total -= count
            assert self._task is not None
            self.progress.update(self._task, total=self._bytes_total)

    def on_decision(self, decision: Decision) -> None:
        if not decision.upload and decision.reason.value == "ledger-done":
            self._done(decision.item.source.size)

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        size = source.size if source else 0
        with self._lock:
            handled = self._file_bytes.pop(str(result.path), 0)
        self._done(max(0, size - handled))

    def _done(self, unsent: int) -> None:
        """One file finished; ``unsent``: its bytes this run will not send."""
        with self._lock:
            self._files_done += 1
            self._bytes_total -= unsent
            assert self._task is not None
            self.progress.update(self._task, total=self._bytes_total, files=self._files_text())

    def _files_text(self) -> str:
        return f"{self._files_done}/{self._files_total} files"

    def on_finish(self, summary: RunSummary) -> None:
        self.progress.stop()


class PlainProgress(Observer):
    """A one-line status every ``interval`` seconds (CI, logs)."""

    def __init__(self, stream: TextIO, *, interval: float, verb: str = "sent") -> None:
        self.stream = stream
        self.interval = interval
        self.verb = verb
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.files = self.done = self.bytes = 0
        self._started = time.monotonic()

    def on_start(self, run_id: str, target: str) -> None:
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="progress")
        self._thread.start()

    def on_discovered(self, source: SourceFile) -> None:
        self.files += 1

    def on_decision(self, decision: Decision) -> None:
        if decision.reason.value == "ledger-done":
            self.done += 1

    def on_bytes(self, source: SourceFile, count: int) -> None:
        self.bytes += count

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        self.done += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            elapsed = time.monotonic() - self._started
            rate = self.bytes / elapsed if elapsed else 0
            print(
                f"progress: {self.done}/{self.files} files, {format_size(self.bytes)} {self.verb}, "
                f"{format_size(rate)}/s, {format_duration(elapsed)}",
                file=self.stream,
                flush=True,
            )

    def on_finish(self, summary: RunSummary) -> None:
        self._stop.set()


class JsonEvents(Observer):
    """One JSON object per line for each outcome, and the summary at the end."""

    def __init__(self, stream: TextIO, *, plan: bool = False) -> None:
        self.stream = stream
        self.plan = plan  # dry run: one "plan" event per file with its key and reason
        self._lock = threading.Lock()

    def _emit(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.stream.write(json.dumps(event) + "\n")
            self.stream.flush()

    def on_start(self, run_id: str, target: str) -> None:
        self._emit({"event": "start", "run_id": run_id, "target": target})

    def on_skipped_path(self, skipped: Skipped) -> None:
        self._emit(
            {
                "event": "skipped_path",
                "path": str(skipped.path),
                "reason": skipped.reason,
                "error_class": skipped.error_class,
            }
        )

    def on_decision(self, decision: Decision) -> None:
        if self.plan:
            self._emit(
                {
                    "event": "plan",
                    "path": str(decision.item.source.path),
                    "key": decision.item.key,
                    "size": decision.item.source.size,
                    "group": decision.item.source.group,
                    "upload": decision.upload,
                    "reason": decision.reason.value,
                }
            )
        elif decision.reason.value == "ledger-done":
            self._emit(
                {
                    "event": "skip",
                    "path": str(decision.item.source.path),
                    "key": decision.item.key,
                    "reason": decision.reason.value,
                }
            )

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        self._emit(result_dict(result) | {"event": "result"})

    def on_finish(self, summary: RunSummary) -> None:
        self._emit(summary_dict(summary) | {"event": "summary"})


class FailuresFile(Observer):
    """Writes each failed or changed item as a JSON line (for ``s3stow retry``)."""

    def __init__(self, path: Path, *, extra: dict[str, Any] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = path.open("w", encoding="utf-8")
        self.extra = extra or {}  # e.g. {"command": "restore"}: never retried as uploads
        self._lock = threading.Lock()

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        if result.status in (Status.FAILED, Status.CHANGED):
            with self._lock:
                self.handle.write(json.dumps(result_dict(result) | self.extra) + "\n")
                self.handle.flush()

    def on_finish(self, summary: RunSummary) -> None:
        self.handle.close()


class FailureLines(Observer):
    """``-q``: each failed or changed file as one line when it happens; nothing else."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        if result.status in (Status.FAILED, Status.CHANGED):
            line = (
                f"{result.status.value}: {display_path(result.path)}: "
                f"[{result.error_class}] {redact(result.error or '')}"
            )
            with self._lock:
                print(line, file=self.stream, flush=True)


def result_dict(result: UploadResult) -> dict[str, Any]:
    return {
        "path": str(result.path),
        "bucket": result.bucket,
        "key": result.key,
        "status": result.status.value,
        "size": result.size,
        "etag": result.etag,
        "checksum": result.checksum,
        "checksum_algorithm": result.checksum_algorithm,
        "error_class": result.error_class,
        "error": result.error,
        "attempts": result.attempts,
        "reason": result.reason.value if result.reason else None,
        "bytes_sent": result.bytes_sent,
    } | ({"tier": result.tier} if result.tier else {})


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    return {
        **summary.totals(),
        "would_upload": [
            {
                "path": str(d.item.source.path),
                "key": d.item.key,
                "size": d.item.source.size,
                "reason": d.reason.value,
            }
            for d in summary.would_upload
        ],
        "failures": [result_dict(r) for r in summary.failures[:100]],
    }


def print_summary(summary: RunSummary, console: Console, *, resume_hint: str | None) -> None:
    """The final human summary: always printed, even after an interrupt."""
    if summary.would_upload:
        console.print(f"[bold]dry run[/]: {len(summary.would_upload)} file(s) would be uploaded")
        for d in summary.would_upload[:50]:
            console.print(
                f"  {d.reason.value:8} {format_size(d.item.source.size):>10}  "
                f"{d.item.source.path} -> s3://{d.item.bucket}/{d.item.key}",
                markup=False,
                highlight=False,
            )
        if len(summary.would_upload) > 50:
            console.print(f"  ... and {len(summary.would_upload) - 50} more")
    rate = summary.bytes_uploaded / summary.elapsed if summary.elapsed else 0.0
    console.print(
        f"[bold]{summary.uploaded} uploaded[/], {summary.skipped} skipped, "
        f"[{'red' if summary.failed else 'green'}]{summary.failed} failed[/]"
        + (f", [yellow]{summary.changed} changed during upload[/]" if summary.changed else "")
        + f" of {summary.files} files ({format_size(summary.bytes_total)}); "
        f"{format_size(summary.bytes_uploaded)} sent in "
        f"{format_duration(summary.elapsed)} ({format_size(rate)}/s)"
        + (
            f", {format_size(summary.bytes_resumed)} resumed from an earlier run's parts"
            if summary.bytes_resumed
            else ""
        )
    )
    if summary.skip_reasons:
        console.print(
            "  skipped: "
            + ", ".join(f"{n} {why}" for why, n in sorted(summary.skip_reasons.items()))
            + " (-v names each)",
            markup=False,
        )
    if summary.not_selected:
        console.print(
            f"  {summary.not_selected} file(s) not selected by --include/--exclude, size, "
            "age or folder-type extension (-v names each)",
            markup=False,
        )
    if summary.transient_errors:
        console.print(
            f"  {summary.transient_errors} transient error(s) retried"
            + (
                f", {summary.throttled} throttling response(s): concurrency now "
                f"{summary.concurrency}"
                if summary.throttled
                else ""
            )
        )
    if 1 < len(summary.groups) <= 12:
        from rich.table import Table

        table = Table(
            "group", "files", "uploaded", "skipped", "failed", "sent", box=None, pad_edge=False
        )
        for name, c in sorted(summary.groups.items()):
            table.add_row(
                name,
                str(c["files"]),
                str(c["uploaded"]),
                str(c["skipped"]),
                str(c["failed"]),
                format_size(c["bytes_uploaded"]),
            )
        console.print(table)
    elif summary.groups and len(summary.groups) > 12:
        console.print(
            f"  ({len(summary.groups)} groups: per-group counts are in --json and --status-json)"
        )
    for failure in summary.failures[:5]:
        console.print(
            f"  [red]{failure.status.value}[/] {escape(display_path(failure.path))}: "
            f"{escape(f'[{failure.error_class}] {failure.error}')}",
            markup=True,
            highlight=False,
        )
    if len(summary.failures) > 5:
        console.print(f"  ... and {len(summary.failures) - 5} more (see --failures-file)")
    if summary.interrupted and resume_hint:
        console.print(
            f"[yellow]interrupted[/]: run the same command again to resume:\n  {resume_hint}",
            highlight=False,
        )
