"""What a run leaves for people and programs: the summary, JSON events, failures.

``print_summary`` is the human summary at the end of a run (always printed, even
after an interrupt); ``JsonEvents`` prints one JSON object per event;
``FailuresFile`` writes every failed item as a JSON line; ``table`` is the one table
style of every command. Names that come from files or keys reach a terminal through
``for_terminal`` (a control character, such as a file name's ESC or newline, is shown
escaped, never sent to the terminal) and never as rich markup (a key like
``[bold]x`` is shown as it is). The live progress display is ``report.progress``.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

from s3stow.errors import ConfigError
from s3stow.localfiles import display_path, output_problem
from s3stow.logs import for_terminal as for_terminal
from s3stow.logs import redact
from s3stow.models import Decision, RunSummary, Skipped, SourceFile, Status, UploadResult
from s3stow.report.observer import Observer
from s3stow.units import format_duration, format_size, plural

log = logging.getLogger(__name__)


class JsonEvents(Observer):
    """One JSON object per line for each outcome, and the summary at the end."""

    def __init__(self, stream: TextIO, *, plan: bool = False, receiving: bool = False) -> None:
        self.stream = stream
        self.plan = plan  # dry run: one "plan" event per file with its key and reason
        self.receiving = receiving  # a restore: each result's bytes are bytes_restored
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
                    "upload": decision.upload,  # a restore's too: kept for older scripts
                    "reason": decision.reason.value,
                }
                | ({"restore": decision.upload} if self.receiving else {})
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
        self._emit(result_dict(result, receiving=self.receiving) | {"event": "result"})

    def on_finish(self, summary: RunSummary) -> None:
        self._emit(summary_dict(summary) | {"event": "summary"})


class FailuresFile(Observer):
    """Writes each failed or changed item as a JSON line (for ``s3stow retry``)."""

    def __init__(self, path: Path, *, extra: dict[str, Any] | None = None) -> None:
        problem = output_problem(path)
        if problem is None:
            try:
                self.handle = path.open("w", encoding="utf-8")
            except OSError as exc:
                problem = str(exc.strerror or exc)
        if problem is not None:  # a usage error (exit 2) before the run, not "unexpected"
            raise ConfigError(
                f"cannot write the failures file {path}: {problem}",
                hint="give --failures-file a file name in a folder that can be written",
            )
        self.path = path
        self.extra = extra or {}  # e.g. {"command": "restore"}: never retried as uploads
        self.receiving = self.extra.get("command") == "restore"
        self._lock = threading.Lock()
        self._broken = False  # a write failed (a full disk): said once, the run goes on

    def on_start(self, run_id: str, target: str) -> None:
        with self._lock:  # another run of the same command (retry's batches): appended
            if self.handle.closed:
                self.handle = self.path.open("a", encoding="utf-8")

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        if result.status in (Status.FAILED, Status.CHANGED):
            with self._lock:
                if self._broken:
                    return
                try:
                    self.handle.write(
                        json.dumps(result_dict(result, receiving=self.receiving) | self.extra)
                        + "\n"
                    )
                    self.handle.flush()
                except OSError as exc:  # a full disk must not stop the uploads
                    self._broken = True
                    log.error(
                        "cannot write the failures file %s: %s: the failures from %s on are "
                        "not in it (the ledger has every one: s3stow retry --list)",
                        self.path, exc.strerror or exc, for_terminal(display_path(result.path)),
                    )  # fmt: skip

    def on_finish(self, summary: RunSummary) -> None:
        with suppress(OSError):  # said when the write failed; what is buffered is lost
            self.handle.close()


class FailureLines(Observer):
    """``-q``: each failed or changed file as one line when it happens; nothing else."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._lock = threading.Lock()

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        if result.status in (Status.FAILED, Status.CHANGED):
            line = (
                f"{result.status.value}: {for_terminal(display_path(result.path))}: "
                f"[{result.error_class}] {for_terminal(redact(result.error or ''))}"
            )
            with self._lock:
                print(line, file=self.stream, flush=True)


def result_dict(result: UploadResult, *, receiving: bool = False) -> dict[str, Any]:
    """One outcome as JSON; ``receiving``: a restore's, its bytes named
    ``bytes_restored`` (received) as in its summary, an upload's ``bytes_sent``."""
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
        ("bytes_restored" if receiving else "bytes_sent"): result.bytes_sent,
    } | ({"tier": result.tier} if result.tier else {})


def summary_dict(summary: RunSummary) -> dict[str, Any]:
    totals = summary.totals()
    if "would_restore" in totals:  # a restore: its own list, never an upload's
        return {
            **totals,
            "failures": [result_dict(r, receiving=True) for r in summary.failures[:100]],
        }
    return {
        **totals,
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


def table(*columns: str, numeric: tuple[str, ...] = ()) -> Table:
    """s3stow's one table style: no borders, a bold header, numbers right-aligned (the
    same on a terminal and in a log, and easy to read with awk)."""
    from rich.table import Table
    from rich.text import Text

    class PlainTable(Table):
        """Text cells are shown as they are: no markup, control characters escaped."""

        def add_row(self, *cells: Any, **options: Any) -> None:
            shown = (Text(for_terminal(c)) if isinstance(c, str) else c for c in cells)
            super().add_row(*shown, **options)

    made = PlainTable(box=None, pad_edge=False, header_style="bold")
    for column in columns:
        made.add_column(column, justify="right" if column in numeric else "left")
    return made


def aligned_lines(
    header: tuple[str, ...], rows: Sequence[tuple[str, ...]], *, caps: dict[int, int]
) -> list[str]:
    """A table for output that is piped or redirected: each row whole on one line (a
    script reads a key whole), columns two spaces apart, no trailing spaces. A column is
    as wide as its longest cell, up to its cap in ``caps`` (by index): a longer cell is
    written whole and shifts the rest of its own row only, so one long key does not
    push every other row's columns to the right. Cells as ``table`` shows them
    (control characters escaped)."""
    from rich.cells import cell_len  # columns on screen: a CJK character takes two

    shown = [tuple(map(for_terminal, row)) for row in [header, *rows]]
    widths = [
        min(max(cell_len(row[i]) for row in shown), caps.get(i, sys.maxsize))
        for i in range(len(header))
    ]
    lines = []
    for row in shown:
        pairs = zip(row, widths, strict=True)
        cells = [cell + " " * (width - cell_len(cell)) for cell, width in pairs]
        lines.append("  ".join(cells).rstrip())
    return lines


SHOWN_PLANNED = 50  # files a dry run lists on a terminal without -v


def run_label(run_id: str | None) -> str:
    """``"; run ID"`` for the end of a summary's counts line (a retry of several runs:
    ``"; runs A, B"``), the id ``stats``, ``restore`` and ``retry --run`` take; ``""``
    for none (a dry run records no run)."""
    if not run_id:
        return ""
    ids = run_id.split(",")
    return f"; run{'s' if len(ids) > 1 else ''} {', '.join(ids)}"


def left_for_next_run(summary: RunSummary, *, what: str = "file", done: str = "uploaded") -> str:
    """What an interrupted run left for the next one, as a summary line ("" when nothing
    is known to be left)."""
    left = []
    if summary.unfinished:
        kept = "parts" if what == "file" else "ranges"
        left.append(
            f"{plural(summary.unfinished, what)} found and not {done} yet (never started, "
            f"or stopped mid-way with their {kept} kept)"
        )
    if summary.walk_complete is False:
        left.append("the walk of the sources stopped before their end: more may be left")
    elif summary.walk_complete is None and left:
        left.append("the listing may have stopped before its end")
    return f"  left for the next run: {'; '.join(left)}" if left else ""


def print_summary(
    summary: RunSummary,
    console: Console,
    *,
    resume_hint: str | None,
    list_all: bool = False,
    run_id: str | None = None,
) -> None:
    """The final human summary: always printed, even after an interrupt. A dry run lists
    every file with ``list_all`` (-v, or output that is not a terminal), else the first
    ``SHOWN_PLANNED`` and how to see the rest. ``run_id`` (the ledger's; none for a dry
    run) ends the counts line."""
    from rich.markup import escape  # rich only where a summary is printed (not with -q)

    if summary.would_upload:
        planned = summary.would_upload
        console.print(f"[bold]dry run[/]: {plural(len(planned), 'file')} would be uploaded")
        for d in planned if list_all else planned[:SHOWN_PLANNED]:
            console.print(
                f"  {d.reason.value:8} {format_size(d.item.source.size):>10}  "
                + for_terminal(f"{d.item.source.path} -> s3://{d.item.bucket}/{d.item.key}"),
                markup=False,
                highlight=False,
            )
        if not list_all and len(planned) > SHOWN_PLANNED:
            console.print(
                f"  ... and {len(planned) - SHOWN_PLANNED:,} more: -v lists every one, "
                "--json gives them as JSON lines (one plan event per file)",
                markup=False,
            )
    rate = summary.bytes_uploaded / summary.elapsed if summary.elapsed else 0.0
    console.print(
        f"[bold]{summary.uploaded} uploaded[/], {summary.skipped} skipped, "
        f"[{'red' if summary.failed else 'green'}]{summary.failed} failed[/]"
        + (f", [yellow]{summary.changed} changed during upload[/]" if summary.changed else "")
        + (f", {summary.not_started} not started (limit)" if summary.not_started else "")
        + f" of {plural(summary.files, 'file')} ({format_size(summary.bytes_total)}); "
        f"{format_size(summary.bytes_uploaded)} sent in "
        f"{format_duration(summary.elapsed)} ({format_size(rate)}/s)"
        + (
            f", {format_size(summary.bytes_resumed)} resumed from an earlier run's parts"
            if summary.bytes_resumed
            else ""
        )
        + run_label(run_id),
        highlight=False,
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
            f"  {plural(summary.not_selected, 'file')} not selected by --include/--exclude, size, "
            "age or folder-type extension (-v names each)",
            markup=False,
        )
    if summary.transient_errors:
        console.print(
            f"  {plural(summary.transient_errors, 'transient error')} retried"
            + (
                f", {plural(summary.throttled, 'throttling response')}: concurrency now "
                f"{summary.concurrency}"
                if summary.throttled
                else ""
            )
        )
    if 1 < len(summary.groups) <= 12:
        groups = table(
            "group",
            "files",
            "uploaded",
            "skipped",
            "failed",
            "sent",
            numeric=("files", "uploaded", "skipped", "failed", "sent"),
        )
        for name, c in sorted(summary.groups.items()):
            groups.add_row(
                name,
                str(c["files"]),
                str(c["uploaded"]),
                str(c["skipped"]),
                str(c["failed"]),
                format_size(c["bytes_uploaded"]),
            )
        console.print(groups)
    elif summary.groups and len(summary.groups) > 12:
        console.print(
            f"  ({len(summary.groups)} groups: per-group counts are in --json and --status-json)"
        )
    for failure in summary.failures[:5]:
        console.print(
            f"  [red]{failure.status.value}[/] {escape(for_terminal(display_path(failure.path)))}: "
            f"{escape(for_terminal(f'[{failure.error_class}] {failure.error}'))}",
            markup=True,
            highlight=False,
        )
    if len(summary.failures) > 5:
        console.print(f"  ... and {len(summary.failures) - 5} more (see --failures-file)")
    if summary.interrupted and resume_hint:
        if left := left_for_next_run(summary):
            console.print(left, markup=False, highlight=False)
        console.print(
            f"[yellow]interrupted[/]: run the same command again to resume:\n  {resume_hint}",
            highlight=False,
        )
