"""Key templates and the ready-made layouts: how a file becomes an object key.

A template is a ``str.format`` string over the fields below, validated once
before any upload (unknown fields, bad format specs and templates that cannot
identify a file fail with exit 2). Every rendered key is then sanitised: empty
and ``.`` segments from doubled slashes are dropped, ``..`` is refused,
Unicode is normalised to NFC, and ``keys.check_key`` enforces the rest
(control characters, 1024 bytes). A backslash is kept as it is: on POSIX it is an
ordinary character of a file name, and on Windows discovery has already written the
relative path with ``/`` (``SourceFile.rel_path``). The destination prefix is always the start of
the key: a template without ``{prefix}`` gets it prepended, so no template can
write outside the prefix.

Fields: prefix, rel_path, rel_dir, name, stem, ext, folder_type, project_key,
timestamp (run timestamp ``YYYYMMDD_HHMM`` or the custom one), file_time:FMT
(UTC timestamp parsed from the file name), mtime:FMT, now:FMT, md5, sha256
(each costs a full read of the file), and any record field given by the caller
(e.g. ``created_at:%Y`` for the archive command).
"""

from __future__ import annotations

import hashlib
import logging
import re
import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from s3stow.errors import ConfigError
from s3stow.logs import warn_each
from s3stow.models import SourceFile
from s3stow.plan.keys import MAX_KEY_BYTES, UnsafeKeyError, check_key

log = logging.getLogger(__name__)

LAYOUTS = {
    "mirror": "{prefix}{rel_path}",
    "date-folders": "{prefix}{file_time:%Y/%m/%d}/{name}",
    "project": "{prefix}{project_key}/{folder_type}/{timestamp_dir}{rel_path}",
}
PLAIN_FIELDS = frozenset(
    {
        "prefix",
        "rel_path",
        "rel_dir",
        "name",
        "stem",
        "ext",
        "folder_type",
        "project_key",
        "timestamp",
        "timestamp_dir",
        "md5",
        "sha256",
    }
)
TIME_FIELDS = frozenset({"file_time", "mtime", "now"})
IDENTIFYING = frozenset({"rel_path", "name", "stem", "md5", "sha256"})
_FILE_TIME_RE = re.compile(r"(\d{4})(\d{2})(\d{2})(?:[_T-]?(\d{2})(\d{2})(\d{2})?)?")


def parse_file_time(name: str) -> datetime | None:
    """The first ``YYYYMMDD[_HHMM[SS]]`` timestamp in a file name, as UTC."""
    for match in _FILE_TIME_RE.finditer(name):
        year, month, day, hour, minute, second = match.groups()
        try:
            return datetime(
                int(year),
                int(month),
                int(day),
                int(hour or 0),
                int(minute or 0),
                int(second or 0),
                tzinfo=UTC,
            )
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class KeyTemplate:
    """A validated template; ``render`` turns one file into its key."""

    text: str
    prefix: str
    project_key: str | None = None
    timestamp: str | None = None
    record_fields: frozenset[str] = frozenset()
    fields: frozenset[str] = field(default=frozenset())
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def build(
        cls,
        text: str,
        prefix: str,
        *,
        project_key: str | None = None,
        timestamp: str | None = None,
        record_fields: frozenset[str] = frozenset(),
    ) -> KeyTemplate:
        """Validate ``text`` and return the template (raises ``ConfigError``)."""
        if "{prefix}" not in text:
            text = "{prefix}" + text
        try:
            parsed = list(string.Formatter().parse(text))
        except ValueError as exc:
            raise ConfigError(
                f"key template {text!r} is malformed: {exc}",
                hint="fields are written {name} or {mtime:%Y/%m}",
            ) from None
        used: set[str] = set()
        for _, name, spec, conversion in parsed:
            if name is None:
                continue
            if not name or conversion:
                raise ConfigError(
                    f"key template {text!r} has an empty or converted field",
                    hint="write fields as {rel_path}, {mtime:%Y}",
                )
            if name not in PLAIN_FIELDS | TIME_FIELDS | record_fields:
                known = ", ".join(
                    sorted(PLAIN_FIELDS - {"timestamp_dir"} | TIME_FIELDS | record_fields)
                )
                raise ConfigError(
                    f"key template {text!r} uses unknown field {{{name}}}",
                    hint=f"known fields: {known}",
                )
            if name in TIME_FIELDS and not spec:
                raise ConfigError(
                    f"key template {text!r}: {{{name}}} needs a format, e.g. {{{name}:%Y/%m/%d}}"
                )
            if name in PLAIN_FIELDS and spec:
                raise ConfigError(f"key template {text!r}: {{{name}}} takes no format")
            used.add(name)
        if not used & (IDENTIFYING | record_fields):
            raise ConfigError(
                f"key template {text!r} does not identify the file: every file would get "
                "the same key",
                hint="include {rel_path}, {name}, {stem}, {md5} or {sha256}",
            )
        if used & {"project_key"} and not project_key:
            raise ConfigError(
                "this key layout needs a project key", hint="pass --project-key KEY (e.g. RMI25320)"
            )
        template = cls(text, prefix, project_key, timestamp, record_fields, frozenset(used))
        template._check_specs()
        return template

    def _check_specs(self) -> None:
        sample = datetime(2025, 7, 29, 16, 15, tzinfo=UTC)
        for _, name, spec, _ in string.Formatter().parse(self.text):
            if name in TIME_FIELDS or (name in self.record_fields and spec):
                try:
                    rendered = format(sample, spec or "")
                except ValueError as exc:
                    raise ConfigError(
                        f"key template {self.text!r}: bad format {spec!r} for {{{name}}}: {exc}"
                    ) from None
                if not rendered:
                    raise ConfigError(
                        f"key template {self.text!r}: {{{name}:{spec}}} renders empty"
                    )

    @property
    def static_prefix(self) -> str:
        """The part every key starts with (what one listing of the bucket must cover)."""
        fixed = {"prefix": self.prefix, "project_key": self.project_key or ""}
        text = ""
        for literal, name, _, _ in string.Formatter().parse(self.text):
            text += literal
            if name is None:
                continue
            if name not in fixed:
                break
            text += fixed[name]
        return text[: text.rfind("/") + 1] if "/" in text else ""

    @property
    def reads_content(self) -> bool:
        """Whether rendering needs a full read of the file ({md5}/{sha256})."""
        return bool(self.fields & {"md5", "sha256"})

    def render(
        self,
        source: SourceFile,
        *,
        record: Mapping[str, Any] | None = None,
        folder_type: str | None = None,
    ) -> str:
        """Return the checked key of ``source`` (raises ``UnsafeKeyError``)."""
        rel = source.rel_path
        if not record and self.fields <= _PATH_ONLY:  # the mirror layout: nothing to derive
            return sanitise_key(
                self.text.format(prefix=self.prefix, rel_path=rel), prefix=self.prefix
            )
        rel_dir, _, name = rel.rpartition("/")
        stem, dot, ext = name.rpartition(".")
        if not dot or not stem:
            stem, ext = name, ""
        values: dict[str, Any] = {
            "prefix": self.prefix,
            "rel_path": rel,
            "rel_dir": rel_dir,
            "name": name,
            "stem": stem,
            "ext": ext,
            "folder_type": folder_type or source.group or "",
            "project_key": self.project_key or "",
            "timestamp": self.timestamp or "",
            "timestamp_dir": f"{self.timestamp}/" if self.timestamp else "",
            "now": self.now,
            "mtime": datetime.fromtimestamp(source.mtime_ns / 1e9, UTC),
        }
        if "file_time" in self.fields:
            values["file_time"] = parse_file_time(name) or self._fallback_time(source)
        for digest in self.fields & {"md5", "sha256"}:
            if not (record and digest in record):  # a verified record value saves a read
                values[digest] = _hash_file(source, digest)
        if record:
            values.update(record)
        try:
            key = self.text.format(**values)
        except (KeyError, ValueError, TypeError) as exc:
            raise UnsafeKeyError(f"key template could not be rendered: {exc}") from None
        return sanitise_key(key, prefix=self.prefix)

    def _fallback_time(self, source: SourceFile) -> datetime:
        warn_each(
            log,
            "no-file-time",
            "%s has no YYYYMMDD timestamp in its name; using its mtime for the date folders",
            source.path,
            example=source.rel_path,
            many="files have no YYYYMMDD timestamp in their name: their mtime gave the date",
        )
        return datetime.fromtimestamp(source.mtime_ns / 1e9, UTC)


_PATH_ONLY = frozenset({"prefix", "rel_path"})


# A key that needs no change: segments without "/", "\\" or control characters, none
# empty or starting with "." (so no "." or ".." segment). A key with a backslash takes
# the general path, where ``check_key`` refuses a ".." between backslashes.
_SEGMENT = r"[^/\\\x00-\x1f\x7f.][^/\\\x00-\x1f\x7f]*"
_PLAIN_KEY = re.compile(rf"(?:{_SEGMENT}/)*{_SEGMENT}")


def sanitise_key(key: str, *, prefix: str = "") -> str:
    """Drop empty and ``.`` segments, refuse ``..``, NFC-normalise, then check."""
    if (
        _PLAIN_KEY.fullmatch(key)
        and len(key) <= MAX_KEY_BYTES // 4  # at most 4 UTF-8 bytes a character
        and unicodedata.is_normalized("NFC", key)
        and (not prefix or (key.startswith(prefix) and unicodedata.is_normalized("NFC", prefix)))
    ):
        return key  # what the general path below returns for it, without the work
    return _sanitise_general(key, prefix=prefix)


def _sanitise_general(key: str, *, prefix: str = "") -> str:
    segments = []
    for segment in key.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            raise UnsafeKeyError("key has a '..' path segment")
        segments.append(segment)
    result = unicodedata.normalize("NFC", "/".join(segments))
    if key.endswith("/") and result:
        raise UnsafeKeyError("key ends with '/' (no file name)")
    check_key(result)
    if prefix and not result.startswith(unicodedata.normalize("NFC", prefix)):
        raise UnsafeKeyError(f"key {result!r} falls outside the prefix {prefix!r}")
    return result


def _hash_file(source: SourceFile, algorithm: str) -> str:
    digest: Callable[[], Any] = (
        hashlib.sha256 if algorithm == "sha256" else (lambda: hashlib.md5(usedforsecurity=False))
    )
    hasher = digest()
    with open(source.path, "rb") as handle:
        while block := handle.read(8 * 1024 * 1024):
            hasher.update(block)
    return str(hasher.hexdigest())


def run_timestamp(now: datetime | None = None) -> str:
    """The run timestamp: ``YYYYMMDD_HHMM`` in UTC."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d_%H%M")


def validate_custom_timestamp(value: str) -> str:
    if not re.fullmatch(r"\d{8}_\d{4}", value):
        raise ConfigError(
            f"custom timestamp {value!r} is not YYYYMMDD_HHMM",
            hint="e.g. --custom-timestamp 20250729_1615",
        )
    return value
