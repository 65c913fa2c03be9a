"""The ledger's restore tables (``ledger/restores.py``): a finished download's ranges
are dropped with its outcome, a failed one keeps them for the next run, and a batch of
outcomes with no ranges anywhere costs no statement per object; on SQLite and on
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from s3stow.ledger import open_ledger
from s3stow.ledger.restores import RestoreLedger, RestoreRecord


class _Counted:
    """The ledger's own database, every write statement noted (what a flush costs)."""

    def __init__(self, database: Any) -> None:
        self.database = database
        self.errors = database.errors
        self.statements: list[str] = []

    def read(self) -> Any:
        return self.database.read()

    @contextmanager
    def write(self) -> Iterator[Any]:
        with self.database.write() as session:
            yield _CountedSession(session, self.statements)


class _CountedSession:
    def __init__(self, session: Any, statements: list[str]) -> None:
        self._session, self._statements = session, statements

    def execute(self, sql: str, params: Any = None) -> Any:
        self._statements.append(sql.split()[0])
        return self._session.execute(sql, params)

    def executemany(self, sql: str, rows: Any) -> None:
        self._statements.append(sql.split()[0])
        self._session.executemany(sql, rows)


def _record(n: int, status: str = "done") -> RestoreRecord:
    return RestoreRecord("b", f"k{n}", f"/r/f{n}", 10, status, etag="e")


@pytest.fixture(params=["sqlite", "postgres"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "l.db")
    return str(request.getfixturevalue("pg_schema_url"))


def test_a_finished_download_drops_its_ranges_and_a_failed_one_keeps_them(target: str) -> None:
    restores = RestoreLedger(open_ledger(target), flush_interval=3600)
    for n in (1, 2):
        restores.begin_download(
            _record(n, "downloading"), download_id=f"d{n}", range_size=4, run_id="r"
        )
        restores.record_range(f"d{n}", 0, 4, "x")
    restores.record(_record(1), run_id="r")
    restores.record(_record(2, "failed"), run_id="r")
    restores.record(_record(3), run_id="r")  # never ranged
    restores.flush()
    assert restores.ranges("d1") == []
    assert restores.ranges("d2") == [(0, 4, "x")]
    found = restores.lookup("b", ["k1", "k2", "k3"])
    assert found[("k1", "/r/f1")].download_id is None
    assert found[("k2", "/r/f2")].download_id == "d2"
    assert {entry.status for entry in found.values()} == {"done", "failed"}


def test_outcomes_with_no_range_anywhere_cost_no_statement_per_object(target: str) -> None:
    restores = RestoreLedger(open_ledger(target), flush_interval=3600)
    counted = _Counted(restores.database)
    restores.database = counted
    for n in range(50):
        restores.record(_record(n), run_id="r")
    restores.flush()
    assert counted.statements == ["SELECT", "INSERT"]  # is there a range? then one upsert
    assert len(restores.lookup("b", [f"k{n}" for n in range(50)])) == 50
