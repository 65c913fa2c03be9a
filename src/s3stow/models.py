"""Typed values passed between the pipeline stages.

discover -> ``SourceFile`` / ``Skipped``; plan keys -> ``PlannedUpload`` /
``Refused`` / ``Duplicate``; compare -> ``Decision``; transfer -> ``UploadResult``;
report -> ``RunSummary``; a run's id (``new_run_id``), an upload's or a restore's.
All are frozen dataclasses: a stage never mutates what it received.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path


class Status(StrEnum):
    """Ledger status of one item."""

    PLANNED = "planned"
    UPLOADING = "uploading"
    DONE = "done"
    FAILED = "failed"
    CHANGED = "changed"
    SKIPPED = "skipped"


class Reason(StrEnum):
    """Why the compare stage decided what it did."""

    NEW = "new"
    CHANGED = "changed"
    FORCED = "forced"
    RETRY = "retry"
    RESUME = "resume"
    LEDGER_DONE = "ledger-done"
    REMOTE_MATCH = "remote-match"
    NO_CLOBBER = "no-clobber"
    DEDUPLICATED = "deduplicated"  # content-addressed key another file of the run has
    LIMIT = "limit"  # not started: the run's --limit was reached
    # restore: a local file is at the destination; the object is archived (Glacier)
    LOCAL_EXISTS = "local-exists"
    LOCAL_MATCH = "local-match"
    ARCHIVED = "archived"


@dataclass(frozen=True, slots=True)
class Source:
    """A source root given to a run, and the group its files count under.

    With ``skip`` set, the root is walked only to name what the run leaves out:
    every file under it is ``Skipped`` with that reason (class ``Layout``).
    """

    path: Path
    group: str = ""
    skip: str | None = None


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A regular file found by discovery."""

    path: Path
    rel_path: str  # POSIX separators, relative to the source root
    size: int
    mtime_ns: int
    root: Path
    group: str = ""
    # discovery's own ``stat`` of the file (``None`` where the file came from elsewhere):
    # the upload takes the file's identity from it (``transfer.context.open_identity``)
    found: os.stat_result | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A path discovery could not or would not upload, and why."""

    path: Path
    reason: str
    error_class: str = "SourceError"


@dataclass(frozen=True, slots=True)
class PlannedUpload:
    """A source file with the object key it will have."""

    source: SourceFile
    bucket: str
    key: str


@dataclass(frozen=True, slots=True)
class Refused:
    """A selected file that cannot be uploaded (unsafe key, key collision), and why."""

    source: SourceFile
    key: str
    error_class: str
    reason: str

    def result(self, bucket: str) -> UploadResult:
        """The failed result that reports it."""
        return UploadResult(
            self.source.path,
            bucket,
            self.key,
            Status.FAILED,
            size=self.source.size,
            error_class=self.error_class,
            error=self.reason,
        )


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A file whose content-addressed key another file of the run already has."""

    source: SourceFile
    key: str
    first: str

    def result(self, bucket: str) -> UploadResult:
        """The skipped result that reports it."""
        return UploadResult(
            self.source.path,
            bucket,
            self.key,
            Status.SKIPPED,
            size=self.source.size,
            reason=Reason.DEDUPLICATED,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The compare stage's verdict on one planned upload."""

    item: PlannedUpload
    upload: bool
    reason: Reason


@dataclass(frozen=True, slots=True)
class PartRecord:
    """One completed multipart part."""

    number: int
    etag: str
    checksum: str | None
    size: int
    crc: int | None = None  # integer CRC for full-object combination


@dataclass(frozen=True, slots=True)
class UploadResult:
    """The outcome of one file's transfer."""

    path: Path
    bucket: str
    key: str
    status: Status
    size: int = 0
    etag: str | None = None
    checksum: str | None = None
    checksum_algorithm: str | None = None
    version_id: str | None = None
    error_class: str | None = None
    error: str | None = None
    attempts: int = 1
    bytes_sent: int = 0
    reason: Reason | None = None
    tier: str | None = None  # what proved the bytes (restore): checksum, etag-md5, ...

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


@dataclass(slots=True)
class RunSummary:
    """Totals of one run, built by the reporter."""

    run_id: str
    files: int = 0
    uploaded: int = 0
    skipped: int = 0
    failed: int = 0
    changed: int = 0
    bytes_uploaded: int = 0  # sent by this run and acknowledged by S3 (parts as they complete)
    bytes_total: int = 0  # the size of every file the run considered
    bytes_resumed: int = 0  # parts an earlier, interrupted run sent (not sent again)
    elapsed: float = 0.0
    interrupted: bool = False
    fatal: str | None = None
    failures: list[UploadResult] = field(default_factory=list)
    would_upload: list[Decision] = field(default_factory=list)
    # skipped files by why (special file, symlink, layout, deduplicated); the
    # files selection did not take (--include, sizes, ages, extensions) apart
    skip_reasons: dict[str, int] = field(default_factory=dict)
    not_selected: int = 0
    not_started: int = 0  # left for the next run by --limit
    # False: an interrupted (or failed) run stopped walking its sources before their end, so
    # files it never found are left too; None: not known (a restore's listing)
    walk_complete: bool | None = None
    groups: dict[str, dict[str, int]] = field(default_factory=dict)
    transient_errors: int = 0  # 5xx/throttling/connection errors seen (botocore retried)
    throttled: int = 0  # throttling responses (each may halve concurrency)
    concurrency: int = 0  # the request limit at the end (AIMD, growth by throughput)
    concurrency_peak: int = 0  # the most requests in flight at once

    def _group(self, group: str) -> dict[str, int]:
        return self.groups.setdefault(
            group or "(none)",
            {"files": 0, "uploaded": 0, "skipped": 0, "failed": 0, "bytes_uploaded": 0},
        )

    def count_group(self, group: str, outcome: str) -> None:
        """Count one file's outcome (uploaded/skipped/failed) under its group."""
        counters = self._group(group)
        counters["files"] += 1
        counters[outcome] += 1

    def add_sent(self, group: str, count: int) -> None:
        """Count ``count`` bytes this run sent for files of ``group``."""
        if count:
            self._group(group)["bytes_uploaded"] += count
            self.bytes_uploaded += count

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.changed == 0 and not self.fatal and not self.interrupted

    def _outcomes(self) -> int:
        """The files found that have an outcome, or were left by ``--limit``."""
        return self.uploaded + self.skipped + self.failed + self.changed + self.not_started

    @property
    def unfinished(self) -> int:
        """Files found that an interrupted (or stopped) run left without an outcome: never
        started, or stopped mid-way (their parts or ranges kept); the same command
        continues them."""
        return max(0, self.files - self._outcomes()) if self.interrupted or self.fatal else 0

    def totals(self) -> dict[str, object]:
        """The counters as a JSON-ready dict (ledger ``runs.summary``, --json)."""
        rate = self.bytes_uploaded / self.elapsed if self.elapsed else 0.0
        return {
            "run_id": self.run_id,
            "files": self.files,
            "uploaded": self.uploaded,
            "skipped": self.skipped,
            "failed": self.failed,
            "changed": self.changed,
            "skip_reasons": self.skip_reasons,
            "not_selected": self.not_selected,
            "not_started": self.not_started,
            "unfinished": self.unfinished,
            "walk_complete": self.walk_complete,
            "bytes_uploaded": self.bytes_uploaded,
            "bytes_resumed": self.bytes_resumed,
            "bytes_total": self.bytes_total,
            "elapsed": round(self.elapsed, 3),
            "throughput_bytes_per_s": round(rate, 1),
            "interrupted": self.interrupted,
            "fatal": self.fatal,
            "transient_errors": self.transient_errors,
            "throttled": self.throttled,
            "concurrency": self.concurrency,
            "concurrency_peak": self.concurrency_peak,
            "groups": self.groups,
        }


@dataclass(frozen=True, slots=True)
class Target:
    """A parsed ``s3://bucket/prefix`` destination."""

    bucket: str
    prefix: str  # "" or ending with "/"

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


# The error class of a file the layout leaves out (outside every folder type).
LAYOUT = "Layout"
# Skips that are no failure, by error class: counted and named under -v with this reason.
INFORMATIONAL_SKIPS = {
    "Symlink": "symlink",
    "SpecialFile": "special file",
    LAYOUT: "outside the layout",
}


def new_run_id() -> str:
    """A run's id: its UTC start to the second and six random hex digits
    (``20261203T081500Z-a1b2c3``). Here, not in the upload's engine, so a restore
    does not import the upload's modules for it."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + os.urandom(3).hex()
