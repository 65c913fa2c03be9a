"""Discovery: stream the regular files under the sources, and what was skipped.

Walks with ``os.scandir`` (one ``stat`` per entry, directories in sorted order)
and yields as it goes, so a tree of millions of files starts uploading at once
and is never held in memory. Symlinks are not followed unless asked, and then
only to targets inside the source root, with loops detected by (device, inode).
Special files, unreadable directories and names that are not valid UTF-8 are
yielded as ``Skipped`` with the reason, never silently dropped or mangled; so is
every file under a source marked ``skip`` (what a layout leaves out).
s3stow's own working files (``ownfiles.OwnFiles``: the ledger and its journals, run
locks, the status and failures files) are left out, and said so under ``-v``.
A file's ``stat`` travels with it (``SourceFile.found``): its upload takes the file's
identity from it instead of a second ``stat`` (``transfer.context.open_identity``).
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

from s3stow.errors import SourceError
from s3stow.models import LAYOUT, Skipped, Source, SourceFile
from s3stow.plan.ownfiles import OwnFiles

Found = SourceFile | Skipped
log = logging.getLogger(__name__)
INVALID_NAME = "InvalidName"
NOT_UTF8 = "name is not valid UTF-8; rename it to upload it"


def check_sources(sources: Iterable[Path | Source]) -> list[Path | Source]:
    """Fail early (exit 2) when a source does not exist or is not a file/directory."""
    checked: list[Path | Source] = []
    for item in sources:
        source = item.path if isinstance(item, Source) else item
        if not os.path.lexists(source):
            raise SourceError(
                f"source {source} does not exist", hint="check the path and the current directory"
            )
        if not (source.is_dir() or source.is_file()):
            raise SourceError(f"source {source} is neither a regular file nor a directory")
        checked.append(item)
    return checked


ROOT_GROUP = "(root)"


def discover(
    sources: Iterable[Path | Source],
    *,
    follow_symlinks: bool = False,
    own: OwnFiles | None = None,
) -> Iterator[Found]:
    """Yield every file (and every skipped path) under ``sources``, streaming.

    A file's group is its source's group (a folder type) or, when the source has
    none, the top-level directory of its relative path (``(root)`` for files at
    the top). ``own``: s3stow's working files, left out.
    """
    for source in sources:
        spec = source if isinstance(source, Source) else Source(source)
        if spec.skip is not None:  # left out whatever it is: named, never a failure
            found = discover([Source(spec.path)], follow_symlinks=follow_symlinks, own=own)
            for skipped in found:
                yield Skipped(skipped.path, spec.skip, LAYOUT)
        elif spec.path.is_file():
            if not _own(own, spec.path):
                yield from _single_file(spec.path, spec.group or ROOT_GROUP)
        else:
            yield from _walk(spec.path, spec.group, follow_symlinks=follow_symlinks, own=own)


def _own(own: OwnFiles | None, path: Path, name: str | None = None) -> bool:
    """Whether ``path`` is one of s3stow's own files (said under -v)."""
    if own is None or not own.may_be(name or path.name):
        return False
    what = own.what(path)
    if what is not None:
        log.info("not uploading %s: it is %s", path, what)
    return what is not None


def _single_file(path: Path, group: str) -> Iterator[Found]:
    try:
        info = path.stat()
    except OSError as exc:
        yield Skipped(path, f"cannot stat: {exc.strerror}")
        return
    yield SourceFile(path, path.name, info.st_size, info.st_mtime_ns, path.parent, group, info)


def _valid_name(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# A Windows directory junction (a mount point): ``DirEntry.is_symlink`` is False for it
# (Python 3.12 adds ``is_junction``), but its reparse tag is in the entry's stat on
# every version s3stow supports. Followed only as a symlink is.
_IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003


def _junction(info: os.stat_result) -> bool:
    return getattr(info, "st_reparse_tag", 0) == _IO_REPARSE_TAG_MOUNT_POINT


def _dir_identity(
    entry: os.DirEntry[str], info: os.stat_result, follow: bool
) -> tuple[int, int] | None:
    """(device, inode) of a directory entry, for loop detection; ``None`` when the file
    system gives the folder no identity.

    On Windows ``DirEntry.stat`` sets ``st_ino`` and ``st_dev`` to zero for entries
    that are not symlinks (the ``os`` documentation says so, and to call ``os.stat``
    for them): every folder would look like the first one and all but that one be
    skipped as a loop. There the identity comes from ``os.stat``, once per folder.
    """
    if info.st_ino == 0 and info.st_dev == 0:
        try:
            info = os.stat(entry.path, follow_symlinks=follow)
        except OSError:
            return None
    return (info.st_dev, info.st_ino) if info.st_ino else None


def _walk(
    root: Path, group: str, *, follow_symlinks: bool, own: OwnFiles | None
) -> Iterator[Found]:
    real_root = os.path.realpath(root)
    try:
        root_info = os.stat(root)
    except OSError as exc:  # gone (or unreadable) since check_sources looked
        yield Skipped(root, f"cannot read directory: {exc.strerror}")
        return
    seen_dirs = {(root_info.st_dev, root_info.st_ino)}
    stack: list[tuple[Path, str]] = [(Path(root), "")]
    while stack:
        directory, rel_dir = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield Skipped(directory, f"cannot read directory: {exc.strerror}")
            continue
        subdirs: list[tuple[Path, str]] = []
        for entry in entries:
            rel = f"{rel_dir}{entry.name}"
            path = directory / entry.name  # cheaper than parsing entry.path again
            if not _valid_name(entry.name):
                yield Skipped(path, NOT_UTF8, INVALID_NAME)
                continue
            try:
                is_link = entry.is_symlink()
                info = entry.stat(follow_symlinks=follow_symlinks)
            except OSError as exc:
                reason = "broken symlink" if is_link else f"cannot stat: {exc.strerror}"
                yield Skipped(path, reason)
                continue
            if is_link or _junction(info):
                what = "symlink" if is_link else "junction"
                if not follow_symlinks:
                    yield Skipped(path, f"{what} not followed (use --follow-symlinks)", "Symlink")
                    continue
                target = os.path.realpath(entry.path)
                if os.path.commonpath([real_root, target]) != real_root:
                    yield Skipped(path, f"{what} points outside the source tree", "Symlink")
                    continue
            mode = info.st_mode
            if stat.S_ISDIR(mode):
                ident = _dir_identity(entry, info, follow_symlinks)
                if ident in seen_dirs:
                    yield Skipped(path, "symlink loop (directory already visited)", "Symlink")
                    continue
                if ident is not None:
                    seen_dirs.add(ident)
                subdirs.append((path, rel + "/"))
            elif stat.S_ISREG(mode):
                if own is not None and _own(own, path, entry.name):
                    continue
                top = group or (rel.split("/", 1)[0] if "/" in rel else ROOT_GROUP)
                yield SourceFile(path, rel, info.st_size, info.st_mtime_ns, root, top, info)
            else:
                yield Skipped(path, "not a regular file (socket, FIFO or device)", "SpecialFile")
        stack.extend(reversed(subdirs))
