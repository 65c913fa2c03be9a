"""``s3stow job work`` (and ``job plan --work``): this host's worker of a job, from the
job's stored settings and this host's overrides to the worker's summary and exit code.

The worker's database steps are retried through connection failures for up to
``--db-timeout`` seconds; a worker that loses the database stops starting work (exit 3).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from s3stow.cli.job import (
    DEFAULT_DB_TIMEOUT,
    DEFAULT_SPLIT,
    postgres_ledger,
    shown_size,
    split_size,
)
from s3stow.errors import ConfigError, ExitCode
from s3stow.models import Target
from s3stow.units import plural

if TYPE_CHECKING:
    from s3stow.cli.app import GlobalOptions
    from s3stow.transfer.engine import Uploader


def work_job(
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
    """Work ``job`` on this host until it is finished (``batch`` items claimed at a time,
    each claim lasting ``lease`` seconds without a heartbeat); exit 1 when an item failed."""
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
    database = open_ledger_database(postgres_ledger(base.ledger))
    stopper: list[Uploader] = []
    unreachable: list[bool] = []  # stopped by the database, not by a signal

    def stop_all() -> None:  # the database is gone: stop starting work
        unreachable.append(True)
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
        split = job_split(stored, split_flag)
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
    # Ctrl+C or SIGTERM: exit 130, as any run (only watch ends 0); it ended 0, as a
    # worker that found the job finished does
    interrupted = uploader.stop.is_set() and not unreachable
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
                    "interrupted": interrupted,
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
    if interrupted:
        if not options.json and not options.quiet:
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                "interrupted: the job's items this worker did not finish are left to its "
                "workers; run the same command again to go on",
                markup=False,
            )
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    if stats.failed:
        raise typer.Exit(int(ExitCode.SOME_FAILED))


def job_split(stored: dict[str, Any], flag: str | None) -> int | None:
    """The job's split threshold; a worker flag may only repeat it (exit 2 otherwise).
    A job planned before the threshold was stored takes the flag or the default."""
    if "split_above" not in stored:
        return split_size(flag or DEFAULT_SPLIT)
    split: int | None = stored["split_above"]
    if flag is not None and split_size(flag) != split:
        raise ConfigError(
            f"--split-above {flag} contradicts the job's split threshold {shown_size(split)}, "
            "set when it was planned (every worker splits alike)",
            hint=f"drop --split-above, or re-plan the job with --split-above {flag}",
        )
    return split


__all__ = ["job_split", "work_job"]
