"""The plan stage: which discovered files a run takes, and the key of each.

``Planner`` is built once per run from the settings and the destination. It
validates the key template and the selection up front (exit 2 before anything
is sent), expands a project directory into its folder-type roots, filters each
discovered file, strips ``strip_prefix`` from its relative path, renders its key
and refuses a key that another file of the same run already took (a collision
is reported, never a silent overwrite), except with a content-addressed template
(``{md5}``/``{sha256}``), where one key means the same bytes: the second file is a
``Duplicate``, reported as deduplicated. It also notes the ``--include`` patterns
that matched no file.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from s3stow.config import Settings
from s3stow.errors import ConfigError
from s3stow.foldertypes import extension_sets, select_folder_types
from s3stow.keys import Target, UnsafeKeyError
from s3stow.models import PlannedUpload, Reason, Source, SourceFile, Status, UploadResult
from s3stow.select import Selector
from s3stow.templates import LAYOUTS, KeyTemplate, run_timestamp

if TYPE_CHECKING:
    import pathspec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refused:
    """A selected file that cannot be uploaded, and why."""

    source: SourceFile
    key: str
    error_class: str
    reason: str

    def result(self, bucket: str) -> UploadResult:
        """The failed result that reports it."""
        return UploadResult(
            self.source.path,
            bucket,
            self.key,
            Status.FAILED,
            size=self.source.size,
            error_class=self.error_class,
            error=self.reason,
        )


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A file whose content-addressed key another file of the run already has."""

    source: SourceFile
    key: str
    first: str

    def result(self, bucket: str) -> UploadResult:
        """The skipped result that reports it."""
        return UploadResult(
            self.source.path,
            bucket,
            self.key,
            Status.SKIPPED,
            size=self.source.size,
            reason=Reason.DEDUPLICATED,
        )


class Planner:
    """Selection and key planning for one run."""

    def __init__(self, settings: Settings, target: Target) -> None:
        self.settings = settings
        self.target = target
        self.project = settings.layout == "project" or bool(
            settings.include_types or settings.exclude_types
        )
        timestamp = settings.custom_timestamp or (run_timestamp() if settings.timestamp else None)
        text = settings.key_template or LAYOUTS[settings.layout]
        if self.project and settings.key_template is None:
            text = LAYOUTS["project"]
        self.template = KeyTemplate.build(
            text, target.prefix, project_key=settings.project_key, timestamp=timestamp
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
        self._strip = (settings.strip_prefix or "").replace("\\", "/").lstrip("/")
        self._seen: dict[bytes, str] = {}
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

    def plan(self, found: SourceFile) -> PlannedUpload | Refused | Duplicate | None:
        """The planned upload, a refusal, a duplicate, or ``None`` when the file is not
        selected."""
        if self._unmatched:
            rel = found.rel_path
            for pattern in [p for p, spec in self._unmatched.items() if spec.match_file(rel)]:
                del self._unmatched[pattern]
        if self.selector.active:
            reason = self.selector.takes(found)
            if reason is not None:
                log.info("not taking %s: %s", found.path, reason)
                return None
        source = found
        if self._strip and found.rel_path.startswith(self._strip):
            source = replace(found, rel_path=found.rel_path[len(self._strip) :].lstrip("/"))
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
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=12).digest()
        first = self._seen.setdefault(digest, str(found.path))
        if first != str(found.path):
            if self.template.reads_content:  # the key holds the content's hash
                return Duplicate(source, key, first)
            return Refused(
                found, key, "KeyCollision", f"key {key!r} is also the key of {first}; not uploaded"
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

    return {p: pathspec.GitIgnoreSpec.from_lines([p]) for p in patterns if not p.startswith("!")}


def describe_sources(sources: Iterable[Path | Source]) -> list[str]:
    return [
        str(s.path if isinstance(s, Source) else s)
        for s in sources
        if not (isinstance(s, Source) and s.skip is not None)
    ]
