"""A file's identity beyond size and mtime: what tells that its bytes may have changed.

Size and mtime miss an in-place rewrite whose mtime was put back (``touch -d``, a
restore, some copy tools) and a file replaced by another of the same size and mtime.
The inode change time (``st_ctime`` on POSIX, moved by every write and by ``utime``
itself) and the inode number catch both. Windows has no inode change time (there
``st_ctime`` is the creation time): only size, mtime and the file index are compared.

The device number is left out on purpose: it names the mount, not the file, and
differs between hosts that see one NFS export, so it cannot be compared across the
workers of a job. Any part that is unknown (``None``) on either side is not compared.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

_HAS_CTIME = sys.platform != "win32"


@dataclass(frozen=True, slots=True)
class FileIdentity:
    size: int
    mtime_ns: int
    ctime_ns: int | None = None  # inode change time (POSIX)
    inode: int | None = None  # None where the file system reports none (0)


def identify(path: str | os.PathLike[str]) -> FileIdentity:
    """The identity of the file at ``path`` now (``OSError`` if it cannot be stat'ed)."""
    return of_stat(os.stat(Path(path)))


def of_stat(info: os.stat_result) -> FileIdentity:
    return FileIdentity(
        size=info.st_size,
        mtime_ns=info.st_mtime_ns,
        ctime_ns=info.st_ctime_ns if _HAS_CTIME else None,
        inode=info.st_ino or None,
    )


def differences(expected: FileIdentity, now: FileIdentity) -> list[str]:
    """What changed between two identities of one file (empty: nothing we can see)."""
    changed = []
    if expected.size != now.size:
        changed.append(f"size {expected.size} -> {now.size}")
    if expected.mtime_ns != now.mtime_ns:
        changed.append("modification time")
    if None not in (expected.ctime_ns, now.ctime_ns) and expected.ctime_ns != now.ctime_ns:
        changed.append("inode change time (rewritten in place?)")
    if None not in (expected.inode, now.inode) and expected.inode != now.inode:
        changed.append("inode (replaced by another file?)")
    return changed
