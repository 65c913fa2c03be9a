"""File selection: which discovered files a run takes.

``--include``/``--exclude`` use gitignore semantics (via ``pathspec``: ``*``
stays within a segment, ``**`` crosses directories, a pattern without ``/``
matches at any depth, a trailing ``/`` means a directory). A file is taken when
it matches at least one include (or there are none) and no exclude: exclude
always wins, and the order of the options does not matter. Patterns and paths are
compared in Unicode NFC, the form of the keys: a name macOS lists decomposed (NFD, as
HFS+ stores every name) matches the pattern typed for it. Size bounds are
inclusive; ``newer_than``/``older_than`` compare the file's mtime. Folder types
add an extension filter per group.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from s3stow.errors import ConfigError
from s3stow.models import SourceFile
from s3stow.units import parse_point_in_time

if TYPE_CHECKING:
    import pathspec


@dataclass(frozen=True)
class Selector:
    """Decides for each discovered file whether the run takes it."""

    include: pathspec.GitIgnoreSpec | None = None
    exclude: pathspec.GitIgnoreSpec | None = None
    min_size: int | None = None
    max_size: int | None = None
    newer_than: float | None = None  # epoch seconds
    older_than: float | None = None
    extensions: Mapping[str, frozenset[str]] | None = None  # group -> allowed suffixes

    @classmethod
    def build(
        cls,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        min_size: int | None = None,
        max_size: int | None = None,
        newer_than: str | None = None,
        older_than: str | None = None,
        extensions: Mapping[str, frozenset[str]] | None = None,
        now: float | None = None,
    ) -> Selector:
        moment = time.time() if now is None else now
        try:
            newer = parse_point_in_time(newer_than, now=moment) if newer_than else None
            older = parse_point_in_time(older_than, now=moment) if older_than else None
        except ValueError as exc:
            raise ConfigError(str(exc), hint="--newer-than 7d or --older-than 2025-01-31") from None
        if min_size is not None and max_size is not None and min_size > max_size:
            raise ConfigError(f"--min-size {min_size} is larger than --max-size {max_size}")
        return cls(
            include=_spec(include, "--include"),
            exclude=_spec(exclude, "--exclude"),
            min_size=min_size,
            max_size=max_size,
            newer_than=newer,
            older_than=older,
            extensions=extensions,
        )

    @property
    def active(self) -> bool:
        return any(
            v is not None
            for v in (
                self.include,
                self.exclude,
                self.min_size,
                self.max_size,
                self.newer_than,
                self.older_than,
                self.extensions,
            )
        )

    def takes_path(self, rel: str) -> str | None:
        """What the patterns alone say of a relative path: ``None`` when taken."""
        rel = nfc(rel)
        if self.exclude is not None and self.exclude.match_file(rel):
            return "excluded"
        if self.include is not None and not self.include.match_file(rel):
            return "not included"
        return None

    def takes(self, source: SourceFile) -> str | None:
        """``None`` when the file is taken, else the reason it is not."""
        rel = source.rel_path
        by_path = self.takes_path(rel)
        if by_path is not None:
            return by_path
        if self.min_size is not None and source.size < self.min_size:
            return "smaller than --min-size"
        if self.max_size is not None and source.size > self.max_size:
            return "larger than --max-size"
        mtime = source.mtime_ns / 1e9
        if self.newer_than is not None and mtime < self.newer_than:
            return "older than --newer-than"
        if self.older_than is not None and mtime > self.older_than:
            return "newer than --older-than"
        if self.extensions is not None:
            allowed = self.extensions.get(source.group)
            suffix = "." + rel.rsplit(".", 1)[-1].lower() if "." in rel.rsplit("/", 1)[-1] else ""
            if allowed is not None and suffix not in allowed:
                return f"extension not in the {source.group} folder type"
        return None


def nfc(text: str) -> str:
    """``text`` in Unicode NFC (ASCII as it is, without a look)."""
    return text if text.isascii() else unicodedata.normalize("NFC", text)


def _spec(patterns: Sequence[str], option: str) -> pathspec.GitIgnoreSpec | None:
    if not patterns:
        return None
    for pattern in patterns:
        if not pattern.strip():
            raise ConfigError(f"{option} got an empty pattern")
    import pathspec  # here: a run without patterns does not load it (5 ms of start-up)

    for pattern in patterns:  # each alone, so that a refusal names the one at fault
        try:
            compiled = pathspec.GitIgnoreSpec.from_lines([nfc(pattern)]).patterns[0]
        except (ValueError, TypeError, re.error) as exc:  # re.error: a range like [z-a]
            raise _invalid(pattern, option, exc) from None
        if compiled.include is None:  # pathspec's "matches nothing", as git takes it
            raise _invalid(pattern, option)
    return pathspec.GitIgnoreSpec.from_lines([nfc(p) for p in patterns])


def _invalid(pattern: str, option: str, exc: Exception | None = None) -> ConfigError:
    """Why ``pattern`` is refused, and what to write instead: one pathspec (as git)
    cannot compile (``exc``), or compiles to nothing: a ``[`` never closed, a ``#`` (a
    comment), a lone ``/``. Taken, it would select nothing, silently."""
    if isinstance(exc, re.error):
        said = f"{option} {pattern!r} is invalid: a set of characters has a {exc.msg}"
        return ConfigError(said, hint="a range goes from the lower character up: [a-z]")
    if exc is not None:
        return ConfigError(f"{option} {pattern!r} is invalid: {exc}")
    said = f"{option} {pattern!r} would match no path"
    if pattern.startswith("#"):
        return ConfigError(
            f"{said}: a pattern starting with # is a comment",
            hint=f"write \\{pattern} for names starting with #",
        )
    if "[" in pattern:
        return ConfigError(
            f"{said}: its [ opens a set of characters that no ] closes",
            hint="close the set ([abc]), or write \\[ (or [[]) for a literal [",
        )
    return ConfigError(f"{said}: it names no file or folder", hint="e.g. '*.txt' or 'docs/'")
