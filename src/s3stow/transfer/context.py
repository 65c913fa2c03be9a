"""What every transfer of one run shares: the store, limits, ledger and hooks."""

from __future__ import annotations

import functools
import mimetypes
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from s3stow import __version__
from s3stow.config import Settings, wants_etag_check
from s3stow.errors import SourceChanged
from s3stow.ledger import Ledger
from s3stow.models import SourceFile
from s3stow.store.base import ObjectStore, WriteOptions
from s3stow.transfer.limits import MemoryBudget, RequestLimiter
from s3stow.transfer.retry import RetryPolicy
from s3stow.units import utc_stamp


@dataclass
class TransferContext:
    """Shared state of one run's transfers (thread-safe parts only)."""

    settings: Settings
    store: ObjectStore
    ledger: Ledger | None
    limiter: RequestLimiter
    budget: MemoryBudget
    retry: RetryPolicy
    stop: threading.Event
    part_pool: ThreadPoolExecutor
    run_id: str
    on_bytes: Callable[[SourceFile, int], None]

    @property
    def compat(self) -> bool:
        return self.settings.checksum_compat or self.settings.checksum == "none"

    @functools.cached_property
    def etag_check(self) -> bool:
        """Compare ETags with the MD5s (and send Content-MD5): in compatibility mode, or
        as ``etag_check`` says for the endpoint botocore resolved."""
        if self.compat:
            return True
        if self.settings.etag_check != "auto" or self.settings.sse == "aws:kms":
            return wants_etag_check(self.settings, custom_endpoint=False)
        return wants_etag_check(self.settings, custom_endpoint=self.store.custom_endpoint())

    def signs_payload(self, bucket: str) -> bool:
        """Whether writes to ``bucket`` carry the payload's SHA-256 in the signature (as
        botocore signs them: plain http, or ``payload_signing_enabled``), so the body's
        hashing pass computes it too."""
        return self.store.signs_payload(bucket)

    def write_options(self, source: SourceFile, *, sha256_hex: str | None = None) -> WriteOptions:
        s = self.settings
        content_type = s.content_type or _guess_type(source.path.name)
        metadata = dict(s.metadata)
        metadata["uploaded-at"] = utc_stamp("%Y-%m-%dT%H:%M:%SZ")
        metadata["source"] = _SOURCE
        metadata["mtime"] = datetime.fromtimestamp(source.mtime_ns / 1e9, UTC).isoformat()
        if sha256_hex:
            metadata["sha256"] = sha256_hex
        return WriteOptions(
            content_type=content_type or "application/octet-stream",
            metadata=metadata,
            sse=s.sse,
            sse_kms_key_id=s.sse_kms_key_id,
            storage_class=s.storage_class,
            if_none_match=s.no_clobber,
        )


_SOURCE = f"s3stow/{__version__}"


@functools.lru_cache(maxsize=1024)
def _guess_by_suffix(suffixes: str) -> str | None:
    return mimetypes.guess_type("x" + suffixes)[0]


def _guess_type(name: str) -> str | None:
    dot = name.find(".", 1)
    return _guess_by_suffix(name[dot:]) if dot > 0 else mimetypes.guess_type(name)[0]


def ensure_unchanged(source: SourceFile) -> None:
    """Raise ``SourceChanged`` if the file no longer has the discovered size/mtime."""
    try:
        info = os.stat(source.path)
    except FileNotFoundError:
        raise SourceChanged(f"{source.path} vanished during upload") from None
    if info.st_size != source.size or info.st_mtime_ns != source.mtime_ns:
        raise SourceChanged(
            f"{source.path} changed during upload (size {source.size} -> {info.st_size}, "
            "or its modification time moved); it will be picked up by the next run"
        )


@contextmanager
def transfer_context(
    settings: Settings,
    *,
    store: ObjectStore,
    ledger: Ledger | None,
    limiter: RequestLimiter,
    stop: threading.Event,
    run_id: str,
    on_bytes: Callable[[SourceFile, int], None],
) -> Iterator[TransferContext]:
    """A ``TransferContext`` with its own part pool, shut down on exit."""
    pool = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="part")
    try:
        yield TransferContext(
            settings=settings,
            store=store,
            ledger=ledger,
            limiter=limiter,
            budget=MemoryBudget(settings.memory_limit),
            retry=RetryPolicy(
                retries=settings.file_retries,
                base_delay=settings.retry_base_delay,
                max_delay=settings.retry_max_delay,
                stop=stop,
            ),
            stop=stop,
            part_pool=pool,
            run_id=run_id,
            on_bytes=on_bytes,
        )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
