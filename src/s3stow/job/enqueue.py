"""A job's plan from its sources: the tree discovered, each file's key planned and
claimed, and the items enqueued in batches of 1,000 (``job plan``).

Keys are those the server will store (a '\\' folded where it folds it), so every
worker sends, records and claims the same key; files whose key S3 cannot take, or
that collide, are not planned, each reported with why; a plan that could not read a
directory marks nothing gone. The job stores the run's settings but the ledger URL
(it may carry a password; every worker has its own) and the files this host writes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3stow.models import PlannedUpload, Refused, Skipped, SourceFile, Target

if TYPE_CHECKING:
    from s3stow.config import Settings
    from s3stow.job.queue import JobQueue
    from s3stow.plan.planner import Planner
    from s3stow.transfer.probes import ServerProbes

# Not stored with the job: the ledger URL (it may carry a password; every worker has its
# own) and files this host writes.
_HOST_ONLY = ("ledger", "status_json", "failures_file")


@dataclass(frozen=True)
class PlannedJob:
    """What a plan enqueued: ``total`` files; ``gone``: items of an earlier plan not
    found again (``None`` when ``unreadable`` paths kept the plan from marking any);
    ``not_planned``: files that will never be uploaded by this job, each with why."""

    total: int
    gone: int | None
    unreadable: list[Skipped]
    not_planned: list[tuple[Path, str]]


def plan_job(
    queue: JobQueue,
    settings: Settings,
    target: Target,
    *,
    sources: list[Path],
    split_above: int | None,
    refused: Callable[[Path, str], None],
) -> PlannedJob:
    """Plan ``sources`` into ``queue``'s job for ``target``, stored with ``settings``
    and the split threshold; ``refused`` is told of each file not planned as it is found
    (a duplicate too, which is planned once)."""
    from s3stow.plan.discover import check_sources, discover
    from s3stow.plan.planner import Planner

    planner = Planner(settings, target)
    roots = check_sources(planner.sources(sources))
    job_settings = {
        **settings.dump(json=True, exclude=_HOST_ONLY),
        "split_above": split_above,
    }
    unreadable: list[Skipped] = []
    not_planned: list[tuple[Path, str]] = []  # keys S3 cannot take, collisions
    total = 0
    probes = _probes(settings)
    with queue.plan(bucket=target.bucket, prefix=target.prefix, settings=job_settings) as run:
        found = discover(roots, follow_symlinks=settings.follow_symlinks)
        planned = _planned(found, planner, unreadable, not_planned, refused)
        while batch := list(itertools.islice(planned, 1000)):
            # Keys as the server will store them ('\' folded where it folds), so
            # every worker sends, records and claims the same key.
            batch, unsafe = probes.fold_keys(batch, planner.claims)
            batch, settled = planner.claims.settle(batch, {})
            for refusal in [*unsafe, *settled]:
                why = refusal.reason if isinstance(refusal, Refused) else "a duplicate"
                refused(refusal.source.path, why)
                if isinstance(refusal, Refused):  # a duplicate is planned once
                    not_planned.append((refusal.source.path, why))
            total += len(batch)
            run.add([(p.source, p.key) for p in batch])
        # A directory that could not be read hides files that still exist: nothing
        # is marked gone by a plan that did not see everything.
        gone = None if unreadable else run.mark_gone([str(_root(r)) for r in roots])
    return PlannedJob(total=total, gone=gone, unreadable=unreadable, not_planned=not_planned)


def _planned(
    found: Iterable[SourceFile | Skipped],
    planner: Planner,
    unreadable: list[Skipped],
    not_planned: list[tuple[Path, str]],
    refused: Callable[[Path, str], None],
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
            refused(planned.source.path, planned.reason)
            not_planned.append((planned.source.path, planned.reason))


def _probes(settings: Settings) -> ServerProbes:
    """The server probes of a plan: asked only when a key holds a '\\' (no request
    otherwise, and none on AWS's own endpoint)."""
    from s3stow.store.s3 import S3Store
    from s3stow.transfer.probes import ServerProbes

    return ServerProbes(settings, store=S3Store.from_settings(settings), ledger=None)


def _root(source: Path | Any) -> Path:
    return source if isinstance(source, Path) else Path(source.path)


__all__ = ["PlannedJob", "plan_job"]
