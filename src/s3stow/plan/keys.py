"""Object keys: parsing ``s3://bucket/prefix`` targets and building safe keys.

A key is the prefix plus the file's POSIX relative path, normalised to NFC.
Keys that S3 or later readers would mishandle are refused with a reason:
``.``/``..``/empty segments, control characters, more than 1024 UTF-8 bytes. A
backslash is an ordinary key character (a POSIX file name may hold one), but a ``..``
between backslashes, or a start like ``C:\\`` or ``\\\\``, is refused too: a Windows
reader would climb out of its folder.
A file that never got a key is known to the ledger by its ``local_key``.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path

from s3stow.errors import ConfigError
from s3stow.localfiles import display_path
from s3stow.models import Target

MAX_KEY_BYTES = 1024
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_WINDOWS_SEPARATORS = re.compile(r"[/\\]")
_WINDOWS_ABSOLUTE = re.compile(r"[A-Za-z]:\\|\\\\")  # C:\... or \\server\share


class UnsafeKeyError(ValueError):
    """A key that must not be uploaded; the message says why."""


def validate_bucket(name: str) -> str:
    """Return ``name`` if it is a valid S3 bucket name, else raise ``ConfigError``."""
    if not _BUCKET_RE.match(name) or ".." in name or _IP_RE.match(name):
        alone = name.removeprefix("s3://").strip("/").split("/")[0]
        if alone != name and _BUCKET_RE.match(alone):  # s3://b, b/, b/prefix: the URL
            hint = f"give the bucket's name alone: {alone}"
        else:
            hint = (
                "bucket names are 3-63 characters of a-z, 0-9, '.' and '-', "
                "starting and ending with a letter or digit"
            )
        raise ConfigError(f"{name!r} is not a valid bucket name", hint=hint)
    return name


def parse_target(url: str) -> Target:
    """Parse ``s3://bucket[/prefix]``; the prefix is normalised to end with ``/``, and
    checked by ``normalise_prefix``, the rule every prefix s3stow is given follows."""
    if not url.startswith("s3://"):
        raise ConfigError(
            f"destination {url!r} is not an S3 URL", hint="write it as s3://BUCKET[/PREFIX]"
        )
    bucket, _, prefix = url[len("s3://") :].partition("/")
    validate_bucket(bucket)
    named = f"the prefix of {url!r}"
    return Target(bucket, normalise_prefix(prefix, named=named, write=f"s3://{bucket}/{{}}"))


def checked_target(target: Target) -> Target:
    """A ``Target`` a library caller built, checked and normalised as ``parse_target``
    checks a URL (``Target("b", "a/b")`` is ``a/b/``; ``"a//b"`` is refused)."""
    bucket = validate_bucket(target.bucket)
    prefix = normalise_prefix(
        target.prefix,
        named=f"the prefix {target.prefix!r} of Target({bucket!r}, ...)",
        write=f"Target({bucket!r}, {{!r}})",
    )
    return target if prefix == target.prefix else Target(bucket, prefix)


def normalise_prefix(prefix: str, *, named: str | None = None, write: str = "{}") -> str:
    """The one rule for every key prefix s3stow is given: ``s3://BUCKET/PREFIX``,
    ``retry --prefix``, ``bucket --prefix``, the library's ``Target`` and ``PREFIX``.

    ``a/b`` -> ``a/b/``; a ``\\`` counts as ``/``; empty (or ``/`` alone) stays empty.
    An empty segment (``a//b``, a leading ``/``) is refused (exit 2), for every command
    alike: S3 keeps ``a//b/x`` apart from ``a/b/x``, so taking it as ``a/b/`` would
    write and read other keys than the ones named, and keeping it would make keys that
    ``restore`` refuses (an empty folder name cannot be a local path). So is a ``.`` or
    ``..`` segment. ``named`` says how the user gave it (default ``prefix 'a//b'``);
    ``write`` spells the fix, ``{}`` standing for the prefix (``--prefix {}``).
    """
    shown = named or f"prefix {prefix!r}"
    parts = prefix.replace("\\", "/").split("/")
    if parts[-1] == "":  # one trailing / ends a folder
        parts.pop()
    if parts in ([], [""]):
        return ""
    kept = [p for p in parts if p not in ("", ".", "..")]
    tidy = "/".join(kept) + "/" if kept else ""
    dots = sorted({p for p in parts if p in (".", "..")})
    if dots:
        raise ConfigError(
            f"{shown} has a {' and a '.join(repr(d) for d in dots)} segment: a key prefix "
            "names folders, it cannot climb out of one",
            hint=f"write the folders it means, e.g. {write.format(tidy)}",
        )
    if _CONTROL_RE.search(prefix):  # else every key under it: UnsafeKey, file by file
        raise ConfigError(
            f"{shown} holds a control character (a tab, a line break, an escape): S3 keys "
            "under it would be refused, each file alone",
            hint="write the prefix without it",
        )
    if "" in parts:
        where = "starts with /" if parts[0] == "" else "has an empty segment (//)"
        raise ConfigError(
            f"{shown} {where}: S3 keeps such keys apart from those with one /, and "
            "restore cannot make an empty folder name",
            hint=f"write {write.format(tidy)}",
        )
    return "/".join(parts) + "/"


def build_key(prefix: str, rel_path: str) -> str:
    """Join the prefix and a relative POSIX path into a checked, NFC-normalised key."""
    key = unicodedata.normalize("NFC", prefix + rel_path)
    check_key(key)
    return key


def local_key(path: Path) -> str:
    """The ledger key of a file that failed before it had an object key (a name that
    is not UTF-8, a key collision): its absolute path as text, bytes that are not
    UTF-8 written ``\\xNN``. No object key starts with ``/`` (POSIX) and none with a
    drive or a share (``C:\\``, ``\\\\``: Windows), so the two never meet."""
    return display_path(Path(os.path.abspath(path)))


def is_local_key(key: str) -> bool:
    """Whether a ledger key is a ``local_key`` (no object has it). A backslash alone
    says nothing: a POSIX file name may hold one, and its key keeps it."""
    return key.startswith("/") or _WINDOWS_ABSOLUTE.match(key) is not None


def check_key(key: str) -> None:
    """Raise ``UnsafeKeyError`` when ``key`` is unsafe to upload."""
    if not key:
        raise UnsafeKeyError("empty key")
    if key.startswith("/"):
        raise UnsafeKeyError("key starts with '/'")
    if _CONTROL_RE.search(key):
        raise UnsafeKeyError("key contains a control character")
    for segment in key.split("/"):
        if segment in ("", ".", ".."):
            shown = segment or "empty"
            raise UnsafeKeyError(f"key has a {shown!r} path segment")
    if "\\" in key:
        if ".." in _WINDOWS_SEPARATORS.split(key):
            raise UnsafeKeyError("key has a '..' segment between backslashes (unsafe on Windows)")
        if _WINDOWS_ABSOLUTE.match(key):
            raise UnsafeKeyError("key starts like a Windows absolute path (C:\\ or \\\\)")
    size = len(key.encode("utf-8", errors="surrogatepass"))
    if size > MAX_KEY_BYTES:
        raise UnsafeKeyError(f"key is {size} bytes long; S3 allows at most {MAX_KEY_BYTES}")
