"""The job queue in SQL: plan (idempotent upserts), claim, heartbeat, record, status.

Claims use ``UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`` so
concurrent workers never block on or double-claim a row; an item whose lease expired
(its worker died) is claimable again. Outcomes are conditional on the lease owner:
a worker that lost its lease does not overwrite the winner's record.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, case, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError

from s3stow.errors import ConfigError, LedgerError
from s3stow.job import schema
from s3stow.job.splitqueue import SplitQueue
from s3stow.logs import redact
from s3stow.models import SourceFile


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    path: str
    rel_path: str
    key: str
    size: int
    mtime_ns: int
    grp: str | None


class JobQueue:
    """One job's rows in PostgreSQL."""

    def __init__(self, engine: Engine, job: str) -> None:
        if engine.dialect.name != "postgresql":
            raise ConfigError(
                "distributed jobs need a PostgreSQL ledger",
                hint="pass --ledger postgresql://user@host/db",
            )
        self.engine = engine
        self.job = job
        self.split = SplitQueue(engine, job)
        try:
            schema.metadata.create_all(engine)
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot create the job tables: {redact(str(exc))[:200]}") from exc

    # ---- plan -----------------------------------------------------------------------
    def create(self, *, bucket: str, prefix: str, settings: dict[str, Any]) -> None:
        statement = pg_insert(schema.jobs).values(
            name=self.job,
            bucket=bucket,
            prefix=prefix,
            settings=json.dumps(settings),
            created_at=func.now(),
        )
        statement = statement.on_conflict_do_update(
            index_elements=[schema.jobs.c.name],
            set_={"bucket": bucket, "prefix": prefix, "settings": json.dumps(settings)},
        )
        with self.engine.begin() as conn:
            conn.execute(statement)

    def info(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(schema.jobs).where(schema.jobs.c.name == self.job)).first()
        return dict(row._mapping) if row else None

    def enqueue(self, items: Sequence[tuple[SourceFile, str]]) -> None:
        """Add new items; reset changed ones (other size or mtime) to pending."""
        if not items:
            return
        table = schema.job_items
        rows = [
            {
                "job": self.job,
                "path": str(s.path),
                "rel_path": s.rel_path,
                "key": key,
                "size": s.size,
                "mtime_ns": s.mtime_ns,
                "grp": s.group,
                "state": "pending",
                "attempts": 0,
            }
            for s, key in items
        ]
        statement = pg_insert(table)
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            constraint="uq_job_items_key",
            set_={
                "path": excluded.path,
                "size": excluded.size,
                "mtime_ns": excluded.mtime_ns,
                "state": "pending",
                "attempts": 0,
                "error_class": None,
                "error": None,
                "lease_owner": None,
                "lease_until": None,
            },
            where=(table.c.size != excluded.size) | (table.c.mtime_ns != excluded.mtime_ns),
        )
        with self.engine.begin() as conn:
            conn.execute(statement, rows)

    # ---- work -------------------------------------------------------------------------
    def claim(self, worker: str, *, limit: int, lease: float) -> list[Claimed]:
        table = schema.job_items
        claimable = (table.c.state == "pending") | (
            (table.c.state == "claimed") & (table.c.lease_until < func.now())
        )
        chosen = (
            select(table.c.id)
            .where(table.c.job == self.job, claimable)
            .order_by(table.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            update(table)
            .where(table.c.id.in_(chosen.scalar_subquery()))
            .values(
                state="claimed",
                lease_owner=worker,
                lease_until=func.now() + timedelta(seconds=lease),
                attempts=table.c.attempts + 1,
            )
            .returning(
                table.c.id,
                table.c.path,
                table.c.rel_path,
                table.c.key,
                table.c.size,
                table.c.mtime_ns,
                table.c.grp,
            )
        )
        with self.engine.begin() as conn:
            rows = conn.execute(statement).all()
        return [Claimed(*row) for row in sorted(rows)]

    def heartbeat(self, worker: str, *, lease: float, done: int, failed: int) -> None:
        table = schema.job_items
        with self.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(
                    table.c.job == self.job,
                    table.c.lease_owner == worker,
                    table.c.state == "claimed",
                )
                .values(lease_until=func.now() + timedelta(seconds=lease))
            )
            self.split.renew(conn, worker, lease)
            statement = pg_insert(schema.job_workers).values(
                job=self.job,
                worker=worker,
                host=socket.gethostname(),
                pid=os.getpid(),
                started_at=func.now(),
                last_seen=func.now(),
                done=done,
                failed=failed,
            )
            conn.execute(
                statement.on_conflict_do_update(
                    constraint="pk_job_workers",
                    set_={"last_seen": func.now(), "done": done, "failed": failed},
                )
            )

    def record(
        self, worker: str, outcomes: Sequence[tuple[int, str, str | None, str | None]]
    ) -> int:
        """``(id, state, error_class, error)`` for items this worker still holds."""
        table = schema.job_items
        kept = 0
        with self.engine.begin() as conn:
            for item_id, state, error_class, error in outcomes:
                result = conn.execute(
                    update(table)
                    .where(
                        table.c.id == item_id,
                        table.c.lease_owner == worker,
                        table.c.state == "claimed",
                    )
                    .values(
                        state=state,
                        error_class=error_class,
                        error=error,
                        lease_owner=None,
                        lease_until=None,
                        done_by=worker if state == "done" else None,
                    )
                )
                kept += int(result.rowcount or 0)
        return kept

    def release(self, worker: str) -> None:
        """Give back what this worker claimed but did not finish (a clean stop)."""
        table = schema.job_items
        with self.engine.begin() as conn:
            conn.execute(
                update(table)
                .where(
                    table.c.job == self.job,
                    table.c.lease_owner == worker,
                    table.c.state == "claimed",
                )
                .values(state="pending", lease_owner=None, lease_until=None)
            )
            self.split.release(conn, worker)

    def remaining(self) -> int:
        """Items pending, claimed (by anyone, live or not) or split into parts."""
        table = schema.job_items
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(
                        table.c.job == self.job, table.c.state.in_(["pending", "claimed", "split"])
                    )
                ).scalar()
                or 0
            )

    # ---- status -----------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        items, workers = schema.job_items, schema.job_workers
        with self.engine.connect() as conn:
            states: dict[str, int] = dict(
                conn.execute(
                    select(items.c.state, func.count())
                    .where(items.c.job == self.job)
                    .group_by(items.c.state)
                ).all()
            )
            size = conn.execute(
                select(
                    func.coalesce(func.sum(items.c.size), 0),
                    func.coalesce(
                        func.sum(case((items.c.state == "done", items.c.size), else_=0)), 0
                    ),
                ).where(items.c.job == self.job)
            ).one()
            rows = conn.execute(
                select(workers, (func.now() - workers.c.last_seen).label("age"))
                .where(workers.c.job == self.job)
                .order_by(workers.c.started_at)
            ).all()
            parts = self.split.counts(conn)
        return {
            "job": self.job,
            "items": {k: int(v) for k, v in states.items()},
            "bytes": int(size[0]),
            "bytes_done": int(size[1]),
            "parts": parts,
            "workers": [
                {
                    "worker": r.worker,
                    "host": r.host,
                    "pid": r.pid,
                    "done": r.done,
                    "failed": r.failed,
                    "last_seen_seconds": r.age.total_seconds(),
                }
                for r in rows
            ],
        }
