"""``s3stow retry``: re-attempt what failed, from the ledger or from a log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from s3stow.cli.app import GlobalOptions, output_console
from s3stow.cli.collector import release_collector
from s3stow.cli.failed import forget_failures, gone_line, list_failures
from s3stow.cli.helptext import examples
from s3stow.cli.keyoptions import KeyOptions, key_options
from s3stow.cli.runoptions import LedgerOpt, StatusJsonOpt
from s3stow.errors import ConfigError, ExitCode
from s3stow.models import RunSummary, Target
from s3stow.units import plural

if TYPE_CHECKING:
    from s3stow.ledger import Ledger, LedgerEntry
    from s3stow.plan.retries import RetryBatch


Opt = typer.Option


@key_options
def retry(
    ctx: typer.Context,
    ledger: LedgerOpt = None,
    run: Annotated[
        str | None,
        Opt(
            "--run",
            help="Only items last tried by this run (a watch's: by its batches).",
            metavar="RUN_ID",
        ),
    ] = None,
    from_text: Annotated[
        str | None,
        Opt(
            "--from",
            help="Retry what this file names: a --failures-file, or an aws s3 sync/cp log.",
            metavar="FILE",
        ),
    ] = None,
    base_text: Annotated[
        str | None,
        Opt(
            "--base-dir",
            help="Resolve the relative local paths of --from against this.",
            metavar="DIR",
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        Opt(help="With --from: plan the keys again under this prefix.", metavar="PREFIX"),
    ] = None,
    bucket: Annotated[
        str | None,
        Opt(help="Send to this bucket instead of the logged one.", metavar="BUCKET"),
    ] = None,
    dry_run: Annotated[
        bool, Opt("--dry-run", help="List what would be retried; send no write.")
    ] = False,
    list_only: Annotated[
        bool, Opt("--list", help="Show what is still failed, by error class; retry nothing.")
    ] = False,
    forget: Annotated[
        bool,
        Opt(
            "--forget",
            help="Drop the failed items selected (--run, --error-class) from the ledger; "
            "send nothing. With --dry-run: list them, drop nothing.",
        ),
    ] = False,
    error_classes: Annotated[
        list[str] | None,
        Opt(
            "--error-class",
            help="Only items last failed with this error class (as --list shows it: "
            "SourceGone, SlowDown); repeatable.",
            metavar="CLASS",
        ),
    ] = None,
    max_attempts: Annotated[
        int | None,
        Opt(help="Attempts per request (botocore's retries).", metavar="N", show_default="5"),
    ] = None,
    retry_base_delay: Annotated[
        float | None,
        Opt(
            help="First wait before a file is tried again; it doubles each time.",
            metavar="SECONDS",
            show_default="1",
        ),
    ] = None,
    file_retries: Annotated[
        int | None,
        Opt(
            help="Times a file is tried again after its requests failed.",
            metavar="N",
            show_default="2",
        ),
    ] = None,
    failures_file: Annotated[
        Path | None, Opt(help="Write what still fails here (JSON lines).", metavar="FILE")
    ] = None,
    status_json: StatusJsonOpt = None,
    *,
    keys: KeyOptions,
) -> None:
    """Retry failed uploads: from the ledger, or from a failures file or aws s3 log.

    With --from, each logged key is planned again as upload plans a relative path:
    --strip-prefix, --prefix, --layout, --key-template and the other key options
    repair keys a failed run got wrong.
    """
    from s3stow.cli.runsupport import default_ledger, existing_ledger
    from s3stow.ledger import open_ledger
    from s3stow.localfiles import given_path
    from s3stow.plan.failures import read_failures
    from s3stow.plan.retries import from_failures, from_ledger, retry_prefix

    options: GlobalOptions = ctx.obj
    overrides: dict[str, Any] = {
        "max_attempts": max_attempts,
        "retry_base_delay": retry_base_delay,
        "file_retries": file_retries,
        "dry_run": dry_run or None,
        "failures_file": failures_file,
        "status_json": status_json,
        **{
            k: v
            for k, v in (
                ("endpoint_url", options.endpoint_url),
                ("profile", options.profile),
                ("region", options.region),
                ("path_style", options.path_style),
                ("ca_bundle", options.ca_bundle),
                ("verify_ssl", options.verify_ssl),
                ("expected_bucket_owner", options.expected_bucket_owner),
            )
            if v is not None
        },
    }
    # text, then paths: an empty value (an unset variable) is refused, not taken as "."
    from_file = (
        None
        if from_text is None
        else given_path(
            from_text, what="the file of --from", fix="name the failures file or log to retry"
        )
    )
    base_dir = (
        None
        if base_text is None
        else given_path(
            base_text, what="the folder of --base-dir", fix="name the folder the paths are under"
        )
    )
    if prefix is not None:
        retry_prefix(prefix)  # a usage error before the log is read
    if from_file is not None and (forget or list_only or error_classes):
        given = "--forget" if forget else "--list" if list_only else "--error-class"
        raise ConfigError(
            f"{given} takes the ledger's failed items; --from names a log's",
            hint=f"drop --from to use {given}",
        )
    if forget and list_only:
        raise ConfigError(
            "--forget and --list are two commands", hint="give one: --list shows, --forget drops"
        )
    planning = [*keys.given(), *(["--prefix"] if prefix is not None else [])]
    if planning and from_file is None:
        raise ConfigError(
            f"{', '.join(planning)} plan the keys of what --from names; the ledger's "
            "items keep the keys their runs planned",
            hint="pass --from FILE, or run the upload again with the new options",
        )
    if keys.values["layout"] == "project":
        raise ConfigError(
            "retry cannot plan project layout keys: they come from a project directory",
            hint="run s3stow upload PROJECT_DIR ... --layout project again",
        )
    # held through botocore's import and the client's creation (released by the run's
    # StartupOver or the client; every item is decided before any request, as --force)
    base = options.settings(keep_held=True, ledger=ledger, **overrides, **keys.flags())
    # --from may start a ledger; what the ledger alone lists must come from one that exists
    target = (
        base.ledger or default_ledger() if from_file is not None else existing_ledger(base.ledger)
    )
    ledger_db = open_ledger(target)
    console = output_console()
    try:
        runs = _runs_of(ledger_db, run) if run is not None and from_file is None else None
        if list_only or forget:
            release_collector()  # no transfer follows
        if list_only:
            list_failures(
                ledger_db, runs=runs, classes=error_classes, options=options, console=console
            )
            return
        if forget:
            forget_failures(
                ledger_db,
                runs=runs,
                classes=error_classes,
                dry_run=bool(base.dry_run),
                options=options,
                console=console,
            )
            return
        left_out: list[LedgerEntry] = []
        if from_file is not None:
            source = read_failures(from_file)
            if not source.items and not source.ignored and _unknown(source.unparseable):
                raise _not_a_failures_file(from_file, source.unparseable)
            _report_parse(
                source.unparseable, len(source.items), console, options, restores=source.restores
            )
            batches = from_failures(
                source.items,
                settings=base,
                base_dir=base_dir,
                new_prefix=prefix,
                bucket=bucket,
            )
        else:
            batches = from_ledger(
                ledger_db,
                run_ids=runs,
                overrides=overrides,
                base=base,
                error_classes=error_classes,
                left_out=left_out,
            )
        if left_out and not options.json and not options.quiet:
            console.print(gone_line(len(left_out)), markup=False)
        if not batches:
            if not options.json:
                console.print("nothing to retry")
            return
        summary = _run_batches(batches, ledger_db, options)
    finally:
        ledger_db.close()
    _finish(summary, options, console, dry_run=bool(base.dry_run))


def _run_batches(batches: list[RetryBatch], ledger: Ledger, options: GlobalOptions) -> RunSummary:
    from s3stow.cli.runsupport import install_signal_handlers, observers_for
    from s3stow.transfer.engine import Uploader

    total = RunSummary("retry")
    # one set for every batch: the status file and the failures file cover the whole
    # retry (made afresh per batch, each batch's replaced the one before)
    observers = observers_for(options, batches[0].settings, command="retry")
    for batch in batches:
        uploader = Uploader(batch.settings, ledger=ledger, observers=observers)
        restore = install_signal_handlers(uploader)
        try:
            summary = uploader.upload_planned(
                [*batch.refused, *batch.items], Target(batch.bucket, "")
            )
        finally:
            restore()
        _merge(total, summary)
        if uploader.fatal_error is not None:
            raise uploader.fatal_error
        if summary.interrupted:
            break
    return total


def _merge(total: RunSummary, part: RunSummary) -> None:
    total.run_id = part.run_id if total.run_id == "retry" else f"{total.run_id},{part.run_id}"
    for name in (
        "files",
        "uploaded",
        "skipped",
        "failed",
        "changed",
        "bytes_uploaded",
        "bytes_total",
        "elapsed",
    ):
        setattr(total, name, getattr(total, name) + getattr(part, name))
    total.interrupted = total.interrupted or part.interrupted
    total.failures.extend(part.failures)
    total.would_upload.extend(part.would_upload)


def _finish(
    summary: RunSummary, options: GlobalOptions, console: Console, *, dry_run: bool
) -> None:
    from s3stow.report.console import print_summary, summary_dict

    retried = summary.files
    if options.json:
        print(json.dumps(summary_dict(summary) | {"event": "retry_summary"}))
    elif not options.quiet:  # -q: the failures were printed as they happened
        every = options.verbose > 0 or not console.is_terminal
        print_summary(
            summary,
            console,
            resume_hint="s3stow retry (same options)",
            list_all=every,
            run_id=None if dry_run else summary.run_id,  # a batch per run retried: each id
        )
        if retried and not summary.would_upload:
            done = summary.uploaded + summary.skipped
            console.print(
                f"retry: {plural(retried, 'item')} retried, {done} now done, "
                f"{summary.failed + summary.changed} still failed "
                f"({100 * done / retried:.0f}% recovered)"
            )
    if summary.interrupted:
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    if not summary.ok:
        raise typer.Exit(int(ExitCode.SOME_FAILED))


def _report_parse(
    unparseable: list[tuple[int, str]],
    parsed: int,
    console: Console,
    options: GlobalOptions,
    *,
    restores: int = 0,
) -> None:
    if options.json:
        print(
            json.dumps(
                {
                    "event": "parsed",
                    "items": parsed,
                    "restores": restores,
                    "unparseable": len(unparseable),
                    "first_unparseable": unparseable[:5],
                }
            )
        )
        return
    console.print(f"read {plural(parsed, 'failed upload')} from the log")
    if restores:
        console.print(
            f"{plural(restores, 'failed restore')} left out: `retry` sends uploads only; run the "
            "same `s3stow restore` command again to retry them (each line's error says "
            "when that cannot help: a key that is no file name, a local file kept, an "
            "object replaced since its upload run)",
            markup=False,
        )
    if unparseable:
        from s3stow.report.console import for_terminal

        unread = plural(len(unparseable), "line")
        console.print(f"[yellow]{unread} could not be parsed[/]; first ones:")
        for number, line in unparseable[:5]:  # escaped: a line of a binary file is no text
            console.print(f"  line {number}: {for_terminal(line[:200])}", markup=False)


def _unknown(unparseable: list[tuple[int, str]]) -> bool:
    """Lines, none of which an aws s3 log holds (its ``fatal error:`` line is one, shown
    as unparseable: the command stopped before any upload)."""
    return bool(unparseable) and not any(
        line.startswith("fatal error: ") for _, line in unparseable
    )


def _not_a_failures_file(path: Path, unparseable: list[tuple[int, str]]) -> ConfigError:
    """``--from`` a file of which no line is a failure nor a line an aws s3 log holds (the
    wrong file, a binary one): a usage error, not "nothing to retry" (exit 0)."""
    from s3stow.report.console import for_terminal

    number, line = unparseable[0]
    return ConfigError(
        f"{path} is neither an s3stow failures file nor an aws s3 error log: none of its "
        f"{plural(len(unparseable), 'line')} could be read (line {number}: "
        f"{for_terminal(line[:80])})",
        hint="pass the file written by --failures-file or the error output of aws s3 sync/cp",
    )


def _runs_of(ledger: Ledger, run: str) -> list[str]:
    """The runs ``--run`` names: the run, or a watch's batches ``<run>.<n>``; an id the
    ledger does not know is said (exit 2), as ``restore --run`` and ``stats --run`` say it."""
    if ledger.run_info(run) is not None:
        return [run]
    batches = [str(batch["run_id"]) for batch in ledger.batches(run)]
    if not batches:
        raise ConfigError(
            f"no run {run!r} in the ledger", hint="`s3stow stats --by run` lists them"
        )
    return batches


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            ("What is still failed, by error class (nothing is sent):", "s3stow retry --list"),
            ("Retry every failed file the ledger knows:", "s3stow retry"),
            (
                "Drop from the ledger the failures whose local file is gone (first, see what):",
                "s3stow retry --forget --error-class SourceGone --dry-run",
            ),
            (
                "Retry what an aws s3 sync log says failed, under a corrected prefix:",
                "s3stow retry --from sync-errors.log --base-dir /data --prefix archive/2024/",
            ),
        )
    )(retry)
