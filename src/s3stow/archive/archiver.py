"""``Archiver``: stream unarchived rows through the upload engine, write back URLs.

For each row: locate its file, check the file's MD5 against ``md5_sum`` (a
mismatch fails the row: the wrong bytes are never uploaded), render its key
from the row's fields (``created_at`` in UTC; the file's mtime when NULL,
reported) and hand it to ``Uploader.upload_planned``. ``archive_url`` is written
only for rows whose object the engine verified (uploaded now, or recorded done
in the ledger by an earlier run whose update was lost), ``batch_size`` rows per
transaction. Rows sharing one content (same key) share one upload. With
``cleanup_local``, a row's file is deleted after its URL is committed.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from s3stow.archive import DEFAULT_TEMPLATE
from s3stow.archive.locate import locate
from s3stow.archive.table import MediaRow, MediaTable
from s3stow.logs import warn_each
from s3stow.models import Decision, PlannedUpload, Reason, SourceFile, Status, Target, UploadResult
from s3stow.plan.collisions import KeyClaims
from s3stow.plan.keys import UnsafeKeyError
from s3stow.plan.templates import KeyTemplate
from s3stow.report.observer import Observer
from s3stow.transfer.engine import Uploader

log = logging.getLogger(__name__)
RECORD_FIELDS = frozenset({"created_at", "media_type", "id", "md5", "ext"})


@dataclass
class ArchiveReport:
    """What an archive run did, beyond the upload summary."""

    rows: int = 0
    urls_written: int = 0
    transactions: int = 0
    missing: list[str] = field(default_factory=list)
    md5_mismatch: list[str] = field(default_factory=list)
    no_created_at: list[str] = field(default_factory=list)
    cleaned: int = 0


@dataclass
class _Pending:
    row_ids: list[str]
    paths: list[Path]


class _WriteBack(Observer):
    """Collects verified keys and commits their rows' archive_url in batches."""

    def __init__(self, archiver: Archiver) -> None:
        self.archiver = archiver
        self.buffer: list[tuple[str, str, Path]] = []

    def on_decision(self, decision: Decision) -> None:
        if decision.reason == Reason.LEDGER_DONE:  # done earlier, update lost: finish it
            self._done(decision.item.key)

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        if result.status == Status.DONE:
            self._done(result.key)

    def _done(self, key: str) -> None:
        pending = self.archiver.pending.pop(key, None)
        if pending is None:
            return
        url = f"s3://{self.archiver.target.bucket}/{key}"
        self.buffer.extend((i, url, p) for i, p in zip(pending.row_ids, pending.paths, strict=True))
        if len(self.buffer) >= self.archiver.batch_size:
            self.flush()

    def flush(self) -> None:
        if not self.buffer or self.archiver.uploader.settings.dry_run:
            self.buffer.clear()
            return
        batch, self.buffer = self.buffer, []
        self.archiver.table.set_archive_urls([(i, u) for i, u, _ in batch])
        self.archiver.report.urls_written += len(batch)
        self.archiver.report.transactions += 1
        if self.archiver.cleanup_local:
            for _, _, path in batch:
                try:
                    os.remove(path)
                    self.archiver.report.cleaned += 1
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    warn_each(
                        log,
                        "cleanup-failed",
                        "could not delete %s after archiving: %s",
                        path,
                        exc,
                        example=str(path),
                        many="files could not be deleted after archiving (they stay; delete "
                        "them by hand)",
                    )

    def on_finish(self, summary: object) -> None:
        self.flush()


class Archiver:
    """Archives the rows of a media table into ``target``."""

    def __init__(
        self,
        table: MediaTable,
        uploader: Uploader,
        target: Target,
        *,
        media_root: Path,
        key_template: str = DEFAULT_TEMPLATE,
        batch_size: int = 50,
        cleanup_local: bool = False,
    ) -> None:
        self.table = table
        self.uploader = uploader
        self.target = target
        self.media_root = media_root
        self.template = KeyTemplate.build(key_template, target.prefix, record_fields=RECORD_FIELDS)
        self.batch_size = max(1, batch_size)
        self.cleanup_local = cleanup_local
        self.pending: dict[str, _Pending] = {}
        self.report = ArchiveReport()
        self.writer = _WriteBack(self)
        uploader.add_observer(self.writer)

    def run(self, *, limit: int | None = None, force: bool = False) -> ArchiveReport:
        rows = self.table.rows(archived=None if force else False, limit=limit)
        claims = KeyClaims(content_addressed=self.template.reads_content)  # {md5}: duplicates
        summary = self.uploader.upload_planned(
            self._items(rows), self.target, command="archive", claims=claims
        )
        self.writer.flush()
        self.summary = summary
        return self.report

    def _items(self, rows: Iterator[MediaRow]) -> Iterator[PlannedUpload | UploadResult]:
        for row in rows:
            self.report.rows += 1
            item = self._plan(row)
            if item is not None:
                yield item

    def _plan(self, row: MediaRow) -> PlannedUpload | UploadResult | None:
        found = locate(row, media_root=self.media_root)
        if found is None:
            self.report.missing.append(row.id)
            return UploadResult(
                Path(row.local_file_path or row.md5_sum or row.id),
                self.target.bucket,
                "",
                Status.FAILED,
                error_class="SourceMissing",
                error=f"row {row.id}: no local file found (tried "
                f"local_file_path, md5+mime, md5.* under {self.media_root})",
            )
        info = found.path.stat()
        source = SourceFile(
            found.path,
            found.path.name,
            info.st_size,
            info.st_mtime_ns,
            found.path.parent,
            row.media_type or "(none)",
        )
        md5 = _md5(found.path)
        if row.md5_sum and md5 != row.md5_sum.lower():
            self.report.md5_mismatch.append(row.id)
            return UploadResult(
                found.path,
                self.target.bucket,
                "",
                Status.FAILED,
                size=info.st_size,
                error_class="Md5Mismatch",
                error=f"row {row.id}: file MD5 {md5} != md5_sum {row.md5_sum}",
            )
        created = row.created_at
        if created is None:
            self.report.no_created_at.append(row.id)
            created = datetime.fromtimestamp(info.st_mtime_ns / 1e9, UTC)
        record = {
            "created_at": created,
            "media_type": row.media_type or "",
            "id": row.id,
            "md5": md5,
            "ext": found.ext,
        }
        try:
            key = self.template.render(source, record=record)
        except UnsafeKeyError as exc:
            return UploadResult(
                found.path,
                self.target.bucket,
                "",
                Status.FAILED,
                error_class="UnsafeKey",
                error=f"row {row.id}: {exc}",
            )
        pending = self.pending.get(key)
        if pending is not None:  # same content as a row already queued: one upload
            pending.row_ids.append(row.id)
            pending.paths.append(found.path)
            return None
        self.pending[key] = _Pending([row.id], [found.path])
        return PlannedUpload(source, self.target.bucket, key)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()
