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
        query = query.where(table.c.run_id == run_id)
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


def failures_by_error(ledger: Ledger, *, run_id: str | None = None) -> list[tuple[str, int, str]]:
    """``(error_class, count, latest message)`` of failed/changed items."""
    table = schema.items
    query = (
        select(table.c.error_class, func.count(), func.max(table.c.error_message))
        .where(table.c.status.in_(["failed", "changed"]))
        .group_by(table.c.error_class)
        .order_by(func.count().desc())
    )
    if run_id is not None:
        query = query.where(table.c.run_id == run_id)
    ledger.flush()
    with ledger.engine.connect() as conn:
        return [(str(r[0] or "?"), int(r[1]), str(r[2] or "")) for r in conn.execute(query)]
