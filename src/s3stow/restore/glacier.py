"""Archived objects (GLACIER, DEEP_ARCHIVE): their state, restore requests, waiting.

An archived object cannot be read until S3 makes a temporary copy of it
(RestoreObject: ``--days`` days, retrieval ``--tier`` Standard, Bulk or Expedited).
The ``x-amz-restore`` header of a HEAD tells where it stands: absent (nothing asked),
``ongoing-request="true"`` (in progress), ``ongoing-request="false"`` (readable until
its expiry date). Without ``--request-restore`` an unreadable archived object is
reported as ``archived``; with it a request is sent (an earlier one still running is
recognised, never repeated) and the object is ``restore-pending``. With ``--wait`` the
run HEADs the pending objects with exponential backoff (``Backoff``) and downloads
each as soon as it is readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from s3stow.store.base import ObjectInfo

if TYPE_CHECKING:
    from s3stow.restore.plan import RestoreItem
    from s3stow.transfer.context import TransferContext

ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
TIERS = ("Standard", "Bulk", "Expedited")
POLL_MAX = 900.0  # seconds between two polls of one object, at most
READABLE, ARCHIVED, PENDING = "readable", "archived", "restore-pending"


@dataclass(frozen=True, slots=True)
class GlacierOptions:
    """What to do about archived objects."""

    request: bool = False  # --request-restore
    days: int = 7
    tier: str = "Standard"
    wait: bool = False
    poll_interval: float = 60.0  # the first wait; it doubles up to POLL_MAX


def archived(info: ObjectInfo) -> bool:
    return (info.storage_class or "").upper() in ARCHIVED_CLASSES


def archived_unreadable(info: ObjectInfo) -> bool:
    """An archived object without a readable restored copy (from a HEAD)."""
    return archived(info) and 'ongoing-request="false"' not in (info.restore or "")


def state(ctx: TransferContext, item: RestoreItem, options: GlacierOptions) -> str:
    """``readable``, or ``archived`` (no request allowed) or ``restore-pending``
    (requested now or earlier); sends the request when ``options.request``."""
    from s3stow.restore.check import stat

    info = stat(ctx, item)
    if not archived_unreadable(info):
        return READABLE
    if 'ongoing-request="true"' in (info.restore or ""):
        return PENDING
    if not options.request:
        return ARCHIVED

    def ask() -> str:
        with ctx.limiter.slot():
            return ctx.store.restore_object(
                item.bucket, item.key, days=options.days, tier=options.tier
            )

    return READABLE if ctx.retry.run(ask, what=item.key) == "ready" else PENDING


def message(item: RestoreItem, verdict: str, options: GlacierOptions) -> str:
    cls = item.info.storage_class or "an archive storage class"
    if verdict == ARCHIVED:
        return (
            f"in {cls}, not readable; request a temporary copy with "
            "--request-restore --days N [--tier Standard|Bulk|Expedited] [--wait]"
        )
    if options.wait:
        return f"restore from {cls} still in progress when the run stopped"
    return (
        f"restore from {cls} requested or in progress; run the same command again once "
        "it is readable (Standard takes hours, Bulk up to two days), or add --wait"
    )


class Backoff:
    """Delays between polls: ``first``, doubling, at most ``POLL_MAX``."""

    def __init__(self, first: float) -> None:
        self.delay = max(0.0, first)

    def next(self) -> float:
        current = self.delay
        self.delay = min(POLL_MAX, max(self.delay * 2, 0.1))
        return current
