"""The plan stage: which discovered files a run takes, and the key of each.

``Planner`` is built once per run from the settings and the destination. It
validates the key template and the selection up front (exit 2 before anything
is sent), expands a project directory into its folder-type roots, filters each
discovered file, strips ``strip_prefix`` from its relative path and renders its
key. Whether a key is free is for ``collisions.KeyClaims`` (``Planner.claims``) to
settle, batch by batch, with the ledger (a content-addressed key another file of the
run has is a ``Duplicate``, reported as deduplicated). It also notes the
``--include`` patterns that matched no file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from s3stow.config import Settings
from s3stow.errors import ConfigError
from s3stow.models import Duplicate, PlannedUpload, Refused, Source, SourceFile, Target
from s3stow.plan.collisions import KeyClaims
from s3stow.plan.foldertypes import extension_sets, select_folder_types
from s3stow.plan.keys import UnsafeKeyError
from s3stow.plan.select import Selector, nfc
from s3stow.plan.templates import LAYOUTS, KeyTemplate, run_timestamp

if TYPE_CHECKING:
    import pathspec

log = logging.getLogger(__name__)


class Planner:
    """Selection and key planning for one run."""

    def __init__(self, settings: Settings, target: Target) -> None:
        self.settings = settings
        self.target = target
        self.project = settings.layout == "project" or bool(
            settings.include_types or settings.exclude_types
        )
        timestamp = settings.custom_timestamp or (run_timestamp() if settings.timestamp else None)
        self.template = KeyTemplate.build(
            _template_text(settings), target.prefix, project_key=settings.project_key,
            timestamp=timestamp,
        )  # fmt: skip
        if timestamp is not None and not self.template.fields & {"timestamp", "timestamp_dir"}:
            given = "--custom-timestamp" if settings.custom_timestamp else "--timestamp"
            raise ConfigError(
                f"{given} has no place in the keys of the {settings.layout} layout"
                + (" and this key template" if settings.key_template else "")
                + ": every run would write the same keys, not a timestamp folder",
                hint="use --layout project, or a --key-template with {timestamp}, such as "
                "'{timestamp}/{rel_path}' (or leave the timestamp out: also "
                "S3STOW_TIMESTAMP, S3STOW_CUSTOM_TIMESTAMP and the config file)",
            )
        self.selector = Selector.build(
            include=settings.include,
            exclude=settings.exclude,
            min_size=settings.min_size,
            max_size=settings.max_size,
            newer_than=settings.newer_than,
            older_than=settings.older_than,
            extensions=extension_sets(settings.folder_types) if self.project else None,
        )
        # A path given on the command line: its separator is the OS's (os.sep is "/" on
        # POSIX, where a backslash is part of a name; "\\" on Windows).
        self._strip = nfc((settings.strip_prefix or "").replace(os.sep, "/").lstrip("/"))
        self.claims = KeyClaims(content_addressed=self.template.reads_content)
        self._unmatched = _single_patterns(settings.include)
        if self.template.reads_content:
            log.warning(
                "the key template uses {md5}/{sha256}: every file is read once more to compute it"
            )

    def sources(self, sources: Sequence[Path]) -> list[Path | Source]:
        """The source roots: as given, or the folder types of one project directory."""
        if not self.project:
            return list(sources)
        if len(sources) != 1:
            raise ConfigError(
                "the project layout takes exactly one project directory",
                hint="s3stow upload D:/project s3://bucket --layout project --project-key KEY",
            )
        return list(
            select_folder_types(
                sources[0],
                known=self.settings.folder_types,
                include=self.settings.include_types or ["auto"],
                exclude=self.settings.exclude_types,
            )
        )

    def plan(self, found: SourceFile) -> PlannedUpload | Refused | None:
        """The planned upload, a refusal (unsafe key), or ``None`` when the file is not
        selected."""
        if self._unmatched:
            rel = nfc(found.rel_path)  # macOS may list a name in NFD; patterns are NFC
            for pattern in [p for p, spec in self._unmatched.items() if spec.match_file(rel)]:
                del self._unmatched[pattern]
        if self.selector.active:
            reason = self.selector.takes(found)
            if reason is not None:
                log.info("not taking %s: %s", found.path, reason)
                return None
        source = found
        if self._strip and nfc(found.rel_path).startswith(self._strip):
            rest = nfc(found.rel_path)[len(self._strip) :].lstrip("/")
            source = replace(found, rel_path=rest)
        try:
            key = self.template.render(source)
        except UnsafeKeyError as exc:
            return Refused(found, self.target.prefix + found.rel_path, "UnsafeKey", str(exc))
        except OSError as exc:
            return Refused(
                found,
                self.target.prefix + found.rel_path,
                "ReadError",
                f"cannot read the file to compute its key: {exc.strerror}",
            )
        return PlannedUpload(source, self.target.bucket, key)

    def unmatched_includes(self) -> list[str]:
        """The ``--include`` patterns no file planned so far matched."""
        return list(self._unmatched)


def _single_patterns(patterns: Sequence[str]) -> dict[str, pathspec.GitIgnoreSpec]:
    """Each plain ``--include`` pattern on its own (negations are not tracked)."""
    if not patterns:
        return {}
    import pathspec  # only when there are patterns (as in select.py)

    return {
        p: pathspec.GitIgnoreSpec.from_lines([nfc(p)]) for p in patterns if not p.startswith("!")
    }


__all__ = ["Duplicate", "Planner", "Refused", "describe_sources", "key_claims"]


def _template_text(settings: Settings) -> str:
    if settings.key_template is not None:
        return settings.key_template
    project = settings.layout == "project" or bool(settings.include_types or settings.exclude_types)
    return LAYOUTS["project" if project else settings.layout]


def key_claims(settings: Settings) -> KeyClaims:
    """Fresh key claims for explicit (file, key) pairs planned with ``settings``:
    content-addressed when its template is."""
    try:
        template = KeyTemplate.build(_template_text(settings), "", project_key="-")
    except ConfigError:
        return KeyClaims()
    return KeyClaims(content_addressed=template.reads_content)


def describe_sources(sources: Iterable[Path | Source]) -> list[str]:
    return [
        str(s.path if isinstance(s, Source) else s)
        for s in sources
        if not (isinstance(s, Source) and s.skip is not None)
    ]
