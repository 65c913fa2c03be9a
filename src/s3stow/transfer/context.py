"""What every transfer of one run shares: the store, limits, ledger and hooks; and
the source-change checks (``FileIdentity``).

A file's identity is taken before its first byte is read, and compared after it
was read for a single request (before the request), before a multipart upload is
completed, and before any upload is reported done. Size and mtime alone miss a file
rewritten in place whose mtime was put back; where the OS has them the identity also
holds the status-change time (POSIX ``st_ctime``: every write moves it, and no call
sets it back) and the inode and device (a replacement by rename is another inode). On
Windows ``os.stat`` gives no change time (``st_ctime`` is the creation time there), so
only size, mtime, file index and volume serial are compared. The check after a read
compares the ``stat`` with the identity field by field (``FileIdentity.unchanged``)
and builds the list of changes only when one differs.

Where discovery's own ``stat`` holds the whole identity (POSIX: change time and
inode), that is the identity: no second ``stat`` when the upload starts. Since no
call sets a change time back, any write or replacement after discovery still shows
in the comparisons after the read, and so does a change of the file's status
alone (``chmod``, a new hard link) between discovery and the upload: the file is
``SourceChanged`` and picked up by the next run. Elsewhere (Windows, where a
directory entry's ``stat`` has no file index; a file from the ledger or a job) the
upload takes a ``stat`` when it starts, compared with the size and mtime the file
was planned with.
"""

from __future__ import annotations

import functools
import mimetypes
import os
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from s3stow import __version__
from s3stow.config import Settings, wants_etag_check
from s3stow.errors import SourceChanged
from s3stow.ledger import Ledger
from s3stow.localfiles import FileIdentity
from s3stow.models import SourceFile
from s3stow.store.base import ObjectStore, WriteOptions
from s3stow.transfer.limits import MemoryBudget, RequestLimiter
from s3stow.transfer.retry import RetryPolicy
from s3stow.units import utc_stamp

if TYPE_CHECKING:
    from s3stow.transfer.probes import ServerProbes


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
    on_bytes: Callable[[SourceFile, int], None]  # bytes this run sent, acknowledged by S3
    on_resumed: Callable[[SourceFile, int], None] = field(default=lambda _source, _count: None)
    on_hashed: Callable[[SourceFile, int], None] | None = None  # whole-file hashing progress

    @property
    def compat(self) -> bool:
        return self.settings.checksum_compat or self.settings.checksum == "none"

    probes: ServerProbes | None = None  # what the server does (None: not asked)
    _validating: dict[str, bool] = field(default_factory=dict)  # bucket -> refuses bad sums
    _etag_checks: dict[str, bool] = field(default_factory=dict)  # bucket -> checks_etag

    @functools.cached_property
    def custom_endpoint(self) -> bool:
        return self.store.custom_endpoint()

    def checks_etag(self, bucket: str | None, key: str = "") -> bool:
        """Compare ETags with the MD5s (and send Content-MD5) for a write to ``bucket``
        (``key``: beside which a probe object may go): in compatibility mode, or as
        ``etag_check`` says for the endpoint botocore resolved; under ``auto`` on a
        configured endpoint, only where the server does not refuse a wrong checksum
        itself (``ServerProbes``). A bucket's answer is kept: each write asks twice."""
        if bucket is not None:
            known = self._etag_checks.get(bucket)
            if known is not None:
                return known
            answer = self._checks_etag(bucket, key)
            self._etag_checks[bucket] = answer
            return answer
        return self._checks_etag(bucket, key)

    def _checks_etag(self, bucket: str | None, key: str) -> bool:
        from s3stow.transfer.probes import asks_checksum_probe

        if self.compat:
            return True
        if not asks_checksum_probe(self.settings):
            return wants_etag_check(self.settings, custom_endpoint=False)
        if not self.custom_endpoint:
            return False
        if self.probes is None or bucket is None:
            return True
        validating = self._validating.get(bucket)
        if validating is None:
            validating = self.probes.validates_checksums(bucket, near=key)
            self._validating[bucket] = validating
        return not validating

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
    return _guess("x" + suffixes)


def _guess_type(name: str) -> str | None:
    # A name starting with a dot is looked up whole: its leading dots are no suffix for
    # mimetypes (``..js`` has none), and skipping one only (``find(".", 1)``) gave it one.
    dot = name.find(".")
    return _guess_by_suffix(name[dot:]) if dot > 0 else _guess(name)


def _guess(name: str) -> str | None:
    """The Content-Type of ``name``: Python's own table first on Windows.

    ``mimetypes`` lets the Windows registry override its table, and installed programs
    write ``Content Type`` values there: ``.js`` as ``text/plain`` is common, and a
    browser refuses such a script (a site uploaded from Windows broke, from Linux not).
    The registry still answers for the extensions the table lacks."""
    if sys.platform == "win32":
        known = _builtin_types().guess_type(name)[0]
        if known is not None:
            return known
    return mimetypes.guess_type(name)[0]


@functools.cache
def _builtin_types() -> mimetypes.MimeTypes:
    return mimetypes.MimeTypes()  # the built-in table alone: no registry, no system file


def _stat(source: SourceFile) -> os.stat_result:
    try:
        return os.stat(source.path)
    except FileNotFoundError:
        raise SourceChanged(f"{source.path} vanished during upload") from None


def open_identity(source: SourceFile) -> FileIdentity:
    """The identity of ``source`` before its first byte is read: discovery's where it
    is whole, else taken now (``SourceChanged`` when it is no longer the file
    discovery found)."""
    if source.found is not None:
        found = FileIdentity.of(source.found)
        if found.whole:
            return found
    identity = FileIdentity.of(_stat(source))
    _raise_if_moved(source, FileIdentity(source.size, source.mtime_ns), identity)
    return identity


def ensure_unchanged(source: SourceFile, identity: FileIdentity | None = None) -> None:
    """Raise ``SourceChanged`` unless ``source`` is still the file whose upload started
    (``identity`` from ``open_identity``; without one, discovery's size and mtime)."""
    then = identity or FileIdentity(source.size, source.mtime_ns)
    now = _stat(source)
    if not then.unchanged(now):
        _raise_if_moved(source, then, FileIdentity.of(now))


def _raise_if_moved(source: SourceFile, then: FileIdentity, now: FileIdentity) -> None:
    moved = then.changes(now)
    if moved:
        raise SourceChanged(
            f"{source.path} changed during upload ({'; '.join(moved)}); "
            "it will be picked up by the next run"
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
    on_resumed: Callable[[SourceFile, int], None] = lambda _source, _count: None,
    on_hashed: Callable[[SourceFile, int], None] | None = None,
    probes: ServerProbes | None = None,
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
            on_resumed=on_resumed,
            on_hashed=on_hashed,
            probes=probes,
        )
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
