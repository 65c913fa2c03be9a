"""``s3stow restore s3://BUCKET[/PREFIX] DEST``: the way back, verified and resumable."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from s3stow.cli.app import (
    GlobalOptions,
    MetricsHostOpt,
    MetricsPortOpt,
    check_at_exit,
    output_console,
)
from s3stow.cli.helptext import examples
from s3stow.cli.runoptions import (
    ConcurrencyOpt,
    LedgerOpt,
    MaxConcurrencyOpt,
    StatusIntervalOpt,
    StatusJsonOpt,
)
from s3stow.errors import ConfigError

if TYPE_CHECKING:
    from s3stow.config import Settings
    from s3stow.report.observer import Observer
    from s3stow.restore.engine import Restorer
    from s3stow.restore.glacier import GlacierOptions
    from s3stow.restore.report import RestoreSummary


Opt = typer.Option
OverwriteOpt = Annotated[
    bool, Opt("--overwrite", help="Replace local files that differ from the object.")
]
DryRunOpt = Annotated[
    bool | None, Opt("--dry-run", help="List what would be written where; write nothing.")
]
RequestOpt = Annotated[
    bool,
    Opt("--request-restore", help="Ask S3 for readable copies of GLACIER/DEEP_ARCHIVE objects."),
]
DaysOpt = Annotated[
    int | None,
    Opt(
        help="Days the restored copies stay readable (with --request-restore).",
        metavar="DAYS",
        show_default="7",
    ),
]
TierOpt = Annotated[
    str | None,
    Opt(
        help="Retrieval tier (with --request-restore).",
        metavar="Standard|Bulk|Expedited",
        show_default="Standard",
    ),
]
WaitOpt = Annotated[
    bool, Opt("--wait", help="Wait for archived objects to become readable, then fetch them.")
]
PollOpt = Annotated[
    float | None,
    Opt(
        help="Seconds before the first check of a pending restore (it doubles, up to 900; "
        "with --wait).",
        metavar="SECONDS",
        show_default="60",
    ),
]


def restore(
    ctx: typer.Context,
    paths: Annotated[
        list[str],
        typer.Argument(
            help="The source s3://BUCKET[/PREFIX] (optional with --run), then the local folder.",
            metavar="[s3://BUCKET[/PREFIX]] DEST",
        ),
    ],
    run: Annotated[
        str | None,
        Opt(
            "--run",
            help="Restore what this upload run stored (its id, from the ledger).",
            metavar="RUN_ID",
        ),
    ] = None,
    overwrite: OverwriteOpt = False,
    dry_run: DryRunOpt = None,
    request_restore: RequestOpt = False,
    days: DaysOpt = None,
    tier: TierOpt = None,
    wait: WaitOpt = False,
    poll_interval: PollOpt = None,
    ledger: LedgerOpt = None,
    concurrency: ConcurrencyOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    part_size: Annotated[
        str | None,
        Opt(
            help="Range size for large objects, e.g. 64MiB.",
            metavar="SIZE",
            # download.RANGE_SIZE whatever the size (an upload's part size grows with
            # it), raised only past 10,000 ranges; a COMPOSITE checksum's parts win
            show_default="8MiB, or a composite checksum's parts",
        ),
    ] = None,
    multipart_threshold: Annotated[
        str | None,
        Opt(
            help="Objects larger than this are fetched in ranges.",
            metavar="SIZE",
            show_default="16MiB",
        ),
    ] = None,
    include: Annotated[
        list[str] | None,
        Opt(
            "--include",
            help="Only keys (below the prefix) matching this gitignore-style pattern.",
            metavar="PATTERN",
        ),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        Opt("--exclude", help="Skip keys matching this pattern (exclude wins).", metavar="PATTERN"),
    ] = None,
    limit: Annotated[
        int | None,
        Opt(help="Start at most N downloads; the rest are reported as not started.", metavar="N"),
    ] = None,
    status_json: StatusJsonOpt = None,
    status_interval: StatusIntervalOpt = None,
    failures_file: Annotated[
        Path | None,
        Opt(help="Write each failed object as a JSON line.", metavar="FILE"),
    ] = None,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = None,
) -> None:
    """Restore objects to local files: verified before they take their name, resumable."""
    from s3stow.cli.runsupport import (
        existing_ledger,
        install_signal_handlers,
        ledger_for,
        resume_command,
    )
    from s3stow.ledger import open_ledger
    from s3stow.report.metrics import metrics_for, serving
    from s3stow.restore.engine import Restorer
    from s3stow.restore.worker import RestoreOptions

    options: GlobalOptions = ctx.obj
    source, dest = _arguments(paths, run)
    glacier = glacier_options(
        request_restore, wait, days=days, tier=tier, poll_interval=poll_interval
    )
    settings = options.settings(
        keep_held=True,  # released by StartupOver (observers_for)
        ledger=ledger,
        concurrency=concurrency,
        max_concurrency=max_concurrency,
        part_size=part_size,
        multipart_threshold=multipart_threshold,
        include=include or None,
        exclude=exclude or None,
        dry_run=dry_run,
        limit=limit,
        status_json=status_json,
        status_interval=status_interval,
        failures_file=failures_file,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )
    ledger_db = open_ledger(existing_ledger(settings.ledger)) if run else ledger_for(settings)
    metrics = metrics_for(settings, command="restore", done="restored")
    restorer = Restorer(
        settings,
        ledger=ledger_db,
        observers=observers_for(options, settings),
        options=RestoreOptions(overwrite=overwrite, glacier=glacier),
        request_observer=metrics,
    )
    undo = install_signal_handlers(restorer, resume=resume_command())
    summary: RestoreSummary
    try:
        with serving(metrics, restorer, settings, announce=not options.quiet):
            if run is not None:
                summary = restorer.restore_run(run, dest, source=source)
            else:
                assert source is not None
                summary = restorer.restore_tree(source, dest)
    finally:
        undo()
        if ledger_db is not None:
            ledger_db.close()
    finish(options, summary, restorer)


def glacier_options(
    request: bool,
    wait: bool,
    *,
    days: int | None = None,
    tier: str | None = None,
    poll_interval: float | None = None,
) -> GlacierOptions:
    """The archived-object options, checked (exit 2 on a bad value, and on --days or
    --tier without --request-restore, --poll-interval without --wait: each would be
    ignored, the user believing it applied)."""
    from s3stow.restore.glacier import TIERS, GlacierOptions

    unused = [flag for flag, value in (("--days", days), ("--tier", tier)) if value is not None]
    if unused and not request:
        flags = " and ".join(unused)
        raise ConfigError(
            f"{flags} shape{'' if len(unused) > 1 else 's'} the restore requests "
            "--request-restore sends, and it was not given: nothing would use "
            f"{'them' if len(unused) > 1 else 'it'}",
            hint=f"add --request-restore to ask S3 for copies of archived objects, or drop {flags}",
        )
    if poll_interval is not None and not wait:
        raise ConfigError(
            "--poll-interval sets how --wait polls, and --wait was not given: nothing would use it",
            hint="add --wait to wait for archived objects to become readable, or drop "
            "--poll-interval",
        )
    defaults = GlacierOptions()
    tier = defaults.tier if tier is None else tier
    chosen = {t.lower(): t for t in TIERS}.get(tier.lower())
    if chosen is None:
        raise ConfigError(
            f"--tier {tier!r} is not a retrieval tier", hint="Standard, Bulk or Expedited"
        )
    days = defaults.days if days is None else days
    if days < 1:
        raise ConfigError("--days must be at least 1")
    poll_interval = defaults.poll_interval if poll_interval is None else poll_interval
    if poll_interval <= 0:
        raise ConfigError("--poll-interval must be more than 0 seconds")
    return GlacierOptions(
        request=request, days=days, tier=chosen, wait=wait, poll_interval=poll_interval
    )


def _arguments(paths: list[str], run: str | None) -> tuple[str | None, str]:
    if run is not None and len(paths) == 1:
        return None, paths[0]
    if len(paths) != 2 or not paths[0].startswith("s3://"):
        raise ConfigError(
            "restore takes the source s3://BUCKET[/PREFIX] and a local folder",
            hint="s3stow restore s3://bucket/prefix ./dest, or s3stow restore --run RUN_ID ./dest",
        )
    return paths[0], paths[1]


def observers_for(
    options: GlobalOptions, settings: Settings, *, command: str = "restore"
) -> list[Observer]:
    """Progress, JSON events, heartbeat and failures file, worded for a restore;
    ``command`` names it in the status file (``restore``, ``archive restore``)."""
    from s3stow.cli.runsupport import StartupOver
    from s3stow.report.console import FailureLines, FailuresFile, JsonEvents

    # as in upload's: progress and the heartbeat only where they are used
    observers: list[Observer] = [StartupOver()]
    plan = settings.dry_run
    if options.json:
        observers.append(JsonEvents(sys.stdout, plan=plan, receiving=True))
    elif options.quiet:  # -q: failures only, each when it happens; no summary
        observers.append(FailureLines(sys.stderr))
    else:
        from s3stow.report.progress import LiveProgress, PlainProgress

        if sys.stderr.isatty():
            from rich.console import Console  # rich only where it draws (not with -q)

            observers.append(LiveProgress(Console(file=sys.stderr), plan=plan, receiving=True))
        else:
            interval = settings.progress_interval
            observers.append(
                PlainProgress(sys.stderr, interval=interval, plan=plan, receiving=True)
            )
    if settings.status_json is not None:
        from s3stow.report.status import StatusHeartbeat
        from s3stow.restore.glacier import PENDING

        heartbeat = StatusHeartbeat(
            settings.status_json,
            interval=settings.status_interval,
            group_key="folders",
            busy_phase="restoring",
            command=command,  # a restore's counters: "restore" is in each name
            pending_class=PENDING,  # waiting for Glacier: "pending", as in the summary
            log_final_failure=False,  # said last instead, exit 3
        )
        check_at_exit(lambda: heartbeat.final_error)
        observers.append(heartbeat)
    if settings.failures_file is not None:
        observers.append(FailuresFile(settings.failures_file, extra={"command": "restore"}))
    return observers


def finish(options: GlobalOptions, summary: RestoreSummary, restorer: Restorer) -> None:
    """Print the human summary (unless --json) and end with the documented exit code."""
    from s3stow.cli.runsupport import exit_for, resume_command
    from s3stow.logs import flush_warnings
    from s3stow.restore.report import print_restore_summary

    flush_warnings()
    if not options.json and not options.quiet:
        console = output_console()
        hint = resume_command() if summary.interrupted else None
        every = options.verbose > 0 or not console.is_terminal
        recorded = None if restorer.settings.dry_run else summary.run_id
        print_restore_summary(summary, console, resume_hint=hint, list_all=every, run_id=recorded)
    exit_for(summary, restorer)


def register(app: typer.Typer) -> None:
    app.command(
        context_settings={"allow_interspersed_args": True},
        epilog=examples(
            (
                "Bring a prefix back into a folder (each file verified before it takes its "
                "name; run it again to resume):",
                "s3stow restore s3://my-bucket/photos ./photos-back",
            ),
            (
                "What one upload run stored, from the ledger:",
                "s3stow restore --run 20250729T101500Z-a1b2c3 ./photos-back",
            ),
            (
                "Objects in Glacier: ask for copies, wait, then fetch them:",
                "s3stow restore s3://my-bucket/2019 ./2019 --request-restore --wait",
            ),
        ),
    )(restore)


__all__ = ["register"]
