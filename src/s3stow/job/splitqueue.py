"""Part-level claiming in SQL: one large file's multipart upload shared by workers.

``open`` turns a claimed item into a split upload (its upload id and one pending row per
part) in the same transaction that checks the opener still holds the item's lease.
Parts are claimed like items (``FOR UPDATE SKIP LOCKED``, a lease renewed by the
heartbeat, outcomes conditional on the lease owner). When every part is done, exactly
one worker claims the upload's completion (again leased: if it dies, another completes
it); ``finish`` marks the upload and its item done or failed, again only for the lease
owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Engine, delete, exists, func, insert, select, tuple_, update

from s3stow.job import schema

UPLOADS, PARTS, ITEMS = schema.job_uploads, schema.job_parts, schema.job_items


@dataclass(frozen=True, slots=True)
class SplitFile:
    """What a part or a completion needs to know about its file and upload."""

    item_id: int
    path: str
    rel_path: str
    key: str
    grp: str | None
    upload_id: str
    size: int
    mtime_ns: int
    checksum_algorithm: str | None


@dataclass(frozen=True, slots=True)
class ClaimedPart:
    file: SplitFile
    number: int
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class DonePart:
    number: int
    etag: str
    checksum: str | None
    length: int


class SplitQueue:
    """The split uploads of one job."""

    def __init__(self, engine: Engine, job: str) -> None:
        self.engine = engine
        self.job = job

    def open(
        self,
        worker: str,
        item_id: int,
        *,
        upload_id: str,
        part_size: int,
        ranges: Sequence[tuple[int, int, int]],
        size: int,
        mtime_ns: int,
        checksum_algorithm: str | None,
    ) -> tuple[bool, str | None]:
        """Split the item ``worker`` holds; returns (kept, an older upload id to abort).

        ``kept`` is False when the item's lease was lost (the caller aborts ``upload_id``).
        """
        with self.engine.begin() as conn:
            held = conn.execute(
                select(ITEMS.c.id)
                .where(
                    ITEMS.c.id == item_id, ITEMS.c.lease_owner == worker, ITEMS.c.state == "claimed"
                )
                .with_for_update()
            ).first()
            if held is None:
                return False, None
            old = conn.execute(
                select(UPLOADS.c.upload_id).where(
                    UPLOADS.c.item_id == item_id, UPLOADS.c.state.in_(["parts", "completing"])
                )
            ).scalar()
            conn.execute(delete(PARTS).where(PARTS.c.item_id == item_id))
            conn.execute(delete(UPLOADS).where(UPLOADS.c.item_id == item_id))
            conn.execute(
                insert(UPLOADS).values(
                    item_id=item_id,
                    job=self.job,
                    upload_id=upload_id,
                    part_size=part_size,
                    parts_total=len(ranges),
                    size=size,
                    mtime_ns=mtime_ns,
                    checksum_algorithm=checksum_algorithm,
                    state="parts",
                    opened_by=worker,
                )
            )
            conn.execute(
                insert(PARTS),
                [
                    {
                        "item_id": item_id,
                        "number": number,
                        "job": self.job,
                        "offset": offset,
                        "length": length,
                        "state": "pending",
                        "attempts": 0,
                    }
                    for number, offset, length in ranges
                ],
            )
            conn.execute(
                update(ITEMS)
                .where(ITEMS.c.id == item_id)
                .values(state="split", lease_owner=None, lease_until=None)
            )
        return True, old

    def _files(self, conn: Connection, item_ids: set[int]) -> dict[int, SplitFile]:
        query = (
            select(
                UPLOADS.c.item_id,
                ITEMS.c.path,
                ITEMS.c.rel_path,
                ITEMS.c.key,
                ITEMS.c.grp,
                UPLOADS.c.upload_id,
                UPLOADS.c.size,
                UPLOADS.c.mtime_ns,
                UPLOADS.c.checksum_algorithm,
            )
            .join(ITEMS, ITEMS.c.id == UPLOADS.c.item_id)
            .where(UPLOADS.c.item_id.in_(item_ids))
        )
        return {row[0]: SplitFile(*row) for row in conn.execute(query)}

    def claim_parts(self, worker: str, *, limit: int, lease: float) -> list[ClaimedPart]:
        """Pending parts (or parts whose lease expired) of uploads still taking parts."""
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
        statement = (
            update(PARTS)
            .where(tuple_(PARTS.c.item_id, PARTS.c.number).in_(chosen))
            .values(
                state="claimed",
                lease_owner=worker,
                lease_until=func.now() + timedelta(seconds=lease),
                attempts=PARTS.c.attempts + 1,
            )
            .returning(PARTS.c.item_id, PARTS.c.number, PARTS.c.offset, PARTS.c.length)
        )
        with self.engine.begin() as conn:
            rows = sorted(conn.execute(statement).all())
            files = self._files(conn, {r[0] for r in rows})
        return [ClaimedPart(files[i], n, o, length) for i, n, o, length in rows if i in files]

    def part_done(self, worker: str, part: ClaimedPart, *, etag: str, checksum: str | None) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(PARTS)
                .where(
                    PARTS.c.item_id == part.file.item_id,
                    PARTS.c.number == part.number,
                    PARTS.c.lease_owner == worker,
                    PARTS.c.state == "claimed",
                )
                .values(
                    state="done",
                    etag=etag,
                    checksum=checksum,
                    done_by=worker,
                    lease_owner=None,
                    lease_until=None,
                    error=None,
                )
            )
        return bool(result.rowcount)

    def part_failed(self, worker: str, part: ClaimedPart, *, error: str, max_attempts: int) -> bool:
        """Give the part back; True when it has failed ``max_attempts`` times (the caller
        then fails the whole upload)."""
        with self.engine.begin() as conn:
            attempts = conn.execute(
                update(PARTS)
                .where(
                    PARTS.c.item_id == part.file.item_id,
                    PARTS.c.number == part.number,
                    PARTS.c.lease_owner == worker,
                )
                .values(state="pending", lease_owner=None, lease_until=None, error=error)
                .returning(PARTS.c.attempts)
            ).scalar()
        return attempts is not None and attempts >= max_attempts

    def fail(self, item_id: int, *, error_class: str, error: str) -> str | None:
        """Fail the upload and its item (the file changed, a part kept failing, the
        object did not verify); returns the upload id to abort."""
        with self.engine.begin() as conn:
            upload_id = conn.execute(
                update(UPLOADS)
                .where(UPLOADS.c.item_id == item_id, UPLOADS.c.state.in_(["parts", "completing"]))
                .values(state="failed", error=error, lease_owner=None, lease_until=None)
                .returning(UPLOADS.c.upload_id)
            ).scalar()
            conn.execute(
                update(ITEMS)
                .where(ITEMS.c.id == item_id, ITEMS.c.state == "split")
                .values(state="failed", error_class=error_class, error=error)
            )
        return upload_id

    def claim_completion(
        self, worker: str, *, lease: float
    ) -> tuple[SplitFile, list[DonePart]] | None:
        """One upload whose parts are all done (or whose completer's lease expired)."""
        unfinished = exists().where(PARTS.c.item_id == UPLOADS.c.item_id, PARTS.c.state != "done")
        ready = ((UPLOADS.c.state == "parts") & ~unfinished) | (
            (UPLOADS.c.state == "completing") & (UPLOADS.c.lease_until < func.now())
        )
        with self.engine.begin() as conn:
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
                    state="completing",
                    lease_owner=worker,
                    lease_until=func.now() + timedelta(seconds=lease),
                )
            )
            parts = [
                DonePart(*row)
                for row in conn.execute(
                    select(PARTS.c.number, PARTS.c.etag, PARTS.c.checksum, PARTS.c.length)
                    .where(PARTS.c.item_id == item_id)
                    .order_by(PARTS.c.number)
                )
            ]
            return self._files(conn, {item_id})[item_id], parts

    def finish(
        self, worker: str, item_id: int, *, ok: bool, error_class: str | None, error: str | None
    ) -> bool:
        """Record the completion outcome; False if this worker no longer held it."""
        state = "done" if ok else "failed"
        with self.engine.begin() as conn:
            result = conn.execute(
                update(UPLOADS)
                .where(
                    UPLOADS.c.item_id == item_id,
                    UPLOADS.c.lease_owner == worker,
                    UPLOADS.c.state == "completing",
                )
                .values(state=state, error=error, lease_owner=None, lease_until=None)
            )
            if not result.rowcount:
                return False
            conn.execute(
                update(ITEMS)
                .where(ITEMS.c.id == item_id)
                .values(
                    state=state,
                    error_class=error_class,
                    error=error,
                    done_by=worker if ok else None,
                )
            )
        return True

    def unclaim_completion(self, worker: str, item_id: int) -> None:
        """Hand a completion back after a transient failure (any worker may retry it)."""
        with self.engine.begin() as conn:
            conn.execute(
                update(UPLOADS)
                .where(
                    UPLOADS.c.item_id == item_id,
                    UPLOADS.c.lease_owner == worker,
                    UPLOADS.c.state == "completing",
                )
                .values(state="parts", lease_owner=None, lease_until=None)
            )

    def renew(self, conn: Connection, worker: str, lease: float) -> None:
        """Extend this worker's part and completion leases (inside the heartbeat)."""
        until = func.now() + timedelta(seconds=lease)
        for table in (PARTS, UPLOADS):
            conn.execute(
                update(table)
                .where(
                    table.c.job == self.job,
                    table.c.lease_owner == worker,
                    table.c.state.in_(["claimed", "completing"]),
                )
                .values(lease_until=until)
            )

    def release(self, conn: Connection, worker: str) -> None:
        """Give back unfinished part and completion claims (a clean stop)."""
        conn.execute(
            update(PARTS)
            .where(
                PARTS.c.job == self.job, PARTS.c.lease_owner == worker, PARTS.c.state == "claimed"
            )
            .values(state="pending", lease_owner=None, lease_until=None)
        )
        conn.execute(
            update(UPLOADS)
            .where(
                UPLOADS.c.job == self.job,
                UPLOADS.c.lease_owner == worker,
                UPLOADS.c.state == "completing",
            )
            .values(state="parts", lease_owner=None, lease_until=None)
        )

    def counts(self, conn: Connection) -> dict[str, int]:
        rows = conn.execute(
            select(PARTS.c.state, func.count())
            .where(PARTS.c.job == self.job)
            .group_by(PARTS.c.state)
        ).all()
        return {str(state): int(n) for state, n in rows}
