"""Part-level claiming in SQL: one large file's multipart upload shared by workers.

``open`` turns a claimed item into a split upload (its upload id, the file's identity,
one pending row per part) in the transaction that checks the opener still holds the
item at the version it claimed. Parts are claimed like items (``FOR UPDATE SKIP
LOCKED``, a lease renewed by the heartbeat, the version bumped) and recorded only
while the claim holds and the upload still has the id the part was sent to.
Completions and restarts are in ``completions.py``, uploads left to abort in
``orphans.py``. Every step may be replayed (``db.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, exists, func, insert, select, tuple_, update

from s3stow.job.completions import Completions
from s3stow.job.db import JobDatabase
from s3stow.job.orphans import Orphans
from s3stow.job.rows import (
    ACTIVE,
    ITEMS,
    PARTS,
    UPLOADS,
    Claimed,
    ClaimedPart,
    free_parts,
    holds,
    lock_item,
    lock_upload,
    split_files,
)  # fmt: skip
from s3stow.localfiles import FileIdentity, stored_ns


class SplitQueue:
    """The split uploads of one job."""

    def __init__(self, db: JobDatabase, job: str) -> None:
        self.db = db
        self.job = job
        self.orphans = Orphans(db, job)
        self.completions = Completions(db, job, self.orphans)

    def open(
        self,
        worker: str,
        item: Claimed,
        *,
        upload_id: str,
        part_size: int,
        ranges: Sequence[tuple[int, int, int]],
        identity: FileIdentity,
        checksum_algorithm: str | None,
    ) -> bool:
        """Split ``item`` (a ``Claimed``) if ``worker`` still holds it at its version;
        False when it does not (the caller orphans ``upload_id``)."""

        def step(conn: Connection) -> bool:
            upload = lock_upload(conn, item.id)
            row = lock_item(conn, item.id)
            if not holds(row, worker, item.version):
                return bool(
                    row is not None
                    and (row.state, row.version) == ("split", item.version + 1)
                    and upload is not None
                    and upload.upload_id == upload_id
                )  # True: a replay of a split that committed
            if upload is not None and upload.state in ACTIVE:
                self.orphans.add_in(conn, upload.upload_id, item.key, "replaced by a new split")
            values = {
                "job": self.job,
                "upload_id": upload_id,
                "part_size": part_size,
                "parts_total": len(ranges),
                "size": identity.size,
                "mtime_ns": stored_ns(identity.mtime_ns),
                "ctime_ns": None if identity.ctime_ns is None else stored_ns(identity.ctime_ns),
                "inode": identity.inode,
                "checksum_algorithm": checksum_algorithm,
                "state": "parts",
                "opened_by": worker,
                "lease_owner": None,
                "lease_until": None,
                "error": None,
                "restarts": 0,
                "item_version": item.version + 1,
            }
            if upload is None:
                conn.execute(insert(UPLOADS).values(item_id=item.id, version=0, **values))
            else:
                conn.execute(
                    update(UPLOADS)
                    .where(UPLOADS.c.item_id == item.id)
                    .values(version=upload.version + 1, **values)
                )
            conn.execute(delete(PARTS).where(PARTS.c.item_id == item.id))
            conn.execute(
                insert(PARTS),
                [
                    {"item_id": item.id, "number": number, "job": self.job, "offset": offset,
                     "length": length, "state": "pending", "attempts": 0, "version": 0}
                    for number, offset, length in ranges
                ],
            )  # fmt: skip
            conn.execute(
                update(ITEMS)
                .where(ITEMS.c.id == item.id)
                .values(state="split", lease_owner=None, lease_until=None, version=item.version + 1)
            )
            return True

        return self.db.run(step, what="split a file")

    # ---- parts ----------------------------------------------------------------------
    def claim_parts(self, worker: str, *, limit: int, lease: float) -> list[ClaimedPart]:
        """Parts this worker already holds, else pending parts (or parts whose lease
        expired) of uploads still taking parts."""
        open_upload = exists().where(
            UPLOADS.c.item_id == PARTS.c.item_id, UPLOADS.c.state == "parts"
        )
        claimable = (PARTS.c.state == "pending") | (
            (PARTS.c.state == "claimed") & (PARTS.c.lease_until < func.now())
        )
        chosen = (
            select(PARTS.c.item_id, PARTS.c.number)
            .where(PARTS.c.job == self.job, claimable, open_upload)
            .order_by(PARTS.c.item_id, PARTS.c.number)
            .limit(limit)
            .with_for_update(of=PARTS, skip_locked=True)
        )
        columns = (PARTS.c.item_id, PARTS.c.number, PARTS.c.offset, PARTS.c.length,
                   PARTS.c.version)  # fmt: skip
        statement = (
            update(PARTS)
            .where(tuple_(PARTS.c.item_id, PARTS.c.number).in_(chosen))
            .values(
                state="claimed",
                lease_owner=worker,
                lease_until=func.now() + timedelta(seconds=lease),
                attempts=PARTS.c.attempts + 1,
                version=PARTS.c.version + 1,
            )
            .returning(*columns)
        )
        held = select(*columns).where(
            PARTS.c.job == self.job,
            PARTS.c.state == "claimed",
            PARTS.c.lease_owner == worker,
            open_upload,
        )

        def step(conn: Connection) -> list[ClaimedPart]:
            rows = sorted(conn.execute(held).all() or conn.execute(statement).all())
            files = split_files(conn, {r[0] for r in rows})
            return [ClaimedPart(files[r[0]], *r[1:]) for r in rows if r[0] in files]

        return self.db.run(step, what="claim parts")

    def _part_step(self, conn: Connection, worker: str, part: ClaimedPart) -> tuple[Any, bool]:
        """(the part row, whether ``worker`` still holds it for the current upload)."""
        upload = lock_upload(conn, part.file.item_id, share=True)
        row = conn.execute(
            select(PARTS)
            .where(PARTS.c.item_id == part.file.item_id, PARTS.c.number == part.number)
            .with_for_update()
        ).first()
        current = (
            upload is not None
            and upload.upload_id == part.file.upload_id
            and upload.state == "parts"
        )
        return row, current and holds(row, worker, part.version)

    def part_done(self, worker: str, part: ClaimedPart, *, etag: str, checksum: str | None) -> bool:
        """Record a sent part; False when the part or its upload moved on (lost)."""

        def step(conn: Connection) -> bool:
            row, held = self._part_step(conn, worker, part)
            if not held:
                return row is not None and (row.state, row.version, row.done_by) == (
                    "done",
                    part.version + 1,
                    worker,
                )
            conn.execute(
                update(PARTS)
                .where(PARTS.c.item_id == part.file.item_id, PARTS.c.number == part.number)
                .values(state="done", etag=etag, checksum=checksum, done_by=worker,
                        lease_owner=None, lease_until=None, error=None,
                        version=part.version + 1)
            )  # fmt: skip
            return True

        return self.db.run(step, what="record a part")

    def part_failed(self, worker: str, part: ClaimedPart, *, error: str, max_attempts: int) -> str:
        """Give the part back: ``retry``, ``fail`` (it failed ``max_attempts`` times: the
        caller fails the upload) or ``lost``."""

        def step(conn: Connection) -> str:
            row, held = self._part_step(conn, worker, part)
            if not held:
                return "lost"
            conn.execute(
                update(PARTS)
                .where(PARTS.c.item_id == part.file.item_id, PARTS.c.number == part.number)
                .values(state="pending", lease_owner=None, lease_until=None, error=error,
                        version=part.version + 1)
            )  # fmt: skip
            return "fail" if row.attempts >= max_attempts else "retry"

        return self.db.run(step, what="give a part back")

    def abandon_replanned(self, conn: Connection, keys: Sequence[str]) -> None:
        """Within a plan's transaction: active uploads of these keys whose item was reset
        (the file changed) are abandoned and orphaned."""
        active = select(UPLOADS.c.item_id).where(
            UPLOADS.c.job == self.job, UPLOADS.c.state.in_(ACTIVE)
        )
        if conn.execute(active.limit(1)).first() is None:
            return  # the usual case: no split upload in flight, nothing to look up
        stale = ~((ITEMS.c.state == "split") & (ITEMS.c.version == UPLOADS.c.item_version))
        rows = conn.execute(
            select(UPLOADS.c.item_id, UPLOADS.c.upload_id, ITEMS.c.key)
            .join(ITEMS, ITEMS.c.id == UPLOADS.c.item_id)
            .where(ITEMS.c.job == self.job, ITEMS.c.key.in_(keys), UPLOADS.c.state.in_(ACTIVE),
                   stale)
            .with_for_update(of=UPLOADS)
        ).all()  # fmt: skip
        if not rows:
            return
        ids = [r.item_id for r in rows]
        conn.execute(
            update(UPLOADS)
            .where(UPLOADS.c.item_id.in_(ids))
            .values(state="abandoned", lease_owner=None, lease_until=None,
                    version=UPLOADS.c.version + 1, error="its file changed and was re-planned")
        )  # fmt: skip
        free_parts(conn, ids)
        for row in rows:
            self.orphans.add_in(conn, row.upload_id, row.key, "its file was re-planned")

    # ---- leases -----------------------------------------------------------------------
    def renew(self, conn: Connection, worker: str, lease: float) -> None:
        """Extend this worker's part, completion and restart leases (inside the heartbeat)."""
        until = func.now() + timedelta(seconds=lease)
        for table, states in ((PARTS, ["claimed"]), (UPLOADS, ["completing", "restarting"])):
            conn.execute(
                update(table)
                .where(
                    table.c.job == self.job,
                    table.c.lease_owner == worker,
                    table.c.state.in_(states),
                )
                .values(lease_until=until)
            )

    def release(self, conn: Connection, worker: str) -> None:
        """Give back unfinished part, completion and restart claims (a clean stop)."""
        mine = (PARTS.c.job == self.job) & (PARTS.c.lease_owner == worker)
        conn.execute(
            update(PARTS)
            .where(mine, PARTS.c.state == "claimed")
            .values(state="pending", lease_owner=None, lease_until=None,
                    version=PARTS.c.version + 1)
        )  # fmt: skip
        held = (UPLOADS.c.job == self.job) & (UPLOADS.c.lease_owner == worker)
        conn.execute(
            update(UPLOADS)
            .where(held, UPLOADS.c.state == "completing")
            .values(state="parts", lease_owner=None, lease_until=None,
                    version=UPLOADS.c.version + 1)
        )  # fmt: skip
        conn.execute(  # expired at once: another worker restarts it
            update(UPLOADS)
            .where(held, UPLOADS.c.state == "restarting")
            .values(lease_until=func.now() - timedelta(seconds=1))
        )

    def orphans_left(self, conn: Connection) -> int:
        return self.orphans.left(conn)

    def counts(self, conn: Connection) -> dict[str, Any]:
        def by_state(table: Any) -> dict[str, int]:
            rows = conn.execute(
                select(table.c.state, func.count())
                .where(table.c.job == self.job)
                .group_by(table.c.state)
            ).all()
            return {str(state): int(n) for state, n in rows}

        return {
            "parts": by_state(PARTS),
            "uploads": by_state(UPLOADS),
            "orphans": self.orphans.left(conn),
        }
