"""``s3stow job plan|work|status``: one job shared by workers on many hosts."""

from __future__ import annotations

import itertools
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from s3stow.cli.app import GlobalOptions, MetricsHostOpt, MetricsPortOpt, output_console
from s3stow.cli.helptext import examples
from s3stow.cli.keyoptions import KeyOptions, selection_options
from s3stow.errors import ConfigError, ExitCode
from s3stow.models import PlannedUpload, Refused, Skipped, SourceFile, Target
from s3stow.plan.keys import parse_target
from s3stow.units import plural

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from s3stow.config import Settings
    from s3stow.job.queue import JobQueue
    from s3stow.plan.planner import Planner
    from s3stow.transfer.probes import ServerProbes

log = logging.getLogger(__name__)

job_app = typer.Typer(
    rich_markup_mode=None,  # help texts show s3://BUCKET[/PREFIX] literally
    help="Split an upload across workers on many hosts (PostgreSQL).",
    no_args_is_help=True,
    epilog=examples(
        (
            "Plan once, then work the job on as many hosts as you like:",
            "s3stow job plan /data s3://archive/data --job data-2025 --ledger postgresql://db/s3",
        ),
        ("", "s3stow job work --job data-2025 --ledger postgresql://db/s3"),
        ("Progress per worker:", "s3stow job status --job data-2025 --ledger postgresql://db/s3"),
    ),
)
Opt = typer.Option
JobOpt = Annotated[str, Opt("--job", help="The job's name.", metavar="NAME")]
LedgerOpt = Annotated[
    str | None, Opt(help="The PostgreSQL ledger every worker shares.", metavar="URL")
]
SplitOpt = Annotated[
    str,
    Opt(
        help="Split files at least this large into parts that every worker claims "
        "(e.g. 1GiB); 'off' uploads each file on one worker. Stored with the job.",
        metavar="SIZE|off",
    ),
]
WorkSplitOpt = Annotated[
    str | None,
    Opt(
        "--split-above",
        help="The job's split threshold, set by `job plan` (a different value is refused).",
        metavar="SIZE|off",
    ),
]
DbTimeoutOpt = Annotated[
    float,
    Opt(
        "--db-timeout",
        help="Seconds the worker keeps retrying an unreachable database before it stops (exit 3).",
        metavar="SECONDS",
    ),
]
DEFAULT_SPLIT = "1GiB"
# Not stored with the job: the ledger URL (it may carry a password; every worker has its
# own) and files this host writes.
_HOST_ONLY = ("ledger", "status_json", "failures_file")
DEFAULT_DB_TIMEOUT = 300.0


def _split_size(value: str) -> int | None:
    from s3stow.units import parse_size

    if value.strip().lower() in ("off", "none", "no"):
        return None
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise ConfigError(
            f"--split-above {value!r}: {exc}", hint="e.g. 1GiB, 512MiB or off"
        ) from exc
    if size < 5 * 1024 * 1024:
        raise ConfigError(
            f"--split-above {value!r} is below S3's 5 MiB minimum part size",
            hint="use at least 5MiB, or off",
        )
    return size


def _shown(split: int | None) -> str:
    from s3stow.units import format_size

    return "off" if split is None else format_size(split)


def _postgres(url: str | None) -> str:
    if not url or not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "job commands need a shared PostgreSQL ledger",
            hint="pass --ledger postgresql://user@host/db (or S3STOW_LEDGER)",
        )
    return url


def _queue(settings: Settings, job: str) -> tuple[Any, JobQueue]:
    from s3stow.job.queue import JobQueue
    from s3stow.ledger import open_ledger

    ledger = open_ledger(_postgres(settings.ledger))
    try:
        return ledger, JobQueue(ledger.engine, job)
    except BaseException:
        ledger.close()
        raise


@job_app.command(
    "plan",
    epilog=examples(
        (
            "Plan a job from one host, then start workers on several:",
            "s3stow job plan /data s3://archive/data --job data-2025 "
            "--ledger postgresql://s3stow@db/s3stow",
        ),
        ("", "s3stow job work --job data-2025 --ledger postgresql://s3stow@db/s3stow"),
    ),
)
@selection_options
def plan(
    ctx: typer.Context,
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="SRC... s3://BUCKET[/PREFIX]",
            help="Files or directories to upload, then the destination bucket and prefix.",
        ),
    ],
    job: JobOpt,
    ledger: LedgerOpt = None,
    work: Annotated[bool, Opt("--work", help="Also work the job on this host.")] = False,
    concurrency: Annotated[
        str | None,
        Opt(help="Requests in flight per worker.", metavar="N", show_default="16"),
    ] = None,
    split_above: SplitOpt = DEFAULT_SPLIT,
    *,
    keys: KeyOptions,
) -> None:
    """Discover files and enqueue them (idempotent: only new or changed items)."""
    from s3stow.cli.upload import source_paths
    from s3stow.localfiles import display_path
    from s3stow.plan.discover import check_sources, discover
    from s3stow.plan.planner import Planner
    from s3stow.report.console import for_terminal

    options: GlobalOptions = ctx.obj
    if len(paths) < 2:
        raise ConfigError("job plan needs sources and a destination")
    split = _split_size(split_above)
    *given, destination = paths
    sources = source_paths(given, command="job plan")
    target = parse_target(destination)
    settings = options.settings(ledger=ledger, concurrency=concurrency, **keys.flags())
    db, queue = _queue(settings, job)
    try:
        planner = Planner(settings, target)
        roots = check_sources(planner.sources(sources))
        job_settings = {
            **settings.dump(json=True, exclude=_HOST_ONLY),
            "split_above": split,
        }
        unreadable: list[Skipped] = []
        not_planned: list[tuple[Path, str]] = []  # keys S3 cannot take, collisions
        total = 0
        probes = _probes(settings)
        with queue.plan(bucket=target.bucket, prefix=target.prefix, settings=job_settings) as run:
            found = discover(roots, follow_symlinks=settings.follow_symlinks)
            planned = _planned(found, planner, unreadable, not_planned)
            while batch := list(itertools.islice(planned, 1000)):
                # Keys as the server will store them ('\' folded where it folds), so
                # every worker sends, records and claims the same key.
                batch, unsafe = probes.fold_keys(batch, planner.claims)
                batch, refused = planner.claims.settle(batch, {})
                for refusal in [*unsafe, *refused]:
                    why = refusal.reason if isinstance(refusal, Refused) else "a duplicate"
                    log.warning("not planned: %s: %s", refusal.source.path, why)
                    if isinstance(refusal, Refused):  # a duplicate is planned once
                        not_planned.append((refusal.source.path, why))
                total += len(batch)
                run.add([(p.source, p.key) for p in batch])
            # A directory that could not be read hides files that still exist: nothing
            # is marked gone by a plan that did not see everything.
            gone = None if unreadable else run.mark_gone([str(_root(r)) for r in roots])
        waiting = queue.remaining()
    finally:
        db.close()
    if options.json:
        print(
            json.dumps(
                {
                    "job": job,
                    "files": total,
                    "to_do": waiting,
                    "gone": gone,
                    "not_planned": [{"path": str(p), "reason": r} for p, r in not_planned],
                }
            )
        )
    else:
        console = Console(highlight=False, soft_wrap=True)
        console.print(
            f"job {job}: {plural(total, 'file')} planned, {waiting} to do (new, changed or "
            "not yet done)" + (f", {gone} gone (not found by this plan)" if gone else "")
        )
        if unreadable:
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"{plural(len(unreadable), 'path')} could not be read (first: "
                f"{unreadable[0].path}: {unreadable[0].reason}); no item was marked gone"
            )
        if not_planned:  # -v names each as it is found
            path, why = not_planned[0]
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"{plural(len(not_planned), 'file')} not planned, never to be uploaded by "
                f"this job (first: {for_terminal(display_path(path))}: {why}); rename them, "
                "or upload "
                "them with another --key-template",
                markup=False,
            )
    if work:
        _work(options, job, settings.ledger, batch=64, lease=300.0)
    if not_planned:  # as an upload's failures found before anything is sent: exit 1
        raise typer.Exit(int(ExitCode.SOME_FAILED))


@job_app.command(
    "work",
    epilog=examples(
        (
            "Work a planned job on this host until it is finished:",
            "s3stow job work --job data-2025 --ledger postgresql://s3stow@db/s3stow",
        ),
        (
            "With more requests in flight on a big host:",
            "s3stow job work --job data-2025 --ledger postgresql://s3stow@db/s3stow "
            "--concurrency 64",
        ),
    ),
)
def work(
    ctx: typer.Context,
    job: JobOpt,
    ledger: LedgerOpt = None,
    batch: Annotated[int, Opt(help="Items claimed at a time.", metavar="N")] = 64,
    lease: Annotated[
        float, Opt(help="Seconds a claim lasts without a heartbeat.", metavar="SECONDS")
    ] = 300.0,
    concurrency: Annotated[
        str | None,
        Opt(help="Requests in flight on this worker.", metavar="N", show_default="16"),
    ] = None,
    split_above: WorkSplitOpt = None,
    db_timeout: DbTimeoutOpt = DEFAULT_DB_TIMEOUT,
    metrics_port: MetricsPortOpt = None,
    metrics_host: MetricsHostOpt = None,
) -> None:
    """Claim, upload and record items until the job is finished."""
    options: GlobalOptions = ctx.obj
    if batch < 1 or lease <= 0 or db_timeout <= 0:
        raise ConfigError("--batch, --lease and --db-timeout must be positive")
    if split_above is not None:
        _split_size(split_above)  # a bad value is refused before the database is opened
    settings = options.settings(ledger=ledger, metrics_port=metrics_port, metrics_host=metrics_host)
    _work(
        options,
        job,
        settings.ledger,
        batch=batch,
        lease=lease,
        concurrency=concurrency,
        split_flag=split_above,
        db_timeout=db_timeout,
        metrics_port=metrics_port,
        metrics_host=metrics_host,
    )


def _work(
    options: GlobalOptions,
    job: str,
    ledger: str | None,
    *,
    batch: int,
    lease: float,
    concurrency: str | None = None,
    split_flag: str | None = None,
    db_timeout: float = DEFAULT_DB_TIMEOUT,
    metrics_port: int | None = None,
    metrics_host: str | None = None,
) -> None:
    from s3stow.cli.runsupport import install_signal_handlers, observers_for
    from s3stow.job.db import JobDatabase
    from s3stow.job.ledger import JobLedger
    from s3stow.job.queue import JobQueue
    from s3stow.job.worker import JobWorker
    from s3stow.ledger.opening import open_ledger_database
    from s3stow.plan.retries import run_settings
    from s3stow.report.console import run_label
    from s3stow.report.metrics import metrics_for, serving
    from s3stow.transfer.engine import Uploader

    base = options.settings(ledger=ledger, metrics_port=metrics_port, metrics_host=metrics_host)
    database = open_ledger_database(_postgres(base.ledger))
    stopper: list[Uploader] = []

    def stop_all() -> None:  # the database is gone: stop starting work
        for running in stopper:
            running.request_stop()

    db = JobDatabase(
        database.engine(),
        patience=db_timeout,
        on_unreachable=stop_all,
        idle_timeout=max(5.0, min(lease / 2, 60.0)),  # how long a paused worker keeps locks
    )
    journal = JobLedger(database, db=db)
    try:
        queue = JobQueue(db, job)
        info = queue.info()
        if info is None:
            raise ConfigError(f"job {job!r} does not exist", hint="run `s3stow job plan` first")
        stored = json.loads(info["settings"])
        split = _job_split(stored, split_flag)
        overrides = {
            k: v
            for k, v in (
                ("endpoint_url", options.endpoint_url),
                ("profile", options.profile),
                ("region", options.region),
                ("concurrency", concurrency),
                # this worker's own: the job's stored settings never choose its port
                ("metrics_port", base.metrics_port),
                ("metrics_host", base.metrics_host),
            )
            if v is not None
        }
        settings = run_settings(info["settings"], base=base, overrides=overrides)
        if base.metrics_port is None:
            settings = settings.replace(metrics_port=None)
        metrics = metrics_for(settings, command="job work")
        observers = observers_for(options, settings, batches=True, command="job work")
        uploader = Uploader(settings, ledger=journal, observers=observers, request_observer=metrics)
        stopper.append(uploader)
        worker = JobWorker(
            queue,
            uploader,
            Target(info["bucket"], info["prefix"]),
            batch=batch,
            lease=lease,
            split_above=split,
        )
        restore = install_signal_handlers(uploader)
        try:
            with serving(metrics, uploader, settings, announce=not options.quiet):
                stats = worker.run()
        finally:
            restore()
    finally:
        journal.close()
    if uploader.fatal_error is not None:
        raise uploader.fatal_error
    # the id stats, restore and retry --run take (none for a dry run: it records nothing)
    recorded = None if settings.dry_run else worker.run_id
    if options.json:
        print(
            json.dumps(
                {
                    "job": job,
                    "worker": worker.name,
                    "run_id": recorded,
                    "claimed": stats.claimed,
                    "done": stats.done,
                    "failed": stats.failed,
                    "gone": stats.gone,
                    "lost_leases": stats.lost_leases,
                    "parts_sent": stats.parts_sent,
                }
            )
        )
    elif not options.quiet or stats.failed:
        Console(highlight=False, soft_wrap=True).print(
            f"worker {worker.name}: {stats.done} done, {stats.failed} failed, "
            f"{stats.gone} gone, {plural(stats.lost_leases, 'lost lease')}"
            + (
                f", {plural(stats.parts_sent, 'part')} of split files sent"
                if stats.parts_sent
                else ""
            )
            + run_label(recorded)
        )
    if stats.failed:
        raise typer.Exit(int(ExitCode.SOME_FAILED))


@job_app.command(
    "status",
    epilog=examples(
        (
            "Progress per worker:",
            "s3stow job status --job data-2025 --ledger postgresql://s3stow@db/s3stow",
        ),
        (
            "The same for a script:",
            "s3stow job status --job data-2025 --ledger postgresql://s3stow@db/s3stow --json",
        ),
    ),
)
def status(ctx: typer.Context, job: JobOpt, ledger: LedgerOpt = None) -> None:
    """Progress per worker and overall."""
    options: GlobalOptions = ctx.obj
    db, queue = _queue(options.settings(ledger=ledger), job)
    try:
        info = queue.info()
        if info is None:
            raise ConfigError(f"job {job!r} does not exist", hint="run `s3stow job plan` first")
        data = queue.status()
    finally:
        db.close()
    stored = json.loads(info["settings"])
    data["settings"] = {
        "split_above": stored.get("split_above", _split_size(DEFAULT_SPLIT)),
        "part_size": stored.get("part_size"),
        "checksum": stored.get("checksum"),
    }
    if options.json:
        print(json.dumps(data))
        return
    console = output_console()
    items = data["items"]
    total = sum(items.values())
    console.print(
        f"job {job}: {total} items, " + ", ".join(f"{n} {s}" for s, n in sorted(items.items()))
    )
    wide = data["settings"]
    console.print(
        f"  job-wide: split above {_shown(wide['split_above'])}, part size "
        f"{_shown(wide['part_size']) if wide['part_size'] else 'size-adaptive'}, "
        f"checksum {wide['checksum']}"
    )
    for name in ("parts", "uploads"):
        if data[name]:
            counts = data[name]
            label = "parts of split files" if name == "parts" else "split uploads"
            console.print(
                f"  {label}: {sum(counts.values())}, "
                + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
            )
    if data["orphans"]:
        console.print(f"  multipart uploads left to abort: {data['orphans']}")
    for w in data["workers"]:
        console.print(
            f"  {w['worker']} on {w['host']} (pid {w['pid']}): {w['done']} done, "
            f"{w['failed']} failed, {plural(w['lost_leases'], 'lost lease')}, "
            f"seen {w['last_seen_seconds']:.0f}s ago"
        )


def _job_split(stored: dict[str, Any], flag: str | None) -> int | None:
    """The job's split threshold; a worker flag may only repeat it (exit 2 otherwise).
    A job planned before the threshold was stored takes the flag or the default."""
    if "split_above" not in stored:
        return _split_size(flag or DEFAULT_SPLIT)
    split: int | None = stored["split_above"]
    if flag is not None and _split_size(flag) != split:
        raise ConfigError(
            f"--split-above {flag} contradicts the job's split threshold {_shown(split)}, "
            "set when it was planned (every worker splits alike)",
            hint=f"drop --split-above, or re-plan the job with --split-above {flag}",
        )
    return split


def _planned(
    found: Iterable[SourceFile | Skipped],
    planner: Planner,
    unreadable: list[Skipped],
    not_planned: list[tuple[Path, str]],
) -> Iterator[PlannedUpload]:
    """The planned uploads of ``found``; paths that could not be read are collected
    (informational skips, such as symlinks not followed, are not), and files whose key
    S3 cannot take (a control character, over 1024 bytes), each with why (they were
    dropped without a word: an upload reports them as failed)."""
    for item in found:
        if isinstance(item, Skipped):
            if item.error_class not in ("Symlink", "SpecialFile"):
                unreadable.append(item)
            continue
        planned = planner.plan(item)
        if isinstance(planned, PlannedUpload):
            yield planned
        elif isinstance(planned, Refused):
            log.warning("not planned: %s: %s", planned.source.path, planned.reason)
            not_planned.append((planned.source.path, planned.reason))


def _probes(settings: Settings) -> ServerProbes:
    """The server probes of a plan: asked only when a key holds a '\\' (no request
    otherwise, and none on AWS's own endpoint)."""
    from s3stow.store.s3 import S3Store
    from s3stow.transfer.probes import ServerProbes

    return ServerProbes(settings, store=S3Store.from_settings(settings), ledger=None)


def _root(source: Path | Any) -> Path:
    return source if isinstance(source, Path) else Path(source.path)


def register(app: typer.Typer) -> None:
    app.add_typer(job_app, name="job")
