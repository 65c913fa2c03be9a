"""The job queue in SQL: claim, heartbeat, record, release, status (plans: ``planning.py``).

Claims use ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`` so
concurrent workers never block on or double-claim a row; an item whose lease expired
(its worker died or stalled) is claimable again. Every state change is a
compare-and-set on the state and ``version`` it was decided on and increments the
version, so a worker that lost an item (its lease expired and another worker claimed
it, or a new plan reset it) cannot record anything over it: not in the job tables,
and not in the ledger, whose row is written in the same transaction. Each step runs
through ``JobDatabase`` and may run twice (a commit whose answer was lost): a claim
first returns what this worker already holds, and a record that finds the item in the
state it was moving it to, one version on and by this worker, was the first try's.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, Engine, case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError

from s3stow.errors import ConfigError, LedgerError
from s3stow.job import schema
from s3stow.job.db import JobDatabase, first_line
from s3stow.job.planning import Plan
from s3stow.job.rows import Claimed, holds
from s3stow.job.splitqueue import SplitQueue
from s3stow.ledger.rows import ItemRecord, write_records
from s3stow.ledger.sqlalchemy_backend import SqlAlchemySession

ITEMS = schema.job_items
_COLUMNS = (
    ITEMS.c.id,
    ITEMS.c.version,
    ITEMS.c.path,
    ITEMS.c.rel_path,
    ITEMS.c.key,
    ITEMS.c.size,
    ITEMS.c.mtime_ns,
    ITEMS.c.grp,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a claimed item, and the ledger row that goes with it."""

    item: Claimed
    state: str  # done, failed, gone
    error_class: str | None = None
    error: str | None = None
    record: ItemRecord | None = None


class JobQueue:
    """One job's rows in PostgreSQL."""

    def __init__(self, engine: Engine | JobDatabase, job: str) -> None:
        db = engine if isinstance(engine, JobDatabase) else JobDatabase(engine)
        if db.engine.dialect.name != "postgresql":
            raise ConfigError(
                "distributed jobs need a PostgreSQL ledger",
                hint="pass --ledger postgresql://user@host/db",
            )
        self.db = db
        self.job = job
        try:
            schema.create(db.engine)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot create the job tables: {first_line(exc)}") from exc
        self.split = SplitQueue(db, job)

    # ---- plan -----------------------------------------------------------------------
    def plan(self, *, bucket: str, prefix: str, settings: dict[str, Any]) -> Plan:
        """A new plan of this job (a context manager: ``planning.py``)."""
        return Plan(self, bucket=bucket, prefix=prefix, settings=settings)

    def info(self) -> dict[str, Any] | None:
        def step(conn: Connection) -> Any:
            return conn.execute(select(schema.jobs).where(schema.jobs.c.name == self.job)).first()

        row = self.db.run(step, what="read the job")
        return dict(row._mapping) if row else None

    # ---- work -------------------------------------------------------------------------
    def claim(self, worker: str, *, limit: int, lease: float) -> list[Claimed]:
        """Up to ``limit`` items for ``worker``: first any it already holds (a claim whose
        answer was lost), else pending ones and ones whose lease expired."""
        claimable = (ITEMS.c.state == "pending") | (
            (ITEMS.c.state == "claimed") & (ITEMS.c.lease_until < func.now())
        )
        chosen = (
            select(ITEMS.c.id)
            .where(ITEMS.c.job == self.job, claimable)
            .order_by(ITEMS.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(ITEMS)
            .where(ITEMS.c.id.in_(chosen.scalar_subquery()))
            .values(
                state="claimed",
                lease_owner=worker,
                lease_until=func.now() + timedelta(seconds=lease),
                attempts=ITEMS.c.attempts + 1,
                version=ITEMS.c.version + 1,
            )
            .returning(*_COLUMNS)
        )
        held = select(*_COLUMNS).where(
            ITEMS.c.job == self.job, ITEMS.c.state == "claimed", ITEMS.c.lease_owner == worker
        )

        def step(conn: Connection) -> list[Any]:
            return list(conn.execute(held).all() or conn.execute(statement).all())

        return [Claimed(*row) for row in sorted(self.db.run(step, what="claim items"))]

    def heartbeat(self, worker: str, *, lease: float, done: int, failed: int, lost: int) -> None:
        """Extend every lease ``worker`` holds and update its row in ``job_workers``."""

        def step(conn: Connection) -> None:
            conn.execute(
                update(ITEMS)
                .where(
                    ITEMS.c.job == self.job,
                    ITEMS.c.lease_owner == worker,
                    ITEMS.c.state == "claimed",
                )
                .values(lease_until=func.now() + timedelta(seconds=lease))
            )
            self.split.renew(conn, worker, lease)
            counters = {"last_seen": func.now(), "done": done, "failed": failed, "lost": lost}
            statement = pg_insert(schema.job_workers).values(
                job=self.job,
                worker=worker,
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=func.now(),
                **counters,
            )
            conn.execute(
                statement.on_conflict_do_update(constraint="pk_job_workers", set_=counters)
            )

        self.db.run(step, what="heartbeat")

    def record(
        self, worker: str, outcomes: Sequence[Outcome], *, release: Sequence[Claimed] = ()
    ) -> tuple[list[Outcome], list[Outcome]]:
        """Record outcomes of items ``worker`` still holds under the version it claimed,
        with their ledger rows, and give back ``release`` (claimed, no outcome).
        Returns (kept, lost): lost outcomes were not written anywhere."""
        ids = [o.item.id for o in outcomes] + [c.id for c in release]

        def step(conn: Connection) -> tuple[list[Outcome], list[Outcome]]:
            rows = {
                row.id: row
                for row in conn.execute(
                    select(ITEMS.c.id, ITEMS.c.state, ITEMS.c.version, ITEMS.c.lease_owner,
                           ITEMS.c.done_by)
                    .where(ITEMS.c.id.in_(ids))
                    .with_for_update()
                )
            }  # fmt: skip
            kept: list[Outcome] = []
            lost: list[Outcome] = []
            ledger: list[ItemRecord] = []
            for outcome in outcomes:
                row, version = rows.get(outcome.item.id), outcome.item.version
                if holds(row, worker, version):
                    conn.execute(
                        update(ITEMS)
                        .where(ITEMS.c.id == outcome.item.id, ITEMS.c.version == version)
                        .values(
                            state=outcome.state,
                            error_class=outcome.error_class,
                            error=outcome.error,
                            lease_owner=None,
                            lease_until=None,
                            done_by=worker,
                            version=version + 1,
                        )
                    )
                    kept.append(outcome)
                    if outcome.record is not None:
                        ledger.append(outcome.record)
                elif row is not None and (row.state, row.version, row.done_by) == (
                    outcome.state,
                    version + 1,
                    worker,
                ):
                    kept.append(outcome)  # the first try committed; its answer was lost
                else:
                    lost.append(outcome)
            for item in release:
                if holds(rows.get(item.id), worker, item.version):
                    conn.execute(
                        update(ITEMS)
                        .where(ITEMS.c.id == item.id, ITEMS.c.version == item.version)
                        .values(
                            state="pending",
                            lease_owner=None,
                            lease_until=None,
                            version=item.version + 1,
                        )
                    )
            if ledger:
                write_records(SqlAlchemySession(conn), ledger)
            return kept, lost

        if not ids:
            return [], []
        return self.db.run(step, what="record outcomes")

    def requeue_done(self, item_id: int) -> bool:
        """Back to pending if done: a worker that lost the item wrote its object after
        the file changed, possibly over the winner's newer one."""
        statement = (
            update(ITEMS)
            .where(ITEMS.c.id == item_id, ITEMS.c.state == "done")
            .values(state="pending", version=ITEMS.c.version + 1, done_by=None)
        )
        return bool(self.db.run(lambda c: c.execute(statement).rowcount, what="requeue"))

    def release(self, worker: str) -> None:
        """Give back everything this worker holds (a clean stop)."""

        def step(conn: Connection) -> None:
            conn.execute(
                update(ITEMS)
                .where(
                    ITEMS.c.job == self.job,
                    ITEMS.c.lease_owner == worker,
                    ITEMS.c.state == "claimed",
                )
                .values(
                    state="pending",
                    lease_owner=None,
                    lease_until=None,
                    version=ITEMS.c.version + 1,
                )
            )
            self.split.release(conn, worker)

        self.db.run(step, what="release claims")

    def remaining(self) -> int:
        """Items pending, claimed (by anyone, live or not) or split, and uploads still to
        abort: while any remain, a worker has something to wait for."""

        def step(conn: Connection) -> int:
            items = conn.execute(
                select(func.count()).where(
                    ITEMS.c.job == self.job, ITEMS.c.state.in_(["pending", "claimed", "split"])
                )
            ).scalar()
            return int(items or 0) + self.split.orphans_left(conn)

        return self.db.run(step, what="count remaining")

    # ---- status -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        workers = schema.job_workers

        def step(conn: Connection) -> dict[str, Any]:
            states = conn.execute(
                select(ITEMS.c.state, func.count())
                .where(ITEMS.c.job == self.job)
                .group_by(ITEMS.c.state)
            ).all()
            size = conn.execute(
                select(
                    func.coalesce(func.sum(ITEMS.c.size), 0),
                    func.coalesce(
                        func.sum(case((ITEMS.c.state == "done", ITEMS.c.size), else_=0)), 0
                    ),
                ).where(ITEMS.c.job == self.job)
            ).one()
            rows = conn.execute(
                select(workers, (func.now() - workers.c.last_seen).label("age"))
                .where(workers.c.job == self.job)
                .order_by(workers.c.started_at)
            ).all()
            return {
                "job": self.job,
                "items": {str(k): int(v) for k, v in states},
                "bytes": int(size[0]),
                "bytes_done": int(size[1]),
                **self.split.counts(conn),
                "workers": [
                    {
                        "worker": r.worker,
                        "host": r.host,
                        "pid": r.pid,
                        "done": r.done,
                        "failed": r.failed,
                        "lost_leases": r.lost,
                        "last_seen_seconds": r.age.total_seconds(),
                    }
                    for r in rows
                ],
            }

        return self.db.run(step, what="status")
