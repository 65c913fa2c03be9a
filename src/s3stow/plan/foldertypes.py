"""Folder types of a project directory (the large-file uploader's layout).

A project directory holds top-level folders such as ``reels`` or ``config``,
each with its own extension set. A run selects types with ``include_types`` /
``exclude_types`` or ``auto`` (every known type present). Each selected type
becomes one source root whose files carry the type as their group, so keys,
the status heartbeat and the summary can count per type. Top-level files and
folders that are no folder type become ``skip`` roots: their files are counted
and named as skipped by the layout, never dropped silently. The sets are
configurable in YAML (``folder_types: {reels: [.mp4, .json], ...}``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from s3stow.errors import ConfigError, SourceError
from s3stow.models import Source

OUTSIDE_TYPES = "outside every folder type of the project layout"


def detect_folder_types(base: Path, known: Mapping[str, Sequence[str]]) -> list[str]:
    """The known folder types present as directories directly under ``base``."""
    return [name for name in known if (base / name).is_dir()]


def select_folder_types(
    base: Path,
    *,
    known: Mapping[str, Sequence[str]],
    include: Sequence[str],
    exclude: Sequence[str],
) -> list[Source]:
    """The source roots for the selected folder types of project directory ``base``."""
    if not base.is_dir():
        raise SourceError(f"project directory {base} does not exist or is not a directory")
    for name in (*include, *exclude):
        if name != "auto" and name not in known:
            raise ConfigError(
                f"unknown folder type {name!r}",
                hint=f"known types: {', '.join(known)} (or configure "
                "folder_types in the YAML config)",
            )
    present = detect_folder_types(base, known)
    wanted = present if not include or "auto" in include else list(include)
    chosen = [name for name in wanted if name not in exclude]
    missing = [name for name in chosen if name not in present]
    if missing:
        raise SourceError(
            f"folder type(s) {', '.join(missing)} not found under {base}",
            hint=f"present here: {', '.join(present) or 'none'}",
        )
    if not chosen:
        raise SourceError(
            f"no folder types selected under {base}",
            hint=f"present here: {', '.join(present) or 'none'}",
        )
    # What lies outside every folder type is walked only to be named and counted.
    outside = sorted(
        entry.name for entry in os.scandir(base) if entry.name not in known or not entry.is_dir()
    )
    return [Source(base / name, group=name) for name in chosen] + [
        Source(base / name, skip=OUTSIDE_TYPES) for name in outside
    ]


def extension_sets(known: Mapping[str, Sequence[str]]) -> dict[str, frozenset[str]]:
    return {
        name: frozenset(e.lower() if e.startswith(".") else "." + e.lower() for e in exts)
        for name, exts in known.items()
    }
