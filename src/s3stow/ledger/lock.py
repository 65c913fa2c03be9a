"""One run per ledger and target at a time: ``run_lock``.

Two runs of one tree into one ledger and target would each upload every part. A run
of ``upload``, ``watch`` or ``archive`` holds an exclusive lock on its ledger and
target (bucket and prefix) while it runs; a second one exits 3 naming the holder's
pid and host. It does not wait: a run started on a timer leaves the work to the run
already going, and the next tick starts afresh. Runs into other targets, or with
other ledgers, are not held up. The OS releases each lock when its process ends,
however it ends, so no lock outlives its run.

SQLite ledger: an OS file lock (``fcntl.lockf`` on POSIX, ``msvcrt.locking`` on
Windows) on byte 0 of ``<ledger>-<hash of the target>.lock`` beside the ledger; the
holder's pid, host and start follow from byte 1 (on Windows a locked byte cannot be
read), and the file is removed when the run ends. PostgreSQL ledger: a session
advisory lock (``pg_try_advisory_lock``) on a connection held for the run; the
holder is found in ``pg_locks`` and named by its ``application_name``. ``job``
workers share one target by design and take no lock.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from s3stow.errors import LedgerError
from s3stow.ledger.marker import APPLICATION_ID
from s3stow.ledger.sql import Ledger
from s3stow.ledger.sqlite_backend import SqliteDatabase
from s3stow.models import Target

_HINT = (
    "wait for that run to end (its lock ends with its process), or use another --ledger "
    "or destination"
)
_held: set[str] = set()  # lock files this process holds (POSIX locks are per process)
_held_lock = threading.Lock()


class RunLocked(LedgerError):
    """Another run holds the ledger and target (exit 3)."""


def lock_path(ledger: Path, target: Target) -> Path:
    """The lock file of ``target`` beside the SQLite ledger ``ledger``."""
    return ledger.with_name(f"{ledger.name}-{_digest(target).hex()[:12]}.lock")


@contextmanager
def run_lock(ledger: Ledger, target: Target) -> Iterator[None]:
    """Hold the run lock of ``ledger`` and ``target`` (``RunLocked`` when taken)."""
    database = ledger.database
    if isinstance(database, SqliteDatabase):
        with _file_lock(lock_path(database.path, target), target, database.path):
            yield
        return
    # not imported for a SQLite ledger: it is the SQLAlchemy side
    from s3stow.ledger.sqlalchemy_backend import SqlAlchemyDatabase

    if isinstance(database, SqlAlchemyDatabase) and database.engine().dialect.name == "postgresql":
        with _advisory_lock(database.engine(), target):
            yield
    else:
        yield


def _digest(target: Target) -> bytes:
    return hashlib.blake2b(f"{target.bucket}/{target.prefix}".encode(), digest_size=8).digest()


def _holder() -> str:
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"pid {os.getpid()} on {socket.gethostname()}, started {started}"


def _refused(target: Target, ledger: str, holder: str) -> RunLocked:
    return RunLocked(
        f"another s3stow run is uploading to {target.url} with the ledger {ledger}: {holder}",
        hint=_HINT,
    )


# ---- SQLite: an OS lock on byte 0 of a file beside the ledger --------------------------
if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)

    def _unlock(fd: int) -> None:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, 0)


@contextmanager
def _file_lock(path: Path, target: Target, ledger: Path) -> Iterator[None]:
    key = os.path.normcase(os.path.abspath(path))
    with _held_lock:
        if key in _held:
            raise _refused(target, str(ledger), f"pid {os.getpid()} (this process)")
        _held.add(key)
    try:
        fd = _acquire(path, target, ledger)
        try:
            yield
        finally:
            _release(fd, path)
    finally:
        with _held_lock:
            _held.discard(key)


def _acquire(path: Path, target: Target, ledger: Path) -> int:
    for _ in range(10):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _try_lock(fd)
        except OSError:
            os.lseek(fd, 1, os.SEEK_SET)
            holder = os.read(fd, 512).decode("utf-8", "replace").strip() or "(starting)"
            os.close(fd)
            raise _refused(target, str(ledger), holder) from None
        try:  # the holder may have removed the file between our open and our lock
            current = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            current = False
        if current:
            info = _holder().encode()
            os.lseek(fd, 1, os.SEEK_SET)
            os.write(fd, info)
            os.ftruncate(fd, 1 + len(info))
            return fd
        _unlock(fd)
        os.close(fd)
    raise LedgerError(f"cannot take the run lock {path}: it keeps being replaced")


def _release(fd: int, path: Path) -> None:
    if sys.platform == "win32":  # an open file cannot be removed on Windows: close first
        _unlock(fd)
        os.close(fd)
        with suppress(OSError):  # another run opened it meanwhile: it is that run's now
            path.unlink()
    else:  # removed while held: a run that opened it before sees it gone and retries
        path.unlink(missing_ok=True)
        os.close(fd)


# ---- PostgreSQL: a session advisory lock ------------------------------------------------
_WHO = (
    "SELECT a.application_name, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = CAST(:k1 AS oid)"
    " AND l.objid = CAST(:k2 AS oid) AND l.objsubid = 2"
)


@contextmanager
def _advisory_lock(engine: Any, target: Target) -> Iterator[None]:
    from sqlalchemy import text

    keys = {"k1": APPLICATION_ID, "k2": int.from_bytes(_digest(target)[:4], "big") & 0x7FFFFFFF}
    connection = engine.connect()
    try:
        name = {"name": f"s3stow {_holder()}"[:63]}
        connection.execute(text("SELECT set_config('application_name', :name, false)"), name)
        taken = connection.execute(
            text("SELECT pg_try_advisory_lock(CAST(:k1 AS integer), CAST(:k2 AS integer))"), keys
        ).scalar()
        if not taken:
            row = connection.execute(text(_WHO), keys).first()
            holder = row[0].removeprefix("s3stow ") if row else "(holder unknown)"
            raise _refused(target, _redacted(engine), holder)
        connection.commit()
        yield
    finally:
        connection.invalidate()  # ends the session, and its advisory lock with it
        connection.close()


def _redacted(engine: Any) -> str:
    return str(engine.url.render_as_string(hide_password=True))
