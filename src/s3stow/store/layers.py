"""The store a run talks to, built in one place: S3 (or the store given), wrapped by
the request observer when ``--metrics-port`` asks for one, and by the dry-run store
when nothing may be written, in that order, for uploads and restores alike."""

from __future__ import annotations

from collections.abc import Callable

from s3stow.config import Settings
from s3stow.store.base import ObjectStore
from s3stow.store.dryrun import DryRunStore
from s3stow.store.observed import ObservedStore, RequestObserver


def run_store(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    on_throttle: Callable[[], None] | None = None,
    request_observer: RequestObserver | None = None,
) -> ObjectStore:
    """``store`` (else an ``S3Store`` from ``settings`` that reports throttling to
    ``on_throttle``), observed (latency, requests in flight) and dry-run wrapped."""
    if store is None:
        from s3stow.store.s3 import S3Store

        store = S3Store.from_settings(settings, on_throttle=on_throttle)
    if request_observer is not None:
        store = ObservedStore(store, request_observer)
    return DryRunStore(store) if settings.dry_run else store
