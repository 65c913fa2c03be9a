"""``JobDatabase``: every database step of a job, retried through connection failures.

A step is one function run in one transaction. When the connection drops, the server
restarts or fails over, or the network stalls until libpq's timeouts fire, the step is
run again on a new connection, with growing pauses, until ``patience`` seconds have
passed since its first failure; then it raises ``DatabaseUnreachable`` (exit 3) and
every later step fails at once, so the whole worker stops.

Running a step again is safe because every step is written to be replayed: its
writes are compare-and-set on the state and version it read, and when the first run
committed but its answer was lost, the second run finds the row already in the state
it was moving it to and reports that instead of writing again (``queue.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, event
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from s3stow.errors import LedgerError
from s3stow.logs import redact

log = logging.getLogger(__name__)
T = TypeVar("T")
_QUIET = 10.0  # seconds between two warnings about one outage


class DatabaseUnreachable(LedgerError):
    """The job's database stayed unreachable longer than the worker's patience (exit 3)."""


def transient(exc: BaseException) -> bool:
    """True for a failure that a new connection or a later try can cure: the connection
    lost, refused or timed out, the server shutting down or starting, a serialization
    failure or deadlock (psycopg's ``OperationalError`` family), a session ended for
    idling in a transaction, no pooled connection free in time."""
    import psycopg

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, PoolTimeout):  # every pooled connection stuck in the outage
            return True
        if isinstance(seen, psycopg.OperationalError | psycopg.InterfaceError):
            return True
        if isinstance(seen, psycopg.errors.IdleInTransactionSessionTimeout):
            return True  # this process was paused inside a transaction (_end_idle_transactions)
        seen = seen.__cause__ or getattr(seen, "orig", None)
    return False


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return redact(text.splitlines()[0]) if text else type(exc).__name__


class JobDatabase:
    """Runs the job's steps against one engine, through outages up to ``patience`` s."""

    def __init__(
        self,
        engine: Engine,
        *,
        patience: float = 300.0,
        on_unreachable: Callable[[], None] | None = None,
        idle_timeout: float | None = None,
    ) -> None:
        self.engine = engine
        self.patience = patience
        if idle_timeout is not None and engine.dialect.name == "postgresql":
            _end_idle_transactions(engine, idle_timeout)
        self.on_unreachable = on_unreachable
        self.unreachable: DatabaseUnreachable | None = None
        self.outages = 0  # failed tries, over the process's life
        self._lock = threading.Lock()
        self._warned = 0.0

    def run(self, step: Callable[[Connection], T], *, what: str) -> T:
        """``step(connection)`` in one transaction, retried through connection failures."""

        def once() -> T:
            with self.engine.begin() as conn:
                return step(conn)

        return self.call(once, what=what)

    def call(self, attempt: Callable[[], T], *, what: str) -> T:
        """``attempt()`` retried while it fails transiently (``transient``), up to the
        patience; any other database error becomes a ``LedgerError`` at once."""
        started: float | None = None
        pause = 0.1
        while True:
            if self.unreachable is not None:
                raise self.unreachable
            try:
                return attempt()
            except (SQLAlchemyError, LedgerError) as exc:
                if not transient(exc):
                    if isinstance(exc, LedgerError):
                        raise
                    raise LedgerError(f"job database: {what} failed: {first_line(exc)}") from exc
                now = time.monotonic()
                started = now if started is None else started
                with self._lock:
                    self.outages += 1
                if now - started >= self.patience:
                    self._give_up(exc, what)
                    raise self.unreachable from exc  # type: ignore[misc]
                self._warn(exc, what, now - started)
                time.sleep(min(pause, max(0.0, self.patience - (now - started))))
                pause = min(pause * 2, 5.0)

    def _warn(self, exc: BaseException, what: str, waited: float) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._warned < _QUIET:
                return
            self._warned = now
        log.warning(
            "job database unreachable (%s, %.0f s so far): %s; retrying for up to %.0f s",
            what,
            waited,
            first_line(exc),
            self.patience,
        )

    def _give_up(self, exc: BaseException, what: str) -> None:
        with self._lock:
            if self.unreachable is None:
                self.unreachable = DatabaseUnreachable(
                    f"job database unreachable for {self.patience:g} s ({what}): "
                    f"{first_line(exc)}; this worker stops",
                    hint="its claims expire after --lease and other workers take them over; "
                    "start it again once the database answers (--db-timeout sets the wait)",
                )
            callback = self.on_unreachable
        if callback is not None:
            callback()


def _end_idle_transactions(engine: Engine, seconds: float) -> None:
    """Have the server end this process's sessions that sit in a transaction for
    ``seconds`` (``idle_in_transaction_session_timeout``). A worker paused (SIGSTOP, a
    frozen VM) inside a transaction would otherwise keep its row locks, and the rows it
    holds would be skipped by every other worker's claim long after its lease expired.
    Its own next step then fails like a dropped connection and is retried."""
    milliseconds = max(1000, int(seconds * 1000))

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True  # a SET in a rolled-back transaction is undone
        try:
            dbapi_connection.execute(f"SET idle_in_transaction_session_timeout = {milliseconds}")
        finally:
            dbapi_connection.autocommit = autocommit

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections made before now are made again, with the setting
