"""``s3stow upload SRC... s3://BUCKET[/PREFIX]``: the upload command."""

from __future__ import annotations

import contextlib
import logging
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

from s3stow.cli.app import (
    GlobalOptions,
    MetricsHostOpt,
    MetricsPortOpt,
    check_at_exit,
    output_console,
)
from s3stow.cli.collector import release_collector
from s3stow.cli.helptext import examples
from s3stow.cli.keyoptions import KeyOptions, selection_options
from s3stow.cli.runoptions import (
    ConcurrencyOpt,
    LedgerOpt,
    MaxConcurrencyOpt,
    StatusIntervalOpt,
    StatusJsonOpt,
)
from s3stow.errors import ConfigError, ExitCode, S3StowError
from s3stow.models import Decision, RunSummary, SourceFile, UploadResult
from s3stow.plan.keys import parse_target
from s3stow.report.observer import Observer

if TYPE_CHECKING:
    from s3stow.config import Settings
    from s3stow.ledger import Ledger
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
            help="Files or directories to upload, then the destination bucket and prefix.",
            metavar="SRC... s3://BUCKET[/PREFIX]",
        ),
    ],
    ledger: LedgerOpt = None,
    concurrency: ConcurrencyOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    part_size: Annotated[
        str | None,
        Opt(
            help="Multipart part size, e.g. 64MiB (5MiB to 5GiB).",
            metavar="SIZE",
            show_default="8MiB below 512MiB, 64MiB to 8GiB, 128MiB above",
        ),
    ] = None,
    multipart_threshold: Annotated[
        str | None,
        Opt(help="Files larger than this are sent in parts.", metavar="SIZE", show_default="16MiB"),
    ] = None,
    checksum: Annotated[
        str | None,
        Opt(
            help="The checksum S3 verifies on every request.",
            metavar="crc64nvme|crc32c|crc32|sha256|none",
            show_default="crc64nvme",
        ),
    ] = None,
    checksum_compat: Annotated[
        bool | None,
        Opt(
            "--checksum-compat",
            help="Send Content-MD5 instead of the newer checksum headers (for S3-compatible "
            "servers that reject them).",
        ),
    ] = None,
    etag_check: Annotated[
        str | None,
        Opt(
            help="Compare ETags with local MD5s: auto (on a configured endpoint whose server "
            "stores a wrong checksum instead of refusing it; probed once per endpoint and "
            "bucket), on or off (both skip the probe).",
            metavar="auto|on|off",
            show_default="auto",
        ),
    ] = None,
    sha256_metadata: Annotated[
        bool | None,
        Opt(
            "--sha256-metadata",
            help="Store each file's SHA-256 as metadata (multipart files are read twice).",
        ),
    ] = None,
    content_type: Annotated[
        str | None,
        Opt(help="Content-Type of every object.", metavar="TYPE", show_default="by extension"),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        Opt("--metadata", help="Extra object metadata, e.g. project=apollo.", metavar="KEY=VALUE"),
    ] = None,
    sse: Annotated[
        str | None, Opt(help="Server-side encryption.", metavar="AES256|aws:kms")
    ] = None,
    sse_kms_key_id: Annotated[
        str | None, Opt(help="KMS key for --sse aws:kms.", metavar="KEY_ID")
    ] = None,
    storage_class: Annotated[
        str | None,
        Opt(help="Storage class, e.g. STANDARD_IA or GLACIER_IR.", metavar="CLASS"),
    ] = None,
    no_clobber: Annotated[
        bool | None, Opt("--no-clobber", help="Never overwrite an object that exists.")
    ] = None,
    force: Annotated[
        bool | None, Opt("--force", help="Upload even what the ledger or S3 says is done.")
    ] = None,
    dry_run: Annotated[
        bool | None,
        Opt(
            "--dry-run",
            help="List what would be uploaded, and why; send no write request.",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        Opt(help="Start at most N uploads; the rest are reported as not started.", metavar="N"),
    ] = None,
    status_json: StatusJsonOpt = None,
    status_interval: StatusIntervalOpt = None,
    failures_file: Annotated[
        Path | None,
        Opt(
            help="Write each failed file as a JSON line (for `s3stow retry --from`).",
            metavar="FILE",
        ),
    ] = None,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = None,
    *,
    keys: KeyOptions,
) -> None:
    """Upload files and directory trees to S3, verified and resumable."""
    from s3stow.config import parse_metadata
    from s3stow.ledger.lock import run_lock
    from s3stow.report.metrics import metrics_for, serving
    from s3stow.transfer.engine import Uploader

    options: GlobalOptions = ctx.obj
    if len(paths) < 2:
        raise ConfigError(
            "upload needs at least one source and a destination",
            hint="s3stow upload ./dir s3://bucket/prefix",
        )
    *given, destination = paths
    sources = source_paths(given, command="upload")
    target = parse_target(destination)
    flags: dict[str, Any] = {
        "ledger": ledger,
        "concurrency": concurrency,
        "max_concurrency": max_concurrency,
        "part_size": part_size,
        "multipart_threshold": multipart_threshold,
        "checksum": checksum,
        "checksum_compat": checksum_compat,
        "etag_check": etag_check,
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
    settings = options.settings(keep_held=True, **flags)  # released by StartupOver
    if settings.sse_kms_key_id and settings.sse != "aws:kms":
        raise ConfigError("--sse-kms-key-id needs --sse aws:kms")
    if not options.quiet and not options.json:
        warn_if_the_prefix_names_the_file(sources, target.bucket, target.prefix, settings)
    ledger_db = ledger_for(settings)
    try:  # the lock first: a run turned away must not touch the running one's files
        with nullcontext() if ledger_db is None else run_lock(ledger_db, target):
            observers = observers_for(options, settings)
            metrics = metrics_for(settings, command="upload")
            uploader = Uploader(
                settings, ledger=ledger_db, observers=observers, request_observer=metrics
            )
            restore = install_signal_handlers(uploader, resume=resume_command())
            try:
                with serving(metrics, uploader, settings, announce=not options.quiet):
                    summary = uploader.upload_tree(sources, target)
            finally:
                restore()
    finally:
        if ledger_db is not None:
            ledger_db.close()
    _finish(options, summary, uploader)


def source_paths(given: list[str], *, command: str) -> list[Path]:
    """The local sources of ``upload``, ``verify`` or ``job plan``, an empty one refused
    (an unset shell variable: ``Path("")`` would be the current folder), one named twice
    (``a a``, ``a ./a``) taken once, with a warning: its files would each be found twice."""
    from s3stow.localfiles import given_path

    fix = f"name the file or folder to {'check' if command == 'verify' else 'upload'}"
    sources: dict[str, Path] = {}
    for value in given:
        path = given_path(value, what="the source path", fix=fix)
        seen = sources.setdefault(os.path.realpath(path), path)
        if seen is not path:
            logging.getLogger(__name__).warning("%s names %s again: taken once", value, seen)
    return list(sources.values())


def warn_if_the_prefix_names_the_file(
    sources: list[Path], bucket: str, prefix: str, settings: Settings
) -> None:
    """``upload report.pdf s3://b/docs/report.pdf`` stores ``docs/report.pdf/report.pdf``:
    the destination is a prefix (``aws s3 cp`` takes it as the key). Said before
    anything is sent, since it is nearly always that mistake."""
    if len(sources) != 1 or settings.layout != "mirror" or settings.key_template:
        return
    source = Path(sources[0])
    named = f"{source.name}/"
    if not source.is_file() or not (prefix == named or prefix.endswith(f"/{named}")):
        return
    parent = prefix[: -len(source.name) - 1]
    print(
        f"warning: {source.name} is stored as s3://{bucket}/{prefix}{source.name}: the "
        f"destination is a bucket and prefix, under which a file keeps its name; give "
        f"s3://{bucket}/{parent} to store it as s3://{bucket}/{parent}{source.name}",
        file=sys.stderr,
    )


def default_ledger() -> str:
    """The default ledger: ``ledger.db`` in the user's state directory."""
    from platformdirs import user_state_dir

    return str(Path(user_state_dir("s3stow")) / "ledger.db")


def ledger_for(settings: Settings) -> Ledger | None:
    """The ledger of an ``upload`` or ``restore``; none for a dry run whose SQLite
    ledger does not exist yet (a dry run writes nothing, not even a new ledger file)."""
    from s3stow.ledger import open_ledger

    path = settings.ledger or default_ledger()
    if settings.dry_run and "://" not in path and not Path(path).exists():
        return None
    return open_ledger(path)


def existing_ledger(target: str | None) -> str:
    """The ledger of a command that reads what runs recorded (``stats``, ``retry``): a
    SQLite file that does not exist is a mistyped path, refused (exit 2), not a new empty
    ledger of which the command says that nothing is failed."""
    path = target or default_ledger()
    if "://" not in path and not Path(path).exists():
        raise ConfigError(
            f"no ledger at {path}: no run has recorded anything there",
            hint="check --ledger (or S3STOW_LEDGER, ledger in the config file): the "
            "path the upload was given",
        )
    return path


class StartupOver(Observer):
    """Releases the collector held during the program's start-up (``cli.collector``)
    when the run decides about its first file without a transfer to follow, has a
    result or ends, if the S3 client was not made before (``settings(keep_held=True)``
    releases it then): a run that needs no client (the ledger settles every file)
    holds it no longer than that. A decision to upload keeps it held: the transfer
    makes the client (``--force``, or a file the ledger knows as changed, is decided
    before any request), so botocore's import and the client's creation still run
    without collections and are frozen with start-up. Released at the first
    decision, the collector ran some 90 young collections during botocore's import
    and the client's creation, and the interpreter's finalization walked all of
    botocore. ``plan``: a dry run, whose decisions to upload transfer nothing. A
    no-op once released (and in a host, whose collector is never held)."""

    def __init__(self, *, plan: bool = False) -> None:
        self._plan = plan

    def on_decision(self, decision: Decision) -> None:
        if not decision.upload or self._plan:
            release_collector()

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        release_collector()

    def on_finish(self, summary: RunSummary) -> None:
        release_collector()


def observers_for(
    options: GlobalOptions, settings: Settings, *, batches: bool = False, command: str = "upload"
) -> list[Observer]:
    """Progress, JSON events, heartbeat and failures file for a run; ``batches``: the
    uploader runs many (a job worker), so no frame is left behind each; ``command``: the
    one the status file names (``retry``, ``archive``)."""
    from s3stow.report.console import FailureLines, FailuresFile, JsonEvents

    # progress and the heartbeat are imported where they are used: -q and --json
    # draw no progress, and most runs write no status file (about 4 ms a start)
    plan = settings.dry_run
    observers: list[Observer] = [StartupOver(plan=plan)]
    if options.json:
        observers.append(JsonEvents(sys.stdout, plan=plan))
    elif options.quiet:  # -q: failures only, each when it happens; no summary
        observers.append(FailureLines(sys.stderr))
    else:
        from s3stow.report.progress import LiveProgress, PlainProgress

        if sys.stderr.isatty():
            from rich.console import Console

            console = Console(file=sys.stderr)
            observers.append(LiveProgress(console, plan=plan, transient=batches))
        else:
            interval = settings.progress_interval
            observers.append(PlainProgress(sys.stderr, interval=interval, plan=plan))
    if settings.status_json is not None:
        from s3stow.report.status import StatusHeartbeat

        grouped_by_type = settings.layout == "project" or bool(settings.include_types)
        heartbeat = StatusHeartbeat(
            settings.status_json,
            interval=settings.status_interval,
            group_key="folder_types" if grouped_by_type else "folders",
            command=command,
            log_final_failure=False,  # said last instead, exit 3
        )
        check_at_exit(lambda: heartbeat.final_error)
        observers.append(heartbeat)
    if settings.failures_file is not None:
        observers.append(FailuresFile(settings.failures_file))
    return observers


def resume_command() -> str:
    """The command line that resumes this run: the same one, its secrets redacted as in
    every log line (a password in ``--ledger postgresql://u:pw@db/x``, ``--db`` or
    ``--endpoint-url`` is shown as ``***``: the user who typed it knows it)."""
    from s3stow.logs import redact

    return redact("s3stow " + shlex.join(sys.argv[1:]))


def install_signal_handlers(uploader: Engine, *, resume: str | None = None) -> Any:
    """First SIGINT/SIGTERM: stop starting work; second: exit at once (130), leaving
    the terminal clean with one line that says so (and ``resume``, the command that
    resumes the run)."""
    seen = {"count": 0}
    line = "s3stow: stopped at once (second Ctrl+C); what was in flight is resumed by " + (
        f"running it again: {resume}" if resume else "running the same command again"
    )

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
            quit_now(uploader, line)
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


def quit_now(uploader: Engine, line: str) -> None:
    """Leave ``line`` on stderr before an immediate exit: through the live display when
    there is one (it erases its frame and shows the cursor), else as it is."""
    from s3stow.report.progress import LiveProgress

    observers = getattr(getattr(uploader, "observer", None), "observers", [])
    for observer in observers:
        if isinstance(observer, LiveProgress):
            observer.quit_now(line)
            return
    with contextlib.suppress(OSError, ValueError):  # no usable stderr: exit all the same
        os.write(sys.stderr.fileno(), f"\n{line}\n".encode("utf-8", "replace"))


def _finish(options: GlobalOptions, summary: RunSummary, uploader: Uploader) -> None:
    from s3stow.logs import flush_warnings
    from s3stow.report.console import print_summary

    flush_warnings()
    if not options.json and not options.quiet:
        console = output_console()
        hint = resume_command() if summary.interrupted else None
        every = options.verbose > 0 or not console.is_terminal
        recorded = None if uploader.settings.dry_run else summary.run_id
        print_summary(summary, console, resume_hint=hint, list_all=every, run_id=recorded)
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
    app.command(
        context_settings={"allow_interspersed_args": True},
        epilog=examples(
            (
                "Upload a folder; run the same line again to resume after an interruption, "
                "or to send only what is new or changed:",
                "s3stow upload ./photos s3://my-bucket/photos",
            ),
            (
                "Only the RAW files of 2024, to a MinIO or SeaweedFS server:",
                "s3stow upload ./photos s3://backup/photos --include '2024/**/*.cr2' "
                "--endpoint-url http://nas:9000",
            ),
            (
                "See what would be sent, every file listed, as JSON lines for a script:",
                "s3stow upload ./photos s3://my-bucket/photos --dry-run --json",
            ),
        ),
    )(upload)


__all__ = ["register"]
