"""Multipart uploads left to abort: ``job_orphans``.

An upload id becomes an orphan in the same transaction that stops it being the
upload of its file (the file changed or was re-planned, the upload failed, a newer
split or restart replaced it, or its creator lost the item before recording it), so
no upload is forgotten while it still holds parts in S3. Workers claim orphans before
any other work (``FOR UPDATE SKIP LOCKED``, leased), abort them (``NoSuchUpload``
counts as aborted: completed, aborted or expired already) and delete the row. An
abort that keeps failing is given up after ``max_attempts`` with a warning naming the
upload id (a bucket lifecycle rule for incomplete uploads then removes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from s3stow.job import schema
from s3stow.job.db import JobDatabase

ORPHANS = schema.job_orphans


@dataclass(frozen=True, slots=True)
class Orphan:
    upload_id: str
    key: str
    reason: str


class Orphans:
    """The uploads of one job that are left to abort."""

    def __init__(self, db: JobDatabase, job: str) -> None:
        self.db = db
        self.job = job

    def add_in(self, conn: Connection, upload_id: str, key: str, reason: str) -> None:
        """Within the caller's transaction (the one that orphans the upload)."""
        conn.execute(
            pg_insert(ORPHANS)
            .values(upload_id=upload_id, job=self.job, key=key, reason=reason[:500])
            .on_conflict_do_nothing()
        )

    def add(self, upload_id: str, key: str, reason: str) -> None:
        self.db.run(lambda conn: self.add_in(conn, upload_id, key, reason), what="orphan upload")

    def claim(self, worker: str, *, lease: float, limit: int = 8) -> list[Orphan]:
        free = ORPHANS.c.lease_owner.is_(None) | (ORPHANS.c.lease_until < func.now())
        chosen = (
            select(ORPHANS.c.upload_id)
            .where(ORPHANS.c.job == self.job, free)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(ORPHANS)
            .where(ORPHANS.c.upload_id.in_(chosen.scalar_subquery()))
            .values(
                lease_owner=worker,
                lease_until=func.now() + timedelta(seconds=lease),
                attempts=ORPHANS.c.attempts + 1,
            )
            .returning(ORPHANS.c.upload_id, ORPHANS.c.key, ORPHANS.c.reason)
        )
        rows = self.db.run(lambda conn: conn.execute(statement).all(), what="claim orphans")
        return [Orphan(*row) for row in rows]

    def aborted(self, upload_id: str) -> None:
        statement = delete(ORPHANS).where(ORPHANS.c.upload_id == upload_id)
        self.db.run(lambda conn: conn.execute(statement), what="forget an aborted upload")

    def failed(self, upload_id: str, *, max_attempts: int, retry_after: float) -> bool:
        """An abort failed: try again after ``retry_after`` s; True when given up."""

        def step(conn: Connection) -> bool:
            attempts = conn.execute(
                select(ORPHANS.c.attempts).where(ORPHANS.c.upload_id == upload_id)
            ).scalar()
            if attempts is None or attempts >= max_attempts:
                conn.execute(delete(ORPHANS).where(ORPHANS.c.upload_id == upload_id))
                return attempts is not None
            conn.execute(
                update(ORPHANS)
                .where(ORPHANS.c.upload_id == upload_id)
                .values(lease_until=func.now() + timedelta(seconds=retry_after))
            )
            return False

        return self.db.run(step, what="postpone an abort")

    def left(self, conn: Connection) -> int:
        count = select(func.count()).where(ORPHANS.c.job == self.job)
        return int(conn.execute(count).scalar() or 0)
