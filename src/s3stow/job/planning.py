"""``Plan``: one ``job plan`` run against the job tables.

The job row takes the target and the job-wide settings. Items are upserted in batches
(``INSERT ... ON CONFLICT DO UPDATE``, one transaction each, retried through dropped
connections): a new key is added; a file whose size or mtime changed, and an item that
failed or was gone, goes back to ``pending`` with its version incremented (a worker
still holding it loses it), and an active split upload of such an item is abandoned
and left to abort in the same transaction. Unchanged rows are not written, so a no-op
re-plan writes nothing.

To find files that are gone, the plan copies the keys it found into a temporary table
on a connection of its own and, at the end, marks the items under its sources that are
not in it (and that no worker holds) ``gone``. If that connection drops during the
plan, the table is lost with it and nothing is marked gone; the next plan does it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, column, exists, func, table, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError

from s3stow.job import schema
from s3stow.job.db import first_line, transient
from s3stow.localfiles import stored_ns
from s3stow.logs import redact
from s3stow.models import SourceFile

if TYPE_CHECKING:
    from s3stow.job.queue import JobQueue

log = logging.getLogger(__name__)
ITEMS = schema.job_items
SEEN = table("s3stow_seen", column("key"))
_COPY = "COPY s3stow_seen (key) FROM STDIN"


class Plan:
    """A plan of one job: use as a context manager, ``add`` batches, then ``mark_gone``."""

    def __init__(
        self, queue: JobQueue, *, bucket: str, prefix: str, settings: dict[str, Any]
    ) -> None:
        self.queue = queue
        self.job = queue.job
        self.target = {"bucket": bucket, "prefix": prefix, "settings": redact(json.dumps(settings))}
        self._session: Connection | None = None

    def __enter__(self) -> Plan:
        jobs = schema.jobs
        statement = (
            pg_insert(jobs)
            .values(name=self.job, created_at=func.now(), **self.target)
            .on_conflict_do_update(index_elements=[jobs.c.name], set_=self.target)
        )
        self.queue.db.run(lambda conn: conn.execute(statement), what="plan")
        try:
            self._session = self.queue.db.engine.connect()
            with self._session.begin():
                self._session.exec_driver_sql("DROP TABLE IF EXISTS s3stow_seen")
                self._session.exec_driver_sql(
                    "CREATE TEMPORARY TABLE s3stow_seen (key TEXT NOT NULL)"
                )
        except SQLAlchemyError as exc:
            self._lost(exc)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                with session.begin():
                    session.exec_driver_sql("DROP TABLE s3stow_seen")
            except SQLAlchemyError:
                session.invalidate()  # not back to the pool with the table in it
            finally:
                session.close()

    def _lost(self, exc: BaseException) -> None:
        if not transient(exc):
            raise exc
        log.warning(
            "the plan's own database connection was lost (%s): files deleted since the "
            "last plan are marked gone by the next one",
            first_line(exc),
        )
        self.__exit__(None, None, None)

    # ---- items ----------------------------------------------------------------------
    def add(self, items: Sequence[tuple[SourceFile, str]]) -> None:
        """Upsert a batch of found files (``(file, key)``) and remember their keys."""
        if not items:
            return
        rows = [
            {
                "job": self.job, "path": str(s.path), "rel_path": s.rel_path, "key": key,
                "size": s.size, "mtime_ns": stored_ns(s.mtime_ns), "grp": s.group,
                "state": "pending", "attempts": 0,
            }
            for s, key in items
        ]  # fmt: skip
        statement = pg_insert(ITEMS)
        new = statement.excluded
        changed = (
            (ITEMS.c.size != new.size)
            | (ITEMS.c.mtime_ns != new.mtime_ns)
            | (ITEMS.c.state == "failed")  # retried by a new plan
            | (ITEMS.c.state == "gone")  # back again
        )
        statement = statement.on_conflict_do_update(
            constraint="uq_job_items_key",
            set_={
                "path": new.path,
                "size": new.size,
                "mtime_ns": new.mtime_ns,
                "state": "pending",
                "version": ITEMS.c.version + 1,
                "attempts": 0,
                "error_class": None,
                "error": None,
                "lease_owner": None,
                "lease_until": None,
                "done_by": None,
            },
            where=changed,
        )
        keys = [key for _, key in items]

        def step(conn: Connection) -> None:
            conn.execute(statement, rows)
            self.queue.split.abandon_replanned(conn, keys)

        self.queue.db.run(step, what="enqueue")
        if self._session is not None:
            import psycopg

            try:
                with self._session.begin():
                    driver: Any = self._session.connection.driver_connection
                    with driver.cursor() as cursor, cursor.copy(_COPY) as copy:
                        for key in keys:
                            copy.write_row((key,))
            except (SQLAlchemyError, psycopg.Error) as exc:
                self._lost(exc)

    def mark_gone(self, roots: Iterable[str]) -> int | None:
        """Items under ``roots`` that this plan did not find (deleted, or no longer
        selected) and nobody is working on become ``gone``; returns how many (``None``
        when the plan lost the keys it found)."""
        if self._session is None:
            return None
        under = []
        for root in roots:
            prefix = root if root.endswith(os.sep) else root + os.sep
            under.append(
                (ITEMS.c.path == root) | (func.substr(ITEMS.c.path, 1, len(prefix)) == prefix)
            )
        if not under:
            return 0
        condition = under[0]
        for extra in under[1:]:
            condition = condition | extra
        found = exists().where(SEEN.c.key == ITEMS.c.key)
        statement = (
            update(ITEMS)
            .where(
                ITEMS.c.job == self.job,
                ITEMS.c.state.in_(["pending", "done", "failed"]),
                condition,
                ~found,
            )
            .values(state="gone", version=ITEMS.c.version + 1, error_class=None, error=None)
        )
        try:
            with self._session.begin():
                # Indexed and analysed once filled: the statistics of a freshly planned
                # job may say it has one item, and the anti-join then probes this table
                # once per item (minutes for 50,000 without the index).
                self._session.exec_driver_sql("CREATE INDEX ON s3stow_seen (key)")
                self._session.exec_driver_sql("ANALYZE s3stow_seen")
                gone = int(self._session.execute(statement).rowcount or 0)
        except SQLAlchemyError as exc:
            self._lost(exc)
            return None
        return gone
