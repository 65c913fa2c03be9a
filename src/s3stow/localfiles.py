"""Local-file helpers every stage may use: a file's identity (what tells that its bytes
may have changed without reading them), a text file replaced atomically (status
heartbeats, snapshots), a text file's bytes decoded (UTF-8, or UTF-16 with a byte-order
mark), a path shown as valid text (names that are not UTF-8), why an output file
(status file, failures file) could never be written (``output_problem``), whether a
folder is on a read-only file system (``on_read_only_filesystem``) and a local
path typed on the command line, an empty one refused (``given_path``).

Size and mtime miss an in-place rewrite whose mtime was put back (``touch -d``, a
restore, some copy tools) and a file replaced by another of the same size and mtime.
The inode change time (``st_ctime`` on POSIX, moved by every write and by ``utime``
itself) and the inode number catch both. Windows has no inode change time (there
``st_ctime`` is the creation time, as ``os.stat`` documents): only size, mtime and the
file index (``st_ino``) with the volume serial (``st_dev``) are compared there. A part
unknown on either side (``None``) is not compared: a job's workers see one file through
different mounts, so their identities carry no device.
"""

from __future__ import annotations

import codecs
import os
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from s3stow.errors import ConfigError


def given_path(value: str, *, what: str, fix: str) -> Path:
    """``value``, a local path the user typed, as a ``Path``; an empty (or blank) one is
    refused (exit 2): ``Path("")`` is ``.``, so a shell variable left unset would name
    the current folder. ``what`` names the argument ("the source path"); ``fix`` says
    what to give instead ("name the file or folder to upload")."""
    if not value.strip():
        raise ConfigError(
            f"{what} is empty ({value!r})",
            hint=f"{fix} (. for the current folder; check the variable that should hold it)",
        )
    return Path(value)


def output_problem(path: Path) -> str | None:
    """Why ``path`` can never be written as a file, in words (a folder; a file where one
    of its folders should be), else None; its folder is created, as a write would."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        return f"{blocker} is a file, not a folder" if blocker else str(exc.strerror or exc)
    return "it is a folder" if path.is_dir() else None


def on_read_only_filesystem(path: Path) -> bool:
    """Whether ``path`` is on a file system mounted read-only, to word a refusal; False
    where that cannot be told (no ``statvfs`` on Windows, a path that does not exist)."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and an atomic replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _replace(source: str, path: Path) -> None:
    """``os.replace``; on Windows retried for about a second while it is refused.

    Windows refuses to replace a file another process has open (a reader of the
    status file: ``s3stow status``, a dashboard; a virus scanner), with
    ``PermissionError`` (``ERROR_ACCESS_DENIED`` or a sharing violation); such a reader
    lets go within milliseconds. POSIX replaces an open file, so there a
    ``PermissionError`` is a real one and raised at once.
    """
    delay = 0.01
    for _ in range(7):  # 10 ms doubling: 1.27 s in all
        try:
            os.replace(source, path)
            return
        except PermissionError:
            if sys.platform != "win32":
                raise
            time.sleep(delay)
            delay *= 2
    os.replace(source, path)


def decode_text(raw: bytes, errors: str = "strict") -> str:
    """A text file's bytes as text: UTF-8, or UTF-16 where a byte-order mark says so
    (Windows PowerShell 5.1 writes UTF-16 with ``>``, ``2>`` and ``Out-File``); a UTF-8
    mark is dropped."""
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16", errors)
    return raw.decode("utf-8-sig", errors)


def display_path(path: Path) -> str:
    """``path`` as valid text for messages and the ledger (not-UTF-8 bytes as ``\\xNN``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# Windows: st_ctime is the creation time (os.stat documents it), not a change time.
_HAS_CHANGE_TIME = os.name != "nt"

# The ledger's integer columns are signed 64-bit (BIGINT): a time in nanoseconds past
# 2262-04-11 (or before 1677-09-21) does not fit, and SQLite refuses it (OverflowError)
# where PostgreSQL would fail the batch. Such a time (a file touched far ahead, an
# ``mtime`` metadata another tool stored) is kept at the nearest end, and a file's
# times are compared with the ledger's as the ledger holds them.
_BIGINT = (-(2**63), 2**63 - 1)


def stored_ns(value: int) -> int:
    """``value`` (nanoseconds) as the ledger's BIGINT columns can hold it."""
    return min(max(value, _BIGINT[0]), _BIGINT[1])


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """What tells one version of a file from another without reading it."""

    size: int
    mtime_ns: int
    ctime_ns: int | None = None  # last status change (POSIX); None where the OS has none
    inode: int | None = None  # None where the file system reports none (0)
    device: int | None = None  # None where it must not count (another host's mount)

    @classmethod
    def of(cls, info: os.stat_result) -> FileIdentity:
        """The identity in ``info`` (an ``os.stat`` result)."""
        return cls(
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns if _HAS_CHANGE_TIME else None,
            info.st_ino or None,
            info.st_dev if info.st_ino else None,
        )

    @classmethod
    def at(cls, path: str | os.PathLike[str]) -> FileIdentity:
        """The identity of the file at ``path`` now (``OSError`` if it cannot be stat'ed)."""
        return cls.of(os.stat(Path(path)))

    @property
    def whole(self) -> bool:
        """Whether it holds a change time and an inode (POSIX): then no write or
        replacement after it was taken can go unseen."""
        return self.ctime_ns is not None and self.inode is not None

    @property
    def file_id(self) -> str | None:
        """``device:inode`` as the ledger keeps it, or ``None``."""
        if self.inode is None:
            return None
        return f"{self.device}:{self.inode}" if self.device is not None else str(self.inode)

    @classmethod
    def recorded(
        cls, size: int, mtime_ns: int, ctime_ns: int | None, file_id: str | None
    ) -> FileIdentity:
        """An identity read back from the ledger (``file_id`` as ``file_id`` wrote it)."""
        device, _, inode = (file_id or "").rpartition(":")
        return cls(
            size,
            mtime_ns,
            ctime_ns,
            int(inode) if inode.isdigit() else None,
            int(device) if device.lstrip("-").isdigit() else None,
        )

    def without_device(self) -> FileIdentity:
        """This identity for comparing across hosts (a shared file's mounts differ)."""
        return replace(self, device=None)

    def unchanged(self, info: os.stat_result) -> bool:
        """``not self.changes(FileIdentity.of(info))`` without building either: the
        check runs twice per uploaded file, and the identity it would build costs
        more than the ``stat``."""
        if info.st_size != self.size or info.st_mtime_ns != self.mtime_ns:
            return False
        if _HAS_CHANGE_TIME and self.ctime_ns is not None and info.st_ctime_ns != self.ctime_ns:
            return False
        inode = info.st_ino
        if not inode:  # no inode now: neither inode nor device is compared
            return True
        if self.inode is not None and inode != self.inode:
            return False
        return self.device is None or info.st_dev == self.device

    def changes(self, now: FileIdentity) -> list[str]:
        """What differs in ``now`` (a part is compared only when both have it)."""
        moved = []
        if now.size != self.size:
            moved.append(f"size {self.size} -> {now.size}")
        if stored_ns(now.mtime_ns) != stored_ns(self.mtime_ns):  # as a ledger holds them
            moved.append("modification time moved")
        then_changed, now_changed = self.ctime_ns, now.ctime_ns
        if (
            then_changed is not None
            and now_changed is not None
            and stored_ns(now_changed) != stored_ns(then_changed)
        ):
            moved.append("status-change time moved: written to in place")
        if None not in (self.inode, now.inode) and now.inode != self.inode:
            moved.append("another file at that path (new inode)")
        elif None not in (self.device, now.device) and now.device != self.device:
            moved.append("another file at that path (another device)")
        return moved
