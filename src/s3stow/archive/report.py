"""``archive stats`` and ``archive verify``: what the media table says, proven.

Statistics are aggregated in SQL (total, archived and not archived, overall and
by media type), shaped like the seed's "S3 Archive Statistics". Verification
HEADs archived rows: the object must exist, its size must equal the row's
``file_size``, and, when the ledger recorded a checksum for the key, S3's must
equal it; ``check_local`` also finds rows whose local file is gone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from s3stow.archive.locate import locate
from s3stow.archive.table import MediaRow, MediaTable
from s3stow.ledger import Ledger
from s3stow.store.base import ObjectStore


@dataclass(frozen=True, slots=True)
class TypeStats:
    media_type: str
    total: int
    archived: int

    @property
    def not_archived(self) -> int:
        return self.total - self.archived

    @property
    def percent(self) -> float:
        return 100.0 * self.archived / self.total if self.total else 0.0


def archive_stats(table: MediaTable) -> tuple[TypeStats, list[TypeStats]]:
    """Overall and per-type counts."""
    by_type = [TypeStats(t, n, a) for t, n, a in table.counts()]
    overall = TypeStats("all", sum(s.total for s in by_type), sum(s.archived for s in by_type))
    return overall, by_type


@dataclass
class VerifyReport:
    checked: int = 0
    ok: int = 0
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (id, class, detail)


def split_url(url: str) -> tuple[str, str] | None:
    if not url.startswith("s3://"):
        return None
    bucket, _, key = url[5:].partition("/")
    return (bucket, key) if bucket and key else None


def verify_archive(
    table: MediaTable,
    store: ObjectStore,
    *,
    ledger: Ledger | None,
    media_root: Path,
    verify_s3: bool,
    check_local: bool,
    limit: int | None,
) -> VerifyReport:
    report = VerifyReport()
    rows: Iterable[MediaRow] = table.rows(
        archived=True if verify_s3 and not check_local else None, limit=limit
    )
    for row in rows:
        report.checked += 1
        problem = False
        if check_local and locate(row, media_root=media_root) is None:
            report.problems.append((row.id, "local-missing", "no local file found"))
            problem = True
        if verify_s3 and row.archive_url:
            where = split_url(row.archive_url)
            if where is None:
                report.problems.append((row.id, "bad-url", row.archive_url))
                continue
            bucket, key = where
            info = store.head_object(bucket, key)
            if info is None:
                report.problems.append((row.id, "missing-in-s3", row.archive_url))
                continue
            if row.file_size is not None and info.size != row.file_size:
                report.problems.append(
                    (row.id, "size-mismatch", f"S3 {info.size} bytes, row {row.file_size}")
                )
                continue
            entry = ledger.lookup(bucket, [key]).get(key) if ledger else None
            if (
                entry
                and entry.checksum
                and info.checksum
                and info.checksum.split("-")[0] != entry.checksum.split("-")[0]
            ):
                report.problems.append(
                    (row.id, "checksum-mismatch", f"S3 {info.checksum}, ledger {entry.checksum}")
                )
                continue
        if not problem:
            report.ok += 1
    return report
