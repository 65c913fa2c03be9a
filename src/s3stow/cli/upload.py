"""``s3stow upload SRC... s3://BUCKET[/PREFIX]``: the upload command: its options, its
run (the sources, the settings, the ledger's run lock, the ``Uploader``) and its summary
and exit code. What every run command shares once it runs (the ledger, the observers,
the signal handlers, the exit code) is ``cli.runsupport``'s, imported when the command
runs (not for ``--help``)."""

from __future__ import annotations

import logging
import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from s3stow.cli.app import GlobalOptions, MetricsHostOpt, MetricsPortOpt, output_console
from s3stow.cli.helptext import examples
from s3stow.cli.keyoptions import KeyOptions, selection_options
from s3stow.cli.runoptions import (
    ConcurrencyOpt,
    LedgerOpt,
    MaxConcurrencyOpt,
    StatusIntervalOpt,
    StatusJsonOpt,
)
from s3stow.errors import ConfigError
from s3stow.plan.keys import parse_target

if TYPE_CHECKING:
    from s3stow.config import Settings
    from s3stow.models import RunSummary
    from s3stow.transfer.engine import Uploader


Opt = typer.Option


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
    from s3stow.cli.runsupport import (
        install_signal_handlers,
        ledger_for,
        observers_for,
        resume_command,
    )
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


def _finish(options: GlobalOptions, summary: RunSummary, uploader: Uploader) -> None:
    from s3stow.cli.runsupport import exit_for, resume_command
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
