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
    from collections.abc import Callable

    from rich.console import Console

    from s3stow.ledger.queries import GroupTotals, RestoreTotals


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
    """Counts and bytes: total, done (%), not done, failed by error class; then the
    restores the ledger recorded (restored, failed, under way; failed by error class)."""
    from s3stow.cli.runsupport import existing_ledger
    from s3stow.ledger import open_ledger
    from s3stow.ledger.queries import (
        GroupTotals,
        buckets_known,
        failures_by_error,
        restore_failures_by_error,
        restore_totals,
        totals_by,
    )
    from s3stow.ledger.restores import is_restore_run
    from s3stow.plan.retries import category
    from s3stow.restore.report import category as restore_category

    options: GlobalOptions = ctx.obj
    settings = options.settings(ledger=ledger)
    db = open_ledger(existing_ledger(settings.ledger))
    try:
        if bucket is not None and not buckets_known(db, bucket):
            _no_bucket(bucket)
        info = db.run_info(run) if run is not None else None
        restore_run = info is not None and is_restore_run(info.get("command"))
        groups = [] if restore_run else totals_by(db, by, run_id=run, bucket=bucket)
        errors = [] if restore_run else failures_by_error(db, run_id=run, bucket=bucket)
        if run is not None and not restore_run and not groups and not db.batches(run):
            _check_run(info, run)  # a watch's id: its batches count
        restores = None
        restore_errors: list[tuple[str, int, str]] = []
        if run is None or restore_run:  # an upload run's id: its uploads only
            restores = restore_totals(db, run_id=run, bucket=bucket)
            restore_errors = restore_failures_by_error(db, run_id=run, bucket=bucket)
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
                    "restores": restores.as_dict() if restores is not None else None,
                    "restore_failures": None
                    if restores is None
                    else [
                        {
                            "error_class": e,
                            "category": restore_category(e),
                            "items": n,
                            "latest_message": m,
                        }
                        for e, n, m in restore_errors
                    ],
                }
            )
        )
        return
    console = output_console()
    heading(console, "s3stow statistics")
    if restore_run:
        console.print(f"run {run} is a restore: what it restored", markup=False)
    else:
        _print_uploads(console, by, overall, groups, errors)
    if restores is not None and (restores.items or restore_run):
        _print_restores(console, restores, restore_errors)


def _print_uploads(
    console: Console,
    by: str,
    overall: GroupTotals,
    groups: list[GroupTotals],
    errors: list[tuple[str, int, str]],
) -> None:
    from s3stow.plan.retries import category
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
        _print_errors(console, errors, category)


def _print_errors(
    console: Console, errors: list[tuple[str, int, str]], category: Callable[[str], str]
) -> None:
    """One line per error class: its category, the class, the count, a message."""
    from s3stow.report.console import for_terminal

    for error_class, count, message in errors:
        console.print(
            f"  {category(error_class):16} {error_class:24} {count:6,}  "
            + for_terminal(message[:80]),
            markup=False,
            highlight=False,
        )


def _print_restores(
    console: Console, totals: RestoreTotals, errors: list[tuple[str, int, str]]
) -> None:
    from s3stow.report.console import table as new_table
    from s3stow.restore.report import category

    console.print("\n[bold]restores[/]")
    table = new_table(
        "",
        "items",
        "bytes",
        "restored",
        "%",
        "failed",
        "under way",
        numeric=("items", "bytes", "restored", "%", "failed", "under way"),
    )
    percent = 100.0 * totals.restored / totals.items if totals.items else 0.0
    table.add_row(
        "Overall",
        f"{totals.items:,}",
        format_size(totals.bytes),
        f"{totals.restored:,}",
        f"{percent:.1f}",
        f"{totals.failed:,}",
        f"{totals.in_progress:,}",
    )
    console.print(table)
    if errors:
        console.print("\n[bold]restores still failed, by error class[/]")
        _print_errors(console, errors, category)


def _no_bucket(bucket: str) -> None:
    """A ``--bucket`` no upload, restore or run of the ledger names: said (exit 2), as a
    ``--run`` the ledger does not know is, rather than a table of zeros."""
    from s3stow.errors import ConfigError

    raise ConfigError(
        f"no bucket {bucket!r} in the ledger",
        hint="check the name, or the --ledger: `s3stow stats` without --bucket counts every bucket",
    )


def _check_run(info: dict[str, object] | None, run: str) -> None:
    """A ``--run`` that counts nothing because it names no run: said (exit 2), as
    ``restore --run`` says it, rather than a table of zeros."""
    from s3stow.errors import ConfigError

    if info is None:
        raise ConfigError(
            f"no run {run!r} in the ledger", hint="`s3stow stats --by run` lists the upload runs"
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
