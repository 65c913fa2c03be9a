"""What ``s3stow retry`` re-attempts, and with which settings.

From the ledger: every item whose latest status is failed or changed (of all
runs, or of one), grouped by the run that last tried it, so each group is
retried with the settings that run used. From a failures file or an aws s3 log
(``failures.read_failures``): each named file, resolved against ``base_dir``,
its key repaired by ``strip_prefix``/``new_prefix``. Files that are gone and
keys that are still unsafe become failed results with a clear reason; they are
reported, never uploaded.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3stow.config import Settings
from s3stow.failures import FailedItem, repair_key, resolve_local
from s3stow.keys import UnsafeKeyError, validate_bucket
from s3stow.ledger import Ledger, LedgerEntry
from s3stow.models import PlannedUpload, SourceFile, Status, UploadResult
from s3stow.templates import sanitise_key

RETRY_GROUP = "retry"
CATEGORIES: dict[str, tuple[str, ...]] = {
    "auth": (
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "AllAccessDisabled",
        "RequestTimeTooSkewed",
        "403",
        "Forbidden",
    ),
    "throttling": (
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "503",
        "ServiceUnavailable",
    ),
    "network": (
        "EndpointConnectionError",
        "ConnectionClosedError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ResponseStreamingError",
        "RequestTimeout",
        "ConnectionError",
        "HTTPClientError",
    ),
    "server": ("InternalError", "500", "502", "504", "BadGateway", "GatewayTimeout"),
    "source missing": ("SourceMissing", "FileNotFoundError"),
    "source changed": ("SourceChanged",),
    "source unreadable": ("PermissionDenied", "ReadError", "SourceError", "PermissionError"),
    "key invalid": ("UnsafeKey", "KeyCollision"),
    "integrity": (
        "ChecksumMismatch",
        "ChecksumNotAcknowledged",
        "SizeMismatch",
        "BadDigest",
        "InvalidDigest",
        "XAmzContentSHA256Mismatch",
    ),
}


def category(error_class: str | None) -> str:
    """The operator-facing category of an error class."""
    for name, classes in CATEGORIES.items():
        if error_class in classes:
            return name
    return "other"


@dataclass
class RetryBatch:
    """Items of one bucket to retry with one set of settings."""

    bucket: str
    settings: Settings
    items: list[PlannedUpload] = field(default_factory=list)
    refused: list[UploadResult] = field(default_factory=list)
    source_run: str | None = None


def _source_file(path: Path) -> SourceFile | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path):
        return None
    return SourceFile(path, path.name, info.st_size, info.st_mtime_ns, path.parent, RETRY_GROUP)


def _refuse(path: Path, bucket: str, key: str, error_class: str, reason: str) -> UploadResult:
    return UploadResult(path, bucket, key, Status.FAILED, error_class=error_class, error=reason)


def _add(batch: RetryBatch, path: Path, key: str, *, missing_hint: str) -> None:
    try:
        safe = sanitise_key(key)
    except UnsafeKeyError as exc:
        batch.refused.append(
            _refuse(
                path,
                batch.bucket,
                key,
                "UnsafeKey",
                f"{exc}; repair it with --strip-prefix/--prefix",
            )
        )
        return
    source = _source_file(path)
    if source is None:
        batch.refused.append(
            _refuse(
                path,
                batch.bucket,
                safe,
                "SourceMissing",
                f"local file {path} does not exist{missing_hint}",
            )
        )
        return
    batch.items.append(PlannedUpload(source, batch.bucket, safe))


def from_ledger(
    ledger: Ledger, *, run_id: str | None, overrides: dict[str, Any], base: Settings
) -> list[RetryBatch]:
    """Failed/changed ledger items, grouped by the run (and bucket) that last tried them."""
    grouped: dict[tuple[str, str], list[LedgerEntry]] = defaultdict(list)
    for entry in ledger.items(statuses=[Status.FAILED, Status.CHANGED], run_id=run_id):
        if entry.key:
            grouped[(entry.run_id, entry.bucket)].append(entry)
    batches = []
    for (source_run, bucket), entries in grouped.items():
        info = ledger.run_info(source_run)
        settings = run_settings(info["settings"] if info else None, base=base, overrides=overrides)
        batch = RetryBatch(bucket, settings, source_run=source_run)
        for entry in entries:
            _add(batch, Path(entry.source_path), entry.key, missing_hint=" any more")
        batches.append(batch)
    return batches


def from_failures(
    items: Iterable[FailedItem],
    *,
    settings: Settings,
    base_dir: Path | None,
    strip_prefix: str | None,
    new_prefix: str | None,
    bucket: str | None,
) -> list[RetryBatch]:
    """Items named by a failures file or log, grouped by destination bucket."""
    batches: dict[str, RetryBatch] = {}
    hint = " (relative paths are resolved against --base-dir" + (
        f" {base_dir})" if base_dir else ", which was not given)"
    )
    for item in items:
        target_bucket = validate_bucket(bucket or item.bucket)
        batch = batches.setdefault(target_bucket, RetryBatch(target_bucket, settings))
        key = repair_key(item.key, strip_prefix=strip_prefix, new_prefix=new_prefix)
        _add(batch, resolve_local(item.local, base_dir=base_dir), key, missing_hint=hint)
    return list(batches.values())


def run_settings(stored: str | None, *, base: Settings, overrides: dict[str, Any]) -> Settings:
    """The settings a run used (as stored in the ledger), with this command's overrides."""
    data: dict[str, Any] = base.model_dump()
    if stored:
        saved = json.loads(stored)
        data.update({k: v for k, v in saved.items() if k in Settings.model_fields})
    data.update({k: v for k, v in overrides.items() if v is not None})
    data.update(force=False, limit=None)
    return Settings.model_validate(data)
