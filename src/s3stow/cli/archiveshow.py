"""What the ``s3stow archive`` commands print: ``archive run``'s summary and report,
the ``archive stats`` table and ``archive verify``'s problems, each as JSON with
``--json`` (one object) or for a person. Imported once a command's work is done."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from s3stow.cli.app import GlobalOptions, heading, output_console
from s3stow.units import plural

if TYPE_CHECKING:
    from s3stow.archive.archiver import ArchiveReport
    from s3stow.archive.report import TypeStats, VerifyReport
    from s3stow.models import RunSummary


def show_run(
    options: GlobalOptions, summary: RunSummary, report: ArchiveReport, *, dry_run: bool
) -> None:
    """``archive run``'s summary (the upload summary, then the rows' report); with
    ``-q`` nothing: the failures were printed as they happened."""
    from s3stow.report.console import print_summary, summary_dict

    if options.json:
        print(
            json.dumps(
                summary_dict(summary)
                | {
                    "event": "archive_summary",
                    "rows": report.rows,
                    "archive_urls_written": report.urls_written,
                    "transactions": report.transactions,
                    "missing_files": report.missing,
                    "md5_mismatch": report.md5_mismatch,
                    "no_created_at": report.no_created_at,
                    "cleaned": report.cleaned,
                }
            )
        )
    elif not options.quiet:  # -q: the failures were printed as they happened
        console = output_console()
        every = options.verbose > 0 or not console.is_terminal
        print_summary(
            summary,
            console,
            resume_hint="the same s3stow archive run command",
            list_all=every,
            run_id=None if dry_run else summary.run_id,
        )
        console.print(
            f"archive: {plural(report.rows, 'row')} read, archive_url written for "
            f"{report.urls_written} in {plural(report.transactions, 'transaction')}"
        )
        if report.missing:
            console.print(
                f"  {plural(len(report.missing), 'row')} without a local file (left "
                f"untouched): {', '.join(report.missing[:5])}"
                + (" ..." if len(report.missing) > 5 else "")
            )
        if report.md5_mismatch:
            console.print(
                f"  {plural(len(report.md5_mismatch), 'row')} whose file does not match "
                f"md5_sum: {', '.join(report.md5_mismatch[:5])}"
            )
        if report.no_created_at:
            console.print(
                f"  {plural(len(report.no_created_at), 'row')} without created_at used the "
                f"file's mtime: {', '.join(report.no_created_at[:5])}"
            )
        if report.cleaned:
            console.print(f"  {plural(report.cleaned, 'local file')} deleted after archiving")


def show_stats(options: GlobalOptions, overall: TypeStats, by_type: list[TypeStats]) -> None:
    """``archive stats``: overall, then by media type."""
    if options.json:
        print(
            json.dumps(
                {
                    s.media_type: {
                        "total": s.total,
                        "archived": s.archived,
                        "not_archived": s.not_archived,
                        "percent": round(s.percent, 1),
                    }
                    for s in [overall, *by_type]
                }
            )
        )
        return
    console = output_console()
    heading(console, "S3 Archive Statistics")
    from s3stow.report.console import table as new_table

    table_ = new_table(
        "",
        "total",
        "archived",
        "%",
        "not archived",
        numeric=("total", "archived", "%", "not archived"),
    )
    for s in [overall, *by_type]:
        table_.add_row(
            "Overall" if s is overall else s.media_type.capitalize(),
            f"{s.total:,}",
            f"{s.archived:,}",
            f"{s.percent:.1f}",
            f"{s.not_archived:,}",
        )
    console.print(table_)


def show_verify(options: GlobalOptions, report: VerifyReport) -> None:
    """``archive verify``: each problem, then the counts."""
    if options.json:
        print(
            json.dumps(
                {
                    "checked": report.checked,
                    "ok": report.ok,
                    "problems": [{"id": i, "class": c, "detail": d} for i, c, d in report.problems],
                }
            )
        )
    else:
        console = output_console()
        for row_id, kind, detail in report.problems:
            console.print(f"[red]{kind}[/] {row_id}: {detail}")
        console.print(
            f"checked {plural(report.checked, 'row')}: {report.ok} ok, "
            f"{plural(len(report.problems), 'problem')}"
        )


__all__ = ["show_run", "show_stats", "show_verify"]
