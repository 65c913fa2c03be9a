"""What a restore run reports: ``RestoreSummary`` and its human summary.

The run's counters are an upload's (``RunSummary``, so the observers, ``--json`` and
``--status-json`` work unchanged), named for a restore in ``totals()``: ``restored``
and ``bytes_restored``, plus ``pending`` (archived objects whose restore was requested
but is not readable yet) and, in a dry run, ``would_restore``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from s3stow.models import Decision, RunSummary, Status, UploadResult
from s3stow.report.console import SHOWN_PLANNED, for_terminal, run_label
from s3stow.restore.glacier import PENDING
from s3stow.units import format_duration, format_size, plural

if TYPE_CHECKING:
    from rich.console import Console

_RESTORE_NAMES = {"uploaded": "restored", "bytes_uploaded": "bytes_restored"}

# A failed restore's operator-facing category (``stats``), as ``plan.retries.category``
# gives an upload's: s3stow's own restore classes here, S3's codes (access, throttling,
# network, server) as an upload's; an upload's source-file categories do not apply.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "integrity": ("checksum-mismatch", "md5-mismatch"),
    "local file kept": ("local-exists",),
    "object changed": ("changed-remotely", "replaced-since-run", "NoSuchKey"),
    "archived": ("archived", PENDING),
    "path invalid": ("unsafe-path", "path-collision", "bad-url"),
    "local write": (
        "PermissionError", "OSError", "FileExistsError", "IsADirectoryError",
        "NotADirectoryError",
    ),
}  # fmt: skip


def category(error_class: str | None) -> str:
    """The operator-facing category of a failed restore's error class."""
    from s3stow.plan.retries import category as upload_category

    for name, classes in CATEGORIES.items():
        if error_class in classes:
            return name
    found = upload_category(error_class)
    return "other" if found.startswith("source ") else found


@dataclass(slots=True)
class RestoreSummary(RunSummary):
    """A restore run's totals (``uploaded`` counts the files restored)."""

    pending: int = 0
    would_restore: list[Decision] = field(default_factory=list)
    tiers: dict[str, int] = field(default_factory=dict)  # what proved each file in place
    streams: int = 0  # the limit on ranges in flight at the end (StreamLimiter)
    streams_peak: int = 0  # the most ranges in flight at once

    @property
    def ok(self) -> bool:
        return RunSummary.ok.fget(self) and self.pending == 0  # type: ignore[attr-defined]

    def _outcomes(self) -> int:
        return RunSummary._outcomes(self) + self.pending

    def count(self, result: UploadResult, group: str) -> None:
        """Count one outcome (a Glacier restore still pending is not a failure, but not
        done either)."""
        if result.tier and result.status in (Status.DONE, Status.SKIPPED):
            self.tiers[result.tier] = self.tiers.get(result.tier, 0) + 1
        if result.status == Status.DONE:  # its bytes: counted as received (Restorer)
            self.uploaded += 1
            self.count_group(group, "uploaded")
        elif result.status == Status.SKIPPED:
            self.skipped += 1
            self.count_group(group, "skipped")
        else:
            if result.error_class == PENDING:
                self.pending += 1
            else:
                self.failed += 1
            self.failures.append(result)
            self.count_group(group, "failed")

    def totals(self) -> dict[str, object]:
        totals = RunSummary.totals(self)
        totals["restored"] = totals.pop("uploaded")
        totals["bytes_restored"] = totals.pop("bytes_uploaded")
        totals["groups"] = {  # named as the totals are (and the --status-json file)
            name: {_RESTORE_NAMES.get(k, k): v for k, v in counts.items()}
            for name, counts in self.groups.items()
        }
        totals["pending"] = self.pending
        totals["tiers"] = dict(self.tiers)
        totals["ranges_in_flight"] = self.streams
        totals["ranges_in_flight_peak"] = self.streams_peak
        totals["would_restore"] = [
            {
                "key": d.item.key,
                "path": str(d.item.source.path),
                "size": d.item.source.size,
                "reason": d.reason.value,
            }
            for d in self.would_restore
        ]
        return totals


def print_restore_summary(
    summary: RestoreSummary,
    console: Console,
    *,
    resume_hint: str | None,
    list_all: bool = False,
    run_id: str | None = None,
) -> None:
    """The final human summary: always printed, even after an interrupt. A dry run lists
    every object with ``list_all`` (-v, or output that is not a terminal); ``run_id``
    (the ledger's; none for a dry run) ends the counts line, as an upload's."""
    from rich.markup import escape  # rich only where a summary is printed (not with -q)

    plain: dict[str, Any] = {"markup": False, "highlight": False}
    if summary.would_restore:
        planned = summary.would_restore
        console.print(f"[bold]dry run[/]: {plural(len(planned), 'object')} would be restored")
        for d in planned if list_all else planned[:SHOWN_PLANNED]:
            console.print(
                f"  {d.reason.value:12} {format_size(d.item.source.size):>10}  "
                + for_terminal(f"s3://{d.item.bucket}/{d.item.key} -> {d.item.source.path}"),
                **plain,
            )
        if not list_all and len(planned) > SHOWN_PLANNED:
            console.print(
                f"  ... and {len(planned) - SHOWN_PLANNED:,} more: -v lists every one, "
                "--json gives them as JSON lines (one plan event per object)",
                markup=False,
            )
    rate = summary.bytes_uploaded / summary.elapsed if summary.elapsed else 0.0
    console.print(
        f"[bold]{summary.uploaded} restored[/], {summary.skipped} skipped, "
        f"[{'red' if summary.failed else 'green'}]{summary.failed} failed[/]"
        + (
            f", [yellow]{summary.pending} waiting for a restore from Glacier[/]"
            if summary.pending
            else ""
        )
        + (f", {summary.not_started} not started (limit)" if summary.not_started else "")
        + f" of {plural(summary.files, 'object')}; {format_size(summary.bytes_uploaded)} in "
        f"{format_duration(summary.elapsed)} ({format_size(rate)}/s)"
        + (
            f", {format_size(summary.bytes_resumed)} resumed from an earlier run's ranges"
            if summary.bytes_resumed
            else ""
        )
        + run_label(run_id),
        highlight=False,
    )
    if summary.not_selected:
        console.print(
            f"  {plural(summary.not_selected, 'object')} not selected by --include/--exclude",
            highlight=False,
        )
    if summary.tiers:
        proven = ", ".join(f"{tier} {n}" for tier, n in sorted(summary.tiers.items()))
        console.print(f"  verified by: {proven}", highlight=False)
    if summary.transient_errors:
        console.print(f"  {plural(summary.transient_errors, 'transient error')} retried")
    for failure in summary.failures[:5]:
        where = escape(for_terminal(f"s3://{failure.bucket}/{failure.key}: {failure.error}"))
        console.print(f"  [red]{escape(str(failure.error_class))}[/] {where}", highlight=False)
    if len(summary.failures) > 5:
        console.print(f"  ... and {len(summary.failures) - 5} more (see --failures-file)")
    if summary.interrupted and resume_hint:
        from s3stow.report.console import left_for_next_run

        if left := left_for_next_run(summary, what="object", done="restored"):
            console.print(left, markup=False, highlight=False)
        console.print(
            f"[yellow]interrupted[/]: run the same command again to resume:\n  {resume_hint}",
            highlight=False,
        )
