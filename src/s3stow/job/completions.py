"""Completing and restarting split uploads in SQL (``job_uploads``).

When every part of an upload is done, one worker claims its completion (``claim_work``:
state ``completing``, leased, the upload's version bumped: the completer's fencing
token); if it dies, the lease expires and another worker claims it. ``finish`` records
the outcome on the upload and on its item (compare-and-set on both versions) with the
item's ledger row, in one transaction. An upload that vanished in S3 is claimed for a
restart (``request_restart``: state ``restarting``, leased), and ``restarted`` swaps in
the new upload id and sets every part pending again; after ``max_restarts`` the caller
fails it. ``fail`` fails an active upload and its item, whoever detects the reason,
and leaves the upload id to abort (``orphans.py``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import Connection, case, exists, func, select, update

from s3stow.job.db import JobDatabase
from s3stow.job.orphans import Orphans
from s3stow.job.rows import (
    ACTIVE,
    ITEMS,
    PARTS,
    UPLOADS,
    DonePart,
    SplitFile,
    UploadWork,
    free_parts,
    holds,
    lock_item,
    lock_upload,
    split_files,
)  # fmt: skip
from s3stow.ledger.rows import ItemRecord, write_records
from s3stow.ledger.sqlalchemy_backend import SqlAlchemySession


class Completions:
    """The completions and restarts of one job's split uploads."""

    def __init__(self, db: JobDatabase, job: str, orphans: Orphans) -> None:
        self.db = db
        self.job = job
        self.orphans = orphans

    def claim_work(self, worker: str, *, lease: float) -> UploadWork | None:
        """One upload to complete (every part done, or its completer's lease expired) or
        to restart (its restarter's lease expired); first any this worker holds."""
        unfinished = exists().where(PARTS.c.item_id == UPLOADS.c.item_id, PARTS.c.state != "done")
        ready = ((UPLOADS.c.state == "parts") & ~unfinished) | (
            UPLOADS.c.state.in_(["completing", "restarting"]) & (UPLOADS.c.lease_until < func.now())
        )
        mine = UPLOADS.c.state.in_(["completing", "restarting"]) & (UPLOADS.c.lease_owner == worker)

        def step(conn: Connection) -> UploadWork | None:
            item_id = conn.execute(
                select(UPLOADS.c.item_id).where(UPLOADS.c.job == self.job, mine).limit(1)
            ).scalar()
            if item_id is None:
                item_id = conn.execute(
                    select(UPLOADS.c.item_id)
                    .where(UPLOADS.c.job == self.job, ready)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).scalar()
                if item_id is None:
                    return None
                conn.execute(
                    update(UPLOADS)
                    .where(UPLOADS.c.item_id == item_id)
                    .values(
                        state=case((UPLOADS.c.state == "parts", "completing"),
                                   else_=UPLOADS.c.state),
                        lease_owner=worker,
                        lease_until=func.now() + timedelta(seconds=lease),
                        version=UPLOADS.c.version + 1,
                    )
                )  # fmt: skip
            file = split_files(conn, {item_id})[item_id]
            state = conn.execute(select(UPLOADS.c.state).where(UPLOADS.c.item_id == item_id))
            if state.scalar() == "restarting":
                return UploadWork("restart", file, [])
            parts = [
                DonePart(*row)
                for row in conn.execute(
                    select(PARTS.c.number, PARTS.c.etag, PARTS.c.checksum, PARTS.c.length)
                    .where(PARTS.c.item_id == item_id)
                    .order_by(PARTS.c.number)
                )
            ]
            return UploadWork("complete", file, parts)

        return self.db.run(step, what="claim a completion")

    def request_restart(
        self, worker: str, file: SplitFile, *, lease: float, max_restarts: int
    ) -> UploadWork | str:
        """``file``'s upload vanished: claim its restart (an ``UploadWork``), or
        ``exhausted`` (it vanished ``max_restarts`` times: fail it) or ``lost`` (it is
        not that upload any more, or another worker is restarting it)."""

        def step(conn: Connection) -> UploadWork | str:
            upload = lock_upload(conn, file.item_id)
            if upload is None or upload.upload_id != file.upload_id:
                return "lost"
            mine = upload.lease_owner == worker
            if upload.state == "restarting" and mine:
                return self._work(conn, file.item_id, "restart")  # a replay
            if not (upload.state == "parts" or (upload.state == "completing" and mine)):
                return "lost"
            if upload.restarts >= max_restarts:
                return "exhausted"
            conn.execute(
                update(UPLOADS)
                .where(UPLOADS.c.item_id == file.item_id)
                .values(state="restarting", lease_owner=worker,
                        lease_until=func.now() + timedelta(seconds=lease),
                        version=upload.version + 1)
            )  # fmt: skip
            return self._work(conn, file.item_id, "restart")

        return self.db.run(step, what="claim a restart")

    def _work(self, conn: Connection, item_id: int, kind: str) -> UploadWork:
        return UploadWork(kind, split_files(conn, {item_id})[item_id], [])

    def restarted(self, worker: str, file: SplitFile, *, upload_id: str) -> bool:
        """Replace the vanished upload by ``upload_id`` and send every part again; False
        when ``worker`` no longer holds the restart (the caller orphans ``upload_id``)."""

        def step(conn: Connection) -> bool:
            upload = lock_upload(conn, file.item_id)
            if not holds(upload, worker, file.version, "restarting"):
                return upload is not None and upload.upload_id == upload_id
            conn.execute(
                update(UPLOADS)
                .where(UPLOADS.c.item_id == file.item_id)
                .values(upload_id=upload_id, state="parts", restarts=upload.restarts + 1,
                        lease_owner=None, lease_until=None, version=file.version + 1)
            )  # fmt: skip
            conn.execute(
                update(PARTS)
                .where(PARTS.c.item_id == file.item_id)
                .values(state="pending", etag=None, checksum=None, done_by=None,
                        lease_owner=None, lease_until=None, attempts=0, error=None,
                        version=PARTS.c.version + 1)
            )  # fmt: skip
            return True

        return self.db.run(step, what="restart an upload")

    def finish(
        self,
        worker: str,
        file: SplitFile,
        *,
        ok: bool,
        error_class: str | None,
        error: str | None,
        record: ItemRecord | None,
    ) -> bool:
        """Record a completion this worker claimed (``file.version``): the upload and its
        item done or failed, with the ledger row. False when the claim or the item moved
        on: nothing is recorded (a failed upload is orphaned all the same)."""
        state = "done" if ok else "failed"

        def step(conn: Connection) -> bool:
            upload = lock_upload(conn, file.item_id)
            if upload is None or upload.upload_id != file.upload_id:
                return False
            if not holds(upload, worker, file.version, "completing"):
                replayed = (upload.state, upload.version, upload.lease_owner)
                return replayed == (state, file.version + 1, worker)  # the first try committed
            conn.execute(
                update(UPLOADS)
                .where(UPLOADS.c.item_id == file.item_id)
                .values(state=state, error=error, lease_until=None, version=file.version + 1)
            )  # lease_owner stays: who finished it
            if not ok:
                self.orphans.add_in(conn, file.upload_id, file.key, error or "failed")
            return self._finish_item(conn, worker, file, state, error_class, error, record)

        return self.db.run(step, what="record a completion")

    def _finish_item(
        self,
        conn: Connection,
        worker: str,
        file: SplitFile,
        state: str,
        error_class: str | None,
        error: str | None,
        record: ItemRecord | None,
    ) -> bool:
        item = lock_item(conn, file.item_id)
        if item is None or (item.state, item.version) != ("split", file.item_version):
            return False  # re-planned meanwhile: its upload was not this file's any more
        conn.execute(
            update(ITEMS)
            .where(ITEMS.c.id == file.item_id)
            .values(state=state, error_class=error_class, error=error, done_by=worker,
                    version=file.item_version + 1)
        )  # fmt: skip
        if record is not None:
            write_records(SqlAlchemySession(conn), [record])
        return True

    def unclaim(self, worker: str, file: SplitFile) -> None:
        """Hand a completion back after a transient failure (any worker may retry it)."""
        statement = (
            update(UPLOADS)
            .where(
                UPLOADS.c.item_id == file.item_id,
                UPLOADS.c.version == file.version,
                UPLOADS.c.lease_owner == worker,
                UPLOADS.c.state == "completing",
            )
            .values(state="parts", lease_owner=None, lease_until=None, version=file.version + 1)
        )
        self.db.run(lambda conn: conn.execute(statement), what="hand back a completion")

    def fail(
        self,
        worker: str,
        file: SplitFile,
        *,
        error_class: str,
        error: str,
        record: ItemRecord | None,
    ) -> bool:
        """Fail ``file``'s upload (whoever holds it: the file changed, a part kept failing,
        it kept vanishing) and its item; the upload id is orphaned. False when that upload
        is no longer active (finished, failed or replaced already)."""

        def step(conn: Connection) -> bool:
            upload = lock_upload(conn, file.item_id)
            if upload is None or upload.upload_id != file.upload_id:
                return False
            if upload.state not in ACTIVE:
                return (upload.state, upload.lease_owner) == ("failed", worker)
            conn.execute(
                update(UPLOADS)
                .where(UPLOADS.c.item_id == file.item_id)
                .values(state="failed", error=error, lease_owner=worker, lease_until=None,
                        version=upload.version + 1)
            )  # fmt: skip
            self.orphans.add_in(conn, file.upload_id, file.key, error)
            free_parts(conn, [file.item_id])
            current = replace(file, item_version=upload.item_version)
            return self._finish_item(conn, worker, current, "failed", error_class, error, record)

        return self.db.run(step, what="fail an upload")
