"""``s3stow upload SRC... s3://BUCKET[/PREFIX]``: the upload command."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
from contextlib import nullcontext
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from platformdirs import user_state_dir
from rich.console import Console

from s3stow.cli.app import GlobalOptions, MetricsHostOpt, MetricsPortOpt, output_console
from s3stow.cli.keyoptions import KeyOptions, selection_options
from s3stow.errors import ConfigError, ExitCode, S3StowError
from s3stow.keys import parse_target
from s3stow.models import RunSummary

if TYPE_CHECKING:
    from s3stow.config import Settings
    from s3stow.report.observer import Observer
    from s3stow.transfer.engine import Uploader


Opt = typer.Option


class Engine(Protocol):
    """What the signal handlers and the exit code need of an ``Uploader`` or ``Restorer``."""

    def request_stop(self) -> None: ...

    @property
    def fatal_error(self) -> S3StowError | None: ...


@selection_options
def upload(
    ctx: typer.Context,
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Source files or directories, then the destination s3://BUCKET[/PREFIX].",
            metavar="SRC... s3://BUCKET[/PREFIX]",
        ),
    ],
    ledger: Annotated[
        str | None,
        Opt(help="Ledger: SQLite path or postgresql:// URL [default: user state dir]/ledger.db."),
    ] = None,
    concurrency: Annotated[str | None, Opt(help="Parallel requests: N or cpu*K [16].")] = None,
    part_size: Annotated[
        str | None, Opt(help="Multipart part size, e.g. 64MiB [adaptive].")
    ] = None,
    multipart_threshold: Annotated[
        str | None, Opt(help="Files above this go multipart [16MiB].")
    ] = None,
    checksum: Annotated[
        str | None, Opt(help="crc64nvme|crc32c|crc32|sha256|none [crc64nvme].")
    ] = None,
    checksum_compat: Annotated[
        bool | None,
        Opt(
            "--checksum-compat",
            help="For S3-compatible "
            "servers that reject the new checksum headers: "
            "Content-MD5 instead.",
        ),
    ] = None,
    sha256_metadata: Annotated[
        bool | None,
        Opt(
            "--sha256-metadata",
            help="Store the file's SHA-256 as metadata (extra read for multipart).",
        ),
    ] = None,
    content_type: Annotated[
        str | None, Opt(help="Content-Type [guessed from the extension].")
    ] = None,
    metadata: Annotated[
        list[str] | None, Opt("--metadata", help="Extra metadata k=v (repeatable).")
    ] = None,
    sse: Annotated[str | None, Opt(help="Server-side encryption: AES256 or aws:kms.")] = None,
    sse_kms_key_id: Annotated[str | None, Opt(help="KMS key id for aws:kms.")] = None,
    storage_class: Annotated[str | None, Opt(help="Storage class, e.g. STANDARD_IA.")] = None,
    no_clobber: Annotated[
        bool | None, Opt("--no-clobber", help="Never overwrite an existing object.")
    ] = None,
    force: Annotated[bool | None, Opt("--force", help="Upload even what is already done.")] = None,
    dry_run: Annotated[
        bool | None, Opt("--dry-run", help="Show what would be uploaded; send no write request.")
    ] = None,
    limit: Annotated[int | None, Opt(help="Upload at most N files.")] = None,
    status_json: Annotated[Path | None, Opt(help="Keep a JSON status heartbeat here.")] = None,
    status_interval: Annotated[float | None, Opt(help="Seconds between heartbeats [5].")] = None,
    failures_file: Annotated[Path | None, Opt(help="Write failed items here (JSON lines).")] = None,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = None,
    *,
    keys: KeyOptions,
) -> None:
    """Upload files and directory trees to S3, verified and resumable."""
    from s3stow.config import parse_metadata
    from s3stow.ledger import open_ledger
    from s3stow.ledger.lock import run_lock
    from s3stow.report.metrics import metrics_for, serving
    from s3stow.transfer.engine import Uploader

    options: GlobalOptions = ctx.obj
    if len(paths) < 2:
        raise ConfigError(
            "upload needs at least one source and a destination",
            hint="s3stow upload ./dir s3://bucket/prefix",
        )
    *sources, destination = paths
    target = parse_target(destination)
    flags: dict[str, Any] = {
        "ledger": ledger,
        "concurrency": concurrency,
        "part_size": part_size,
        "multipart_threshold": multipart_threshold,
        "checksum": checksum,
        "checksum_compat": checksum_compat,
        "sha256_metadata": sha256_metadata,
        "content_type": content_type,
        "sse": sse,
        "sse_kms_key_id": sse_kms_key_id,
        "storage_class": storage_class,
        "no_clobber": no_clobber,
        "force": force,
        "dry_run": dry_run,
        "limit": limit,
        "status_json": status_json,
        "status_interval": status_interval,
        "failures_file": failures_file,
        "metrics_port": metrics_port,
        "metrics_host": metrics_host,
        **keys.flags(),
    }
    if metadata:
        try:
            flags["metadata"] = parse_metadata(metadata)
        except ValueError as exc:
            raise ConfigError(str(exc), hint="write --metadata key=value") from None
    settings = options.settings(**flags)
    if settings.sse_kms_key_id and settings.sse != "aws:kms":
        raise ConfigError("--sse-kms-key-id needs --sse aws:kms")
    ledger_db = open_ledger(settings.ledger or default_ledger())
    try:  # the lock first: a run turned away must not touch the running one's files
        with nullcontext() if settings.dry_run else run_lock(ledger_db, target):
            observers = observers_for(options, settings)
            metrics = metrics_for(settings, command="upload")
            uploader = Uploader(
                settings, ledger=ledger_db, observers=observers, request_observer=metrics
            )
            restore = install_signal_handlers(uploader)
            try:
                with serving(metrics, uploader, settings, announce=not options.quiet):
                    summary = uploader.upload_tree(sources, target)
            finally:
                restore()
    finally:
        ledger_db.close()
    _finish(options, summary, uploader)


def default_ledger() -> str:
    """The default ledger: ``ledger.db`` in the user's state directory."""
    return str(Path(user_state_dir("s3stow")) / "ledger.db")


def observers_for(options: GlobalOptions, settings: Settings) -> list[Observer]:
    from s3stow.report.console import (
        FailureLines,
        FailuresFile,
        JsonEvents,
        PlainProgress,
        RichProgress,
    )
    from s3stow.report.status import StatusHeartbeat

    observers: list[Observer] = []
    if options.json:
        observers.append(JsonEvents(sys.stdout, plan=settings.dry_run))
    elif options.quiet:  # -q: failures only, each when it happens; no summary
        observers.append(FailureLines(sys.stderr))
    else:
        if sys.stderr.isatty():
            observers.append(RichProgress(Console(file=sys.stderr)))
        else:
            observers.append(PlainProgress(sys.stderr, interval=settings.progress_interval))
    if settings.status_json is not None:
        grouped_by_type = settings.layout == "project" or bool(settings.include_types)
        observers.append(
            StatusHeartbeat(
                settings.status_json,
                interval=settings.status_interval,
                group_key="folder_types" if grouped_by_type else "folders",
            )
        )
    if settings.failures_file is not None:
        observers.append(FailuresFile(settings.failures_file))
    return observers


def install_signal_handlers(uploader: Engine) -> Any:
    """First SIGINT/SIGTERM: stop starting work; second: exit at once (130)."""
    seen = {"count": 0}

    def stop() -> None:
        print(
            "\nstopping: finishing in-flight requests (Ctrl+C again to quit at once)",
            file=sys.stderr,
            flush=True,
        )
        uploader.request_stop()

    def handler(signum: int, frame: FrameType | None) -> None:
        seen["count"] += 1
        if seen["count"] > 1:
            os._exit(int(ExitCode.INTERRUPTED))
        # Not here: the handler runs on the main thread between two bytecodes, possibly
        # inside ``Event.wait`` holding the event's lock (``set`` would then deadlock) or
        # inside a write to stderr (a reentrant write raises). A thread does both safely.
        threading.Thread(target=stop, name="stop", daemon=True).start()

    names = ["SIGINT", "SIGTERM", "SIGBREAK"]  # SIGBREAK: Ctrl+Break on Windows
    previous = {}
    for name in names:
        number = getattr(signal, name, None)
        if number is not None:
            try:
                previous[number] = signal.signal(number, handler)
            except (ValueError, OSError):  # not the main thread, or unsupported
                continue

    def restore() -> None:
        for number, old in previous.items():
            signal.signal(number, old)

    return restore


def _finish(options: GlobalOptions, summary: RunSummary, uploader: Uploader) -> None:
    from s3stow.report.console import print_summary

    if not options.json and not options.quiet:
        console = output_console()
        hint = "s3stow " + shlex.join(sys.argv[1:]) if summary.interrupted else None
        print_summary(summary, console, resume_hint=hint)
    exit_for(summary, uploader)


def exit_for(summary: RunSummary, uploader: Engine) -> None:
    """End a command that ran the engine with the documented exit code."""
    if uploader.fatal_error is not None:
        raise uploader.fatal_error
    if summary.interrupted:
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    if not summary.ok:
        raise typer.Exit(int(ExitCode.SOME_FAILED))


def register(app: typer.Typer) -> None:
    app.command(context_settings={"allow_interspersed_args": True})(upload)


__all__ = ["register"]
