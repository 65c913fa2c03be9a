"""``s3stow stats``: what the ledger says, overall and per group, aggregated in SQL."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from s3stow.cli.app import GlobalOptions, heading, output_console
from s3stow.cli.helptext import examples
from s3stow.cli.runoptions import LedgerOpt
from s3stow.units import format_size

if TYPE_CHECKING:
    from s3stow.ledger.queries import GroupTotals


Opt = typer.Option


def stats(
    ctx: typer.Context,
    ledger: LedgerOpt = None,
    run: Annotated[
        str | None,
        Opt(
            "--run",
            help="Only items last touched by this run (a watch's: by its batches).",
            metavar="RUN_ID",
        ),
    ] = None,
    by: Annotated[
        str,
        Opt(
            "--by",
            help="Rows by status, group (folder type or top directory), file extension, "
            "run or error class.",
            metavar="status|group|ext|run|error",
        ),
    ] = "group",
    bucket: Annotated[str | None, Opt(help="Only this bucket.", metavar="BUCKET")] = None,
) -> None:
    """Counts and bytes: total, done (%), not done, failed by error class."""
    from s3stow.cli.upload import existing_ledger
    from s3stow.ledger import open_ledger
    from s3stow.ledger.queries import GroupTotals, failures_by_error, totals_by
    from s3stow.plan.retries import category

    options: GlobalOptions = ctx.obj
    settings = options.settings(ledger=ledger)
    db = open_ledger(existing_ledger(settings.ledger))
    try:
        groups = totals_by(db, by, run_id=run, bucket=bucket)
        errors = failures_by_error(db, run_id=run)
        if run is not None and not groups and not db.batches(run):  # a watch's: its batches
            _check_run(db.run_info(run), run)
    finally:
        db.close()
    overall = GroupTotals(
        "all",
        *(
            sum(getattr(g, f) for g in groups)
            for f in ("items", "bytes", "done", "done_bytes", "failed", "changed")
        ),
    )
    if options.json:
        print(
            json.dumps(
                {
                    "by": by,
                    "overall": _row(overall),
                    "groups": [_row(g) for g in groups],
                    "failures": [
                        {"error_class": e, "category": category(e), "items": n, "latest_message": m}
                        for e, n, m in errors
                    ],
                }
            )
        )
        return
    console = output_console()
    heading(console, "s3stow statistics")
    from s3stow.report.console import table as new_table

    table = new_table(
        by,
        "items",
        "bytes",
        "done",
        "%",
        "not done",
        "failed",
        "changed",
        numeric=("items", "bytes", "done", "%", "not done", "failed", "changed"),
    )
    for group in [overall, *groups]:
        table.add_row(
            "Overall" if group is overall else group.name,
            f"{group.items:,}",
            format_size(group.bytes),
            f"{group.done:,}",
            f"{group.percent_done:.1f}",
            f"{group.not_done:,}",
            f"{group.failed:,}",
            f"{group.changed:,}",
        )
    console.print(table)
    if errors:
        console.print("\n[bold]still failed, by error class[/]")
        for error_class, count, message in errors:
            console.print(
                f"  {category(error_class):16} {error_class:24} {count:6,}  {message[:80]}",
                markup=False,
            )


def _check_run(info: dict[str, object] | None, run: str) -> None:
    """A ``--run`` that counts nothing because it names no upload run: said (exit 2),
    as ``restore --run`` says it, rather than a table of zeros."""
    from s3stow.errors import ConfigError

    if info is None:
        raise ConfigError(
            f"no run {run!r} in the ledger", hint="`s3stow stats --by run` lists the upload runs"
        )
    if str(info.get("command") or "").startswith("restore"):
        raise ConfigError(
            f"run {run!r} is a restore: stats counts what uploads recorded",
            hint="a restore's counts are in its --json summary and its --status-json file",
        )


def _row(group: GroupTotals) -> dict[str, object]:
    return {
        "name": group.name,
        "items": group.items,
        "bytes": group.bytes,
        "done": group.done,
        "done_bytes": group.done_bytes,
        "percent_done": round(group.percent_done, 1),
        "not_done": group.not_done,
        "failed": group.failed,
        "changed": group.changed,
    }


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            ("What is done and what is not, per top-level folder:", "s3stow stats"),
            ("Failures by error class, with the latest message:", "s3stow stats --by error"),
            ("One run, as JSON:", "s3stow stats --run 20250729T101500Z-a1b2c3 --json"),
        )
    )(stats)
