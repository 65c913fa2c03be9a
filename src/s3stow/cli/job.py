"""``s3stow job plan|work|status``: one job shared by workers on many hosts.

The job group, its options (the job, the shared PostgreSQL ledger, the split
threshold: ``split_size``), the three commands and what ``plan`` and ``status``
print. The plan itself (discovery, keys, the queue's upserts) is the library's
``job.enqueue``; a worker's run is ``cli.jobwork``'s, imported when it runs."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from s3stow.cli.app import GlobalOptions, MetricsHostOpt, MetricsPortOpt, output_console
from s3stow.cli.helptext import examples
from s3stow.cli.keyoptions import KeyOptions, selection_options
from s3stow.errors import ConfigError, ExitCode
from s3stow.plan.keys import parse_target
from s3stow.units import plural

if TYPE_CHECKING:
    from s3stow.config import Settings
    from s3stow.job.queue import JobQueue

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
DEFAULT_DB_TIMEOUT = 300.0


def split_size(value: str) -> int | None:
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


def shown_size(split: int | None) -> str:
    from s3stow.units import format_size

    return "off" if split is None else format_size(split)


def postgres_ledger(url: str | None) -> str:
    if not url or not url.startswith(("postgresql://", "postgres://")):
        raise ConfigError(
            "job commands need a shared PostgreSQL ledger",
            hint="pass --ledger postgresql://user@host/db (or S3STOW_LEDGER)",
        )
    return url


def _queue(settings: Settings, job: str) -> tuple[Any, JobQueue]:
    from s3stow.job.queue import JobQueue
    from s3stow.ledger import open_ledger

    ledger = open_ledger(postgres_ledger(settings.ledger))
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
    from s3stow.job.enqueue import plan_job
    from s3stow.localfiles import display_path
    from s3stow.report.console import for_terminal

    options: GlobalOptions = ctx.obj
    if len(paths) < 2:
        raise ConfigError("job plan needs sources and a destination")
    split = split_size(split_above)
    *given, destination = paths
    sources = source_paths(given, command="job plan")
    target = parse_target(destination)
    settings = options.settings(ledger=ledger, concurrency=concurrency, **keys.flags())
    db, queue = _queue(settings, job)
    try:
        planned = plan_job(
            queue,
            settings,
            target,
            sources=sources,
            split_above=split,
            refused=lambda path, why: log.warning("not planned: %s: %s", path, why),
        )
        waiting = queue.remaining()
    finally:
        db.close()
    total, gone = planned.total, planned.gone
    unreadable, not_planned = planned.unreadable, planned.not_planned
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
            first = unreadable[0]
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"{plural(len(unreadable), 'path')} could not be read (first: "
                f"{for_terminal(display_path(first.path))}: {first.reason}); no item was "
                "marked gone",
                markup=False,
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
        from s3stow.cli.jobwork import work_job

        work_job(options, job, settings.ledger, batch=64, lease=300.0)
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
        split_size(split_above)  # a bad value is refused before the database is opened
    from s3stow.cli.jobwork import work_job

    settings = options.settings(ledger=ledger, metrics_port=metrics_port, metrics_host=metrics_host)
    work_job(
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
        "split_above": stored.get("split_above", split_size(DEFAULT_SPLIT)),
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
        f"  job-wide: split above {shown_size(wide['split_above'])}, part size "
        f"{shown_size(wide['part_size']) if wide['part_size'] else 'size-adaptive'}, "
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


def register(app: typer.Typer) -> None:
    app.add_typer(job_app, name="job")
