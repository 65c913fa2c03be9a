"""``s3stow watch DIR s3://BUCKET/PREFIX``: upload rotated files as they appear."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from s3stow.cli.app import GlobalOptions, MetricsHostOpt, MetricsPortOpt
from s3stow.cli.helptext import examples
from s3stow.cli.keyoptions import KeyOptions, pattern_options
from s3stow.cli.runoptions import LedgerOpt, StatusIntervalOpt
from s3stow.errors import ConfigError, ExitCode
from s3stow.plan.keys import parse_target
from s3stow.units import plural

if TYPE_CHECKING:
    from s3stow.report.observer import Observer

Opt = typer.Option


@pattern_options
def watch(
    ctx: typer.Context,
    folder: Annotated[
        str, typer.Argument(help="The directory to watch (and its subdirectories).", metavar="DIR")
    ],
    destination: Annotated[
        str, typer.Argument(help="Where the files go.", metavar="s3://BUCKET[/PREFIX]")
    ],
    settle: Annotated[
        float,
        Opt(
            help="Seconds a file's size and mtime must stay unchanged before it is uploaded.",
            metavar="SECONDS",
        ),
    ] = 5.0,
    max_wait: Annotated[
        float,
        Opt(help="Report a file still changing after this many seconds.", metavar="SECONDS"),
    ] = 3600.0,
    rescan: Annotated[
        float,
        Opt(
            help="Seconds between rescans (the safety net for lost notifications).",
            metavar="SECONDS",
        ),
    ] = 30.0,
    after_upload: Annotated[
        str,
        Opt(
            help="What to do with a file once its object is verified.",
            metavar="keep|delete|move:DIR",
        ),
    ] = "keep",
    once: Annotated[bool, Opt("--once", help="Upload the current backlog and exit.")] = False,
    ledger: LedgerOpt = None,
    status_json: Annotated[
        Path | None,
        Opt(
            help="Keep a JSON status file here: backlog, oldest waiting file, totals.",
            metavar="FILE",
        ),
    ] = None,
    status_interval: StatusIntervalOpt = None,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = None,
    *,
    keys: KeyOptions,
    pattern: Annotated[
        list[str] | None,
        Opt("--pattern", help="The old name of --include.", metavar="PATTERN"),
    ] = None,
    ignore: Annotated[
        list[str] | None,
        Opt("--ignore", help="The old name of --exclude.", metavar="PATTERN"),
    ] = None,
) -> None:
    """Watch DIR and upload each file once it is complete (settled), forever or --once.

    --include and --exclude select files as in upload (gitignore patterns on the path
    relative to DIR). Temporary and hidden names (*.tmp, *.part, .*) are always excluded
    first; an exclude pattern starting with ! takes one back (--exclude '!.env').
    """
    from s3stow.cli.runsupport import default_ledger, install_signal_handlers
    from s3stow.ledger import open_ledger
    from s3stow.ledger.lock import run_lock
    from s3stow.localfiles import given_path
    from s3stow.report.console import FailureLines, JsonEvents
    from s3stow.report.metrics import metrics_for, serving
    from s3stow.report.status import check_writable
    from s3stow.tools.watch import Watcher
    from s3stow.transfer.engine import Uploader

    options: GlobalOptions = ctx.obj
    directory = given_path(folder, what="the folder to watch", fix="name the folder to watch")
    if not directory.is_dir():
        raise ConfigError(f"{directory} is not a directory", hint="watch takes a directory")
    if after_upload not in ("keep", "delete") and not after_upload.startswith("move:"):
        raise ConfigError(f"--after-upload {after_upload!r} is not keep, delete or move:DIR")
    if after_upload.startswith("move:"):  # move: alone would move into the current folder
        given_path(after_upload[5:], what="the folder of --after-upload move:", fix="name it")
    if settle < 0 or max_wait <= 0 or rescan <= 0:
        raise ConfigError("--settle, --max-wait and --rescan must be positive")
    if status_json is not None:  # a folder, a path below a file: now, not "unexpected"
        check_writable(status_json)
    target = parse_target(destination)
    flags = keys.flags()
    flags["include"] = [*(flags["include"] or []), *(pattern or [])] or None
    flags["exclude"] = [*(flags["exclude"] or []), *(ignore or [])] or None
    settings = options.settings(
        ledger=ledger,
        status_interval=status_interval,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
        **flags,
    )
    db = open_ledger(settings.ledger or default_ledger())
    observers: list[Observer] = [JsonEvents(sys.stdout)] if options.json else []
    if not options.json:  # each failure when it happens (-q: nothing else)
        observers.append(FailureLines(sys.stderr))
    metrics = metrics_for(settings, command="watch")
    uploader = Uploader(settings, ledger=db, observers=observers, request_observer=metrics)
    console = Console(stderr=True, highlight=False)
    show = not options.quiet and not options.json
    watcher = Watcher(
        uploader,
        directory,
        target,
        settle=settle,
        max_wait=max_wait,
        rescan=rescan,
        after_upload=after_upload,
        status_json=status_json,
        on_progress=(lambda line: console.print(f"watch: {line}", markup=False)) if show else None,
    )
    restore = install_signal_handlers(uploader)
    if show:  # the id stats, restore and retry --run take (each batch is <id>.<n>)
        console.print(
            f"watching {directory} -> {target.url} as run {watcher.run_id} (Ctrl+C to stop)",
            markup=False,
        )
    elif options.json:
        print(
            json.dumps({"event": "watch_start", "run_id": watcher.run_id, "target": target.url}),
            flush=True,
        )
    try:
        with (
            run_lock(db, target),
            serving(metrics, uploader, settings, announce=show, backlog=watcher.backlog),
        ):
            stats = watcher.run(once=once)
    finally:
        restore()
        db.close()
    if uploader.fatal_error is not None:
        raise uploader.fatal_error
    waiting, _ = watcher.backlog()  # stopped before they settled: the next start takes them
    if options.json:
        print(
            json.dumps(
                {
                    "event": "watch_summary",
                    "run_id": watcher.run_id,
                    "uploaded": stats.uploaded,
                    "already_done": stats.skipped,
                    "failed": stats.failed,
                    "still_changing": stats.too_busy,
                    "backlog": waiting,
                }
            )
        )
    elif not options.quiet or stats.too_busy:  # -q: what is still changing is a failure
        Console(highlight=False).print(
            f"watch: {stats.uploaded} uploaded, {plural(stats.failed, 'failed attempt')}"
            + (f", {stats.skipped} already done" if stats.skipped else "")
            + (f", {len(stats.too_busy)} still changing" if stats.too_busy else "")
            + (
                f"; {plural(waiting, 'file')} still waiting (the next start uploads them)"
                if waiting and not once
                else ""
            ),
            soft_wrap=True,  # one line in a log
        )
    if once and (stats.failed or stats.too_busy):
        raise typer.Exit(int(ExitCode.SOME_FAILED))


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            (
                "Upload each XML file of a spool directory once it is complete, into date "
                "folders from its name's timestamp:",
                "s3stow watch /var/spool/xml s3://bucket/xml-events --include '*.xml' "
                "--layout date-folders",
            ),
            (
                "Move each file away once its object is verified:",
                "s3stow watch ./out s3://bucket/runs --after-upload move:./sent",
            ),
            (
                "From cron: upload the backlog and exit",
                "s3stow watch ./out s3://bucket/runs --once",
            ),
        )
    )(watch)
