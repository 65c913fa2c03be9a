"""Where an object goes on disk: object keys to local paths under DEST, safely.

A key maps to DEST joined with its part after the prefix, split on ``/`` (keys always
use ``/``). Refused, never written, with the rule named: an absolute key (a leading
``/``), an empty, ``.`` or ``..`` segment, a segment longer than a file name may be
(255 bytes, or UTF-16 units on Windows and macOS), a NUL character; on Windows also what
Windows reserves in a file name (``ntpath.isreserved`` where Python has it, else the
same rules: ``<>:"/\\|?*`` and control characters, device names such as ``CON`` or
``com1.txt``, trailing dots and spaces); a file name a download's temporary file
takes (``.NAME.s3stow-part``, ``temp_path``); and a path that, once the symlinks
already on disk are resolved, is not inside DEST. The rules are pure functions of the key and
a ``PathRules`` value, so the Windows rules are tested on every OS.

Two keys that name one file on this OS (the same name up to case and Unicode
normalisation on Windows and macOS, and on a DEST whose file system folds case
elsewhere: ``folds_case``), or a key that needs as a folder what another
key writes as a file, collide: the later one is refused (``PathClaims``). The
temporary file of a download sits beside its destination (``temp_path``); the folders a
run writes into are made and checked once each, and re-checked when one is no longer
the folder that was checked (``Folders``).
"""

from __future__ import annotations

import contextlib
import hashlib
import ntpath
import os
import stat
import sys
import tempfile
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

_WINDOWS_CHARS = frozenset({chr(i) for i in range(32)} | set('"*:<>?|/\\'))
_WINDOWS_NAMES = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"{device}{n}" for device in ("COM", "LPT") for n in "123456789\xb9\xb2\xb3"}
)
TEMP_SUFFIX = ".s3stow-part"
NAME_MAX = 255  # a file name's limit on every file system s3stow restores to
_REPARSE = getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0x400)  # Windows' links, junctions


class UnsafePath(ValueError):
    """A key that cannot be a local path here; the message says which rule."""


@dataclass(frozen=True, slots=True)
class PathRules:
    """What the local OS allows in a path, and when two names are one file."""

    windows: bool = False
    fold_case: bool = False  # case-insensitive, normalisation-insensitive names
    name_in_bytes: bool = True  # NAME_MAX (255) counts UTF-8 bytes, else UTF-16 units

    @classmethod
    def for_this_os(cls) -> PathRules:
        others = sys.platform in ("win32", "darwin")  # 255 UTF-16 units or characters
        return cls(windows=sys.platform == "win32", fold_case=others, name_in_bytes=not others)


def folds_case(folder: Path) -> bool:
    """Whether ``folder``'s file system takes two names differing only in case for one
    file (FAT, exFAT, SMB shares, a case-folding folder, mounted on Linux): a probe file
    made there in lower case is found in upper case. ``False`` when it cannot tell."""
    try:
        handle, name = tempfile.mkstemp(prefix=".s3stow-case-probe-", dir=folder)
    except OSError:
        return False
    os.close(handle)
    probe = Path(name)
    try:
        return os.path.lexists(probe.with_name(probe.name.upper()))
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


def windows_reserved(name: str) -> bool:
    """Whether Windows reserves ``name`` as a file name (one path segment).

    The characters ``<>:"/\\|?*`` and 0-31 first (``ntpath.isreserved`` would read a
    separator or a drive's colon as structure, not as part of a name); then
    ``ntpath.isreserved`` (Python 3.13+) where it exists, else its rules: trailing dots
    and spaces, and DOS device names with or without an extension (``nul``,
    ``COM1.txt``, ``lpt\xb9``).
    """
    if _WINDOWS_CHARS.intersection(name):
        return True
    isreserved = getattr(ntpath, "isreserved", None)
    if isreserved is not None and name not in ("", ".", ".."):
        return bool(isreserved(name))
    if name[-1:] in (".", " "):
        return name not in (".", "..")
    return name.partition(".")[0].rstrip(" ").upper() in _WINDOWS_NAMES


def relative_parts(key: str, prefix: str, rules: PathRules, *, what: str = "key") -> list[str]:
    """The path segments of ``key`` below ``prefix``; ``UnsafePath`` when the key
    cannot be a local path under these rules (``what`` names it in the message: an
    archive row's ``local_file_path`` is no key)."""
    if not key.startswith(prefix):
        raise UnsafePath(f"{what} is not under the prefix {prefix!r}")
    rest = key[len(prefix) :]
    if rest.startswith("/"):
        raise UnsafePath(f"{what} is an absolute path (starts with '/')")
    if "\x00" in rest:
        raise UnsafePath(f"{what} contains a NUL character")
    parts = rest.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePath(f"{what} has a {part or 'empty'!r} path segment")
        if _name_length(part, rules) > NAME_MAX:
            raise UnsafePath(
                f"{what} has a path segment of {_name_length(part, rules)} "
                f"{'bytes' if rules.name_in_bytes else 'characters'}, longer than a file "
                f"name may be ({NAME_MAX})"
            )
        if rules.windows and windows_reserved(part):
            raise UnsafePath(
                f"{part!r} is not a valid file name on Windows (reserved device name, "
                'a character of <>:"/\\|?* or a control character, or a trailing dot or space)'
            )
    if is_temp_name(parts[-1]):
        raise UnsafePath(
            f"{parts[-1]!r} is the name of the temporary file a download writes beside its "
            "destination (s3stow's own, removed or renamed by that download)"
        )
    return parts


def is_temp_name(name: str) -> bool:
    """Whether ``name`` is one ``temp_path`` gives (``.NAME.s3stow-part``): a key with
    it would be written over, or renamed away, by the download of ``NAME`` beside it."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX) and len(name) > len(TEMP_SUFFIX) + 1


def _name_length(name: str, rules: PathRules) -> int:
    if rules.name_in_bytes:
        return len(name.encode("utf-8", "surrogatepass"))
    return len(name.encode("utf-16-le", "surrogatepass")) // 2


def local_path(root: Path, parts: list[str], *, checked: set[str] | None = None) -> Path:
    """``root`` joined with ``parts``, refused unless its folder stays inside ``root`` (a
    resolved directory) once the symlinks already on disk are followed (``checked``:
    folders already found inside, by their path below ``root`` with ``/``, not
    resolved again; a folder is named by a string, not a ``Path``, so a planned object
    costs one ``Path``: its own). The file itself may be a symlink: the rename that
    puts the restored file in place replaces the link."""
    path = root.joinpath(*parts)
    if checked is None:
        ensure_inside(root, path.parent)
        return path
    folder = "/".join(parts[:-1])
    if folder not in checked:
        ensure_inside(root, path.parent)
        checked.add(folder)
    return path


def ensure_inside(root: Path, path: Path) -> None:
    """Raise ``UnsafePath`` if ``path`` (resolved) is not inside ``root`` (a resolved
    folder); checked at planning and again around creating the folders, just before
    writing.

    ``path`` is ``root`` joined with names that are neither ``..`` nor empty (the key
    rules), so only what lies below ``root`` can lead outside: its folders are looked
    at one by one from ``root`` down (one ``lstat`` each, none above ``root``), and a
    name that does not exist ends the check (nothing below it exists either). A
    symbolic link, a Windows junction or any reparse point, or anything unexpected
    (a file where a folder is named), is resolved in full, as ``Path.resolve`` does.
    Resolving every path in full cost an ``lstat`` per folder above ``root`` too, each
    a turn at the interpreter's lock given up in the main thread, which plans."""
    top, full = str(root), str(path)
    if full == top:
        return
    below = top if top.endswith(os.sep) else top + os.sep
    if full.startswith(below):
        current = top
        for name in full[len(below) :].split(os.sep):
            current = os.path.join(current, name)
            try:
                found = os.lstat(current)
            except FileNotFoundError:
                return  # no symlink below: the rest is inside
            except OSError:
                break  # (a file where a folder is named): resolved in full
            if stat.S_ISLNK(found.st_mode) or getattr(found, "st_file_attributes", 0) & _REPARSE:
                break
        else:
            return
    resolved = path.resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise UnsafePath(f"{path} leads outside {root} (through a symlink)")


class Folders:
    """The folders a run has made and found inside DEST, each by its identity (device
    and inode), so a file's folder is checked once, not resolved again per file.

    ``ready`` makes a folder and checks it is inside DEST (``ensure_inside``, before and
    after ``mkdir``) the first time, then only compares its identity (one ``stat``, which
    follows symlinks): a folder replaced since, by a symlink anywhere on its path or by
    another folder, has another identity and is checked again in full before anything
    is written into it. The listing names a folder's objects together, so many threads
    want one new folder at once: one makes and checks it while the others wait for it
    (without the lock each of them made and resolved it, about 13 ``stat`` calls per
    object of the small benchmark instead of one)."""

    def __init__(self) -> None:
        self._known: dict[Path, tuple[int, int]] = {}
        self._making: dict[Path, threading.Lock] = {}  # a lock per folder being checked
        self._lock = threading.Lock()

    def ready(self, root: Path, folder: Path) -> None:
        if self._still(folder):
            return
        with self._lock:
            making = self._making.setdefault(folder, threading.Lock())
        with making:  # one thread checks a new folder; the others find it known
            if self._still(folder):
                return
            ensure_inside(root, folder)  # a symlink made since the plan
            folder.mkdir(parents=True, exist_ok=True)
            found = os.stat(folder)
            ensure_inside(root, folder)
            self._known[folder] = (found.st_dev, found.st_ino)

    def _still(self, folder: Path) -> bool:
        """Whether ``folder`` was checked and is still the folder that was."""
        known = self._known.get(folder)
        if known is None:
            return False
        try:
            found = os.stat(folder)
        except OSError:
            return False
        return (found.st_dev, found.st_ino) == known


def temp_path(path: Path) -> Path:
    """The temporary file beside ``path`` that a download writes before the rename."""
    name = f".{path.name}{TEMP_SUFFIX}"
    if len(name.encode("utf-8", "surrogatepass")) > 240:  # stay within NAME_MAX
        digest = hashlib.sha256(path.name.encode("utf-8", "surrogatepass")).hexdigest()[:24]
        name = f".{digest}{TEMP_SUFFIX}"
    return path.with_name(name)


class PathClaims:
    """The local paths a run has given out, to refuse a second key for one file."""

    def __init__(self, rules: PathRules) -> None:
        self.rules = rules
        self._files: dict[bytes, str] = {}  # digest of the path -> the key that took it
        self._folders: set[bytes] = set()

    def _digest(self, parts: list[str]) -> bytes:
        text = "/".join(parts)
        if self.rules.fold_case:
            text = unicodedata.normalize("NFC", text).casefold()
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=12).digest()

    def claim(self, parts: list[str], key: str) -> str | None:
        """``None`` when ``key`` may write ``parts``, else why not."""
        file = self._digest(parts)
        other = self._files.get(file)
        if other is not None and other != key:
            return f"{other!r} restores to the same local file"
        if file in self._folders:
            return "another key needs this path as a folder"
        folders = [self._digest(parts[:depth]) for depth in range(1, len(parts))]
        for depth, folder in enumerate(folders, start=1):
            if folder in self._files:
                return f"{'/'.join(parts[:depth])!r} is restored as a file, not a folder"
        self._files[file] = key
        self._folders.update(folders)
        return None
