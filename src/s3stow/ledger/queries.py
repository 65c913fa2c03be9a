"""Read-only aggregation over the ledger, in SQL (fast on millions of rows).

``totals_by`` counts items and bytes per status and per a chosen dimension
(status, group, extension, run, error class) with one GROUP BY query, so a
million-row ledger is summarised by the database, not by Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select

from s3stow.errors import ConfigError
from s3stow.ledger import schema
from s3stow.ledger.sql import Ledger

DIMENSIONS = {
    "status": "status",
    "group": "grp",
    "folder_type": "grp",
    "top_dir": "grp",
    "ext": "ext",
    "run": "run_id",
    "error": "error_class",
}


@dataclass(frozen=True, slots=True)
class GroupTotals:
    """Counts and bytes of one group of ledger items."""

    name: str
    items: int
    bytes: int
    done: int
    done_bytes: int
    failed: int
    changed: int

    @property
    def not_done(self) -> int:
        return self.items - self.done

    @property
    def percent_done(self) -> float:
        return 100.0 * self.done / self.items if self.items else 0.0


def totals_by(
    ledger: Ledger, by: str, *, run_id: str | None = None, bucket: str | None = None
) -> list[GroupTotals]:
    """Totals per value of ``by`` (one of ``DIMENSIONS``), largest groups first."""
    if by not in DIMENSIONS:
        raise ConfigError(f"cannot group by {by!r}", hint=f"use one of: {', '.join(DIMENSIONS)}")
    table = schema.items
    column = table.c[DIMENSIONS[by]]
    status = table.c.status

    def count_if(value: str) -> Any:
        return func.sum(case((status == value, 1), else_=0))

    query = (
        select(
            column,
            func.count(),
            func.coalesce(func.sum(table.c.size), 0),
            count_if("done"),
            func.coalesce(func.sum(case((status == "done", table.c.size), else_=0)), 0),
            count_if("failed"),
            count_if("changed"),
        )
        .group_by(column)
        .order_by(func.count().desc())
    )
    if run_id is not None:
        query = query.where(_of_run(table.c.run_id, run_id))
    if bucket is not None:
        query = query.where(table.c.bucket == bucket)
    ledger.flush()
    with ledger.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        GroupTotals(
            str(r[0]) if r[0] not in (None, "") else "(none)",
            int(r[1]),
            int(r[2]),
            int(r[3] or 0),
            int(r[4] or 0),
            int(r[5] or 0),
            int(r[6] or 0),
        )
        for r in rows
    ]


@dataclass(frozen=True, slots=True)
class RestoreTotals:
    """Counts and bytes of the ledger's restores: each (object, local path) once, as
    last recorded (restored, failed, or a ranged download under way)."""

    items: int
    bytes: int
    restored: int
    bytes_restored: int
    failed: int
    in_progress: int

    def as_dict(self) -> dict[str, int]:
        return {
            "items": self.items,
            "bytes": self.bytes,
            "restored": self.restored,
            "bytes_restored": self.bytes_restored,
            "failed": self.failed,
            "in_progress": self.in_progress,
        }


def restore_totals(
    ledger: Ledger, *, run_id: str | None = None, bucket: str | None = None
) -> RestoreTotals:
    """What the ledger records of restores (of one run, one bucket), in one query."""
    table = schema.restores
    status = table.c.status

    def count_if(value: str) -> Any:
        return func.coalesce(func.sum(case((status == value, 1), else_=0)), 0)

    query = select(
        func.count(),
        func.coalesce(func.sum(table.c.size), 0),
        count_if("done"),
        func.coalesce(func.sum(case((status == "done", table.c.size), else_=0)), 0),
        count_if("failed"),
        count_if("downloading"),
    )
    if run_id is not None:
        query = query.where(table.c.run_id == run_id)
    if bucket is not None:
        query = query.where(table.c.bucket == bucket)
    ledger.flush()
    with ledger.engine.connect() as conn:
        row = conn.execute(query).one()
    return RestoreTotals(*(int(value or 0) for value in row))


def buckets_known(ledger: Ledger, bucket: str) -> bool:
    """Whether any upload, restore or run of the ledger names ``bucket``."""
    ledger.flush()
    with ledger.engine.connect() as conn:
        for table in (schema.items, schema.restores, schema.runs):
            found = conn.execute(
                select(table.c.bucket).where(table.c.bucket == bucket).limit(1)
            ).first()
            if found is not None:
                return True
    return False


def failures_by_error(
    ledger: Ledger, *, run_id: str | None = None, bucket: str | None = None
) -> list[tuple[str, int, str]]:
    """``(error_class, count, latest message)`` of failed/changed items (of one run, one
    bucket)."""
    table = schema.items
    return _by_error(
        ledger,
        table,
        table.c.status.in_(["failed", "changed"]),
        run=None if run_id is None else _of_run(table.c.run_id, run_id),
        bucket=bucket,
        order=(func.count().desc(),),
    )


def restore_failures_by_error(
    ledger: Ledger, *, run_id: str | None = None, bucket: str | None = None
) -> list[tuple[str, int, str]]:
    """``(error_class, count, a message)`` of the restores last recorded failed (of one
    restore run, one bucket): the restores' side of ``failures_by_error``, the ones
    ``restore_totals`` counts as failed (an archived object waiting for its copy too,
    as ``restore-pending``)."""
    table = schema.restores
    return _by_error(
        ledger,
        table,
        table.c.status == "failed",
        run=None if run_id is None else table.c.run_id == run_id,
        bucket=bucket,
        order=(func.count().desc(), table.c.error_class),
    )


def _by_error(
    ledger: Ledger,
    table: Any,
    failed: Any,
    *,
    run: Any,
    bucket: str | None,
    order: tuple[Any, ...],
) -> list[tuple[str, int, str]]:
    """``(error_class, count, a message)`` of ``table``'s rows matching ``failed`` (and
    ``run``, ``bucket`` when given), most frequent first."""
    query = (
        select(table.c.error_class, func.count(), func.max(table.c.error_message))
        .where(failed)
        .group_by(table.c.error_class)
        .order_by(*order)
    )
    if run is not None:
        query = query.where(run)
    if bucket is not None:
        query = query.where(table.c.bucket == bucket)
    ledger.flush()
    with ledger.engine.connect() as conn:
        return [(str(r[0] or "?"), int(r[1]), str(r[2] or "")) for r in conn.execute(query)]


def _of_run(column: Any, run_id: str) -> Any:
    """Rows of the run ``run_id``, and of a watch's batches ``<run_id>.<n>``."""
    return (column == run_id) | column.like(f"{_like_escape(run_id)}.%", escape="\\")


def recent_runs(ledger: Ledger, *, limit: int = 10) -> list[dict[str, Any]]:
    """The latest runs, newest first: id, command, target, status, times and totals."""
    import json

    runs = schema.runs
    query = (
        select(
            runs.c.run_id,
            runs.c.command,
            runs.c.bucket,
            runs.c.prefix,
            runs.c.status,
            runs.c.started_at,
            runs.c.finished_at,
            runs.c.summary,
        )
        .order_by(runs.c.started_at.desc())
        .limit(limit)
    )
    ledger.flush()
    with ledger.engine.connect() as conn:
        rows = list(conn.execute(query))
    found = []
    for row in rows:
        try:
            summary = json.loads(row[7]) if row[7] else {}
        except ValueError:
            summary = {}
        found.append(
            {
                "run_id": row[0],
                "command": row[1],
                "target": _target(str(row[2] or ""), str(row[3] or "")),
                "status": row[4],
                "started_at": row[5],
                "finished_at": row[6],
                "summary": summary if isinstance(summary, dict) else {},
            }
        )
    return found


def _target(bucket: str, prefix: str) -> str:
    """A run row's target: ``s3://bucket/prefix``; a run of several buckets (``archive
    restore``) recorded them comma-separated (``s3://a, s3://b``) or as ``N buckets``."""
    if "," in bucket:
        return ", ".join(f"s3://{name}" for name in bucket.split(","))
    if " " in bucket:  # "N buckets": too many names for the column
        return bucket
    return f"s3://{bucket}/{prefix}".rstrip("/")


def run_failures(ledger: Ledger, run_id: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """Failed and changed items of a run (a watch's batches ``<run_id>.<n>`` too)."""
    table = schema.items
    query = (
        select(
            table.c.source_path,
            table.c.key,
            table.c.status,
            table.c.error_class,
            table.c.error_message,
            table.c.updated_at,
        )
        .where(table.c.status.in_(["failed", "changed"]))
        .where(
            (table.c.run_id == run_id)
            | table.c.run_id.like(f"{_like_escape(run_id)}.%", escape="\\")
        )
        .order_by(table.c.id.desc())
        .limit(limit)
    )
    ledger.flush()
    with ledger.engine.connect() as conn:
        return [
            {
                "path": row[0],
                "key": row[1],
                "status": row[2],
                "error_class": row[3],
                "error": row[4] or "",
                "at": row[5],
            }
            for row in conn.execute(query)
        ]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
