"""What ``s3stow retry`` re-attempts, and with which settings.

From the ledger: every item whose latest status is failed or changed (of all
runs, or of one), grouped by the run that last tried it, so each group is
retried with the settings that run used; an item a retry found without its local
file is recorded ``SourceGone`` (reported that once) and left out of the retries after
it while the file stays gone. From a failures file or an aws s3 log
(``failures.read_failures``): each named file, resolved against ``base_dir``,
its key planned again from the logged one by the same planner as ``upload``
(``--strip-prefix``, ``--prefix``, layouts, templates). Files that are gone and
keys that are still unsafe become failed results with a clear reason; they are
reported, never uploaded. So are the failures no re-sending can fix, with the
reason they were recorded with: a file that never had a key of its own (a name
that is not UTF-8, a key another file took).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s3stow.config import SETTING_NAMES, Settings
from s3stow.errors import ConfigError
from s3stow.ledger import Ledger, LedgerEntry
from s3stow.logs import REDACTED
from s3stow.models import PlannedUpload, SourceFile, Status, Target, UploadResult
from s3stow.plan.failures import FailedItem, resolve_local
from s3stow.plan.keys import UnsafeKeyError, is_local_key, normalise_prefix, validate_bucket
from s3stow.plan.planner import Duplicate, Planner, Refused
from s3stow.plan.templates import sanitise_key

RETRY_GROUP = "retry"
# A retry from the ledger found the local file gone: reported that once, then left out
# of later retries (and of ``retry --list``) while it stays gone; ``retry --forget``
# drops it from the ledger.
GONE = "SourceGone"
# Failures a failures file names with a key that is not the file's own to send.
UNFIXABLE = frozenset({"InvalidName", "KeyCollision"})
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
    "source missing": ("SourceMissing", "FileNotFoundError", GONE),
    "source changed": ("SourceChanged",),
    "source unreadable": ("PermissionDenied", "ReadError", "SourceError", "PermissionError"),
    "key invalid": ("UnsafeKey", "KeyCollision", "InvalidName"),
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


def _source_file(path: Path, *, rel_path: str | None = None) -> SourceFile | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path):
        return None
    rel = rel_path if rel_path is not None else path.name
    return SourceFile(path, rel, info.st_size, info.st_mtime_ns, path.parent, RETRY_GROUP)


def _refuse(path: Path, bucket: str, key: str, error_class: str, reason: str) -> UploadResult:
    return UploadResult(path, bucket, key, Status.FAILED, error_class=error_class, error=reason)


_GONE_NOTE = (
    " any more: reported this once, left out of later retries while it stays gone "
    "(`s3stow retry --forget --error-class SourceGone` drops it from the ledger; an "
    "upload of the file, back in place, sends it)"
)


def _add(batch: RetryBatch, path: Path, key: str) -> None:
    try:
        safe = sanitise_key(key)
    except UnsafeKeyError as exc:
        batch.refused.append(
            _refuse(
                path,
                batch.bucket,
                key,
                "UnsafeKey",
                # the ledger's keys are its runs': --strip-prefix and --prefix take a --from
                f"{exc}; rename the file, or upload it again with another --key-template",
            )
        )
        return
    source = _source_file(path)
    if source is None:
        batch.refused.append(
            _refuse(path, batch.bucket, safe, GONE, f"local file {path} does not exist{_GONE_NOTE}")
        )
        return
    batch.items.append(PlannedUpload(source, batch.bucket, safe))


def failed_items(
    ledger: Ledger, *, run_ids: Sequence[str] | None, error_classes: Sequence[str] | None
) -> Iterator[LedgerEntry]:
    """The failed/changed items ``retry``, ``retry --list`` and ``retry --forget`` take:
    of the runs ``run_ids`` (a watch's batches) and ``error_classes``, when given."""
    for run_id in run_ids if run_ids is not None else [None]:
        for entry in ledger.items(statuses=[Status.FAILED, Status.CHANGED], run_id=run_id):
            if error_classes is None or entry.error_class in error_classes:
                yield entry


def still_gone(entry: LedgerEntry) -> bool:
    """A ``SourceGone`` item whose local file is still not there (one ``stat``)."""
    return entry.error_class == GONE and _source_file(Path(entry.source_path)) is None


def from_ledger(
    ledger: Ledger,
    *,
    run_ids: Sequence[str] | None,
    overrides: dict[str, Any],
    base: Settings,
    error_classes: Sequence[str] | None = None,
    left_out: list[LedgerEntry] | None = None,
) -> list[RetryBatch]:
    """Failed/changed ledger items (of the runs ``run_ids``, when given: a watch's
    batches; of ``error_classes``, when given), grouped by the run (and bucket) that
    last tried them. A ``SourceGone`` item whose file is still gone is not retried
    (unless ``error_classes`` names it): it goes to ``left_out``."""
    grouped: dict[tuple[str, str], list[LedgerEntry]] = defaultdict(list)
    for entry in failed_items(ledger, run_ids=run_ids, error_classes=error_classes):
        if not entry.key:
            continue
        if error_classes is None and still_gone(entry):
            if left_out is not None:
                left_out.append(entry)
            continue
        grouped[(entry.run_id, entry.bucket)].append(entry)
    batches = []
    for (source_run, bucket), entries in grouped.items():
        info = ledger.run_info(source_run)
        settings = run_settings(info["settings"] if info else None, base=base, overrides=overrides)
        batch = RetryBatch(bucket, settings, source_run=source_run)
        for entry in entries:
            path = Path(entry.source_path)
            if is_local_key(entry.key):  # it never had a key: sending cannot fix it
                batch.refused.append(
                    _unfixable(
                        path, bucket, error_class=entry.error_class, message=entry.error_message
                    )
                )
            else:
                _add(batch, path, entry.key)
        batches.append(batch)
    return batches


_UNFIXABLE_NOTE = " (retry cannot fix this: fix it, then run the upload again)"


def _unfixable(
    path: Path, bucket: str, *, error_class: str | None, message: str | None
) -> UploadResult:
    reason = message or "failed before it had a key"
    if not reason.endswith(_UNFIXABLE_NOTE):
        reason += _UNFIXABLE_NOTE
    return _refuse(path, bucket, "", error_class or "SourceError", reason)


def from_failures(
    items: Iterable[FailedItem],
    *,
    settings: Settings,
    base_dir: Path | None,
    new_prefix: str | None,
    bucket: str | None,
) -> list[RetryBatch]:
    """Items named by a failures file or log, grouped by destination bucket.

    Each key is planned again as ``upload`` plans one, with the settings' key options
    (``strip_prefix``, ``layout``, ``key_template``, ...) and ``new_prefix`` as the
    destination prefix, from the logged key as the file's relative path: with none of
    them a key stays as it was logged.
    """
    batches: dict[str, RetryBatch] = {}
    planners: dict[str, Planner] = {}
    hint = " (relative paths are resolved against --base-dir" + (
        f" {base_dir})" if base_dir else ", which was not given)"
    )
    unselected = settings.replace(**_NO_SELECTION)  # every named item is retried
    prefix = retry_prefix(new_prefix)
    for item in items:
        target_bucket = validate_bucket(bucket or item.bucket)
        batch = batches.setdefault(target_bucket, RetryBatch(target_bucket, settings))
        local = resolve_local(item.local, base_dir=base_dir)
        if not item.key or item.error_class in UNFIXABLE:
            message = item.error.partition("] ")[2] if item.error.startswith("[") else item.error
            batch.refused.append(
                _unfixable(local, target_bucket, error_class=item.error_class, message=message)
            )
            continue
        if target_bucket not in planners:
            planners[target_bucket] = Planner(unselected, Target(target_bucket, prefix))
        _plan(batch, planners[target_bucket], local, item.key, missing_hint=hint)
    return list(batches.values())


def retry_prefix(given: str | None) -> str:
    """``retry --prefix``, checked as a URL's prefix is (``a//b``, ``/a`` refused: exit 2)."""
    if not given:
        return ""
    return normalise_prefix(given, named=f"--prefix {given!r}", write="--prefix {}")


_NO_SELECTION: dict[str, Any] = {
    "include": [],
    "exclude": [],
    "min_size": None,
    "max_size": None,
    "newer_than": None,
    "older_than": None,
    "include_types": [],
    "exclude_types": [],
}


def _plan(batch: RetryBatch, planner: Planner, path: Path, key: str, *, missing_hint: str) -> None:
    source = _source_file(path, rel_path=key)
    # A key is checked even for a file that is gone (an unsafe key is the first thing
    # to repair), unless planning it needs the file's content.
    stub = source or SourceFile(path, key, 0, 0, path.parent, RETRY_GROUP)
    planned: PlannedUpload | Refused | Duplicate | None = (
        planner.plan(stub) if source or not planner.template.reads_content else None
    )
    if source is not None and isinstance(planned, PlannedUpload):
        _, others = planner.claims.settle([planned], {})  # keys taken earlier in this retry
        planned = others[0] if others else planned
    if isinstance(planned, Refused):
        reason = planned.reason
        if planned.error_class == "UnsafeKey":
            reason += "; repair it with --strip-prefix/--prefix"
        batch.refused.append(_refuse(path, batch.bucket, planned.key, planned.error_class, reason))
    elif source is None:
        missing = f"local file {path} does not exist{missing_hint}"
        planned_key = planned.key if planned is not None else key
        batch.refused.append(_refuse(path, batch.bucket, planned_key, "SourceMissing", missing))
    elif isinstance(planned, PlannedUpload):
        batch.items.append(planned)
    elif isinstance(planned, Duplicate):  # its content goes up with the first file
        batch.refused.append(planned.result(batch.bucket))


def run_settings(stored: str | None, *, base: Settings, overrides: dict[str, Any]) -> Settings:
    """The settings a run used (as stored in the ledger), with this command's overrides."""
    data: dict[str, Any] = base.dump()
    given = {k: v for k, v in overrides.items() if v is not None}
    if stored:
        saved = json.loads(stored)
        for key, value in saved.items():
            if key not in SETTING_NAMES:
                continue
            if isinstance(value, str) and REDACTED in value:  # a secret the ledger did not keep
                if key == "endpoint_url" and key not in given and base.endpoint_url is None:
                    raise ConfigError(
                        "the run's endpoint URL held credentials, which the ledger does not keep",
                        hint="give --endpoint-url again",
                    )
                continue  # this command's own value stands
            data[key] = value
    data.update(given)
    data.update(force=False, limit=None)
    return Settings(**data)
