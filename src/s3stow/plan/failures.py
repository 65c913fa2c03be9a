"""Reading what failed before: s3stow failures files and other tools' error logs.

``read_failures`` accepts, line by line and mixed in one file:

- the JSON lines written by ``s3stow upload --failures-file``;
- the error output of ``aws s3 sync`` / ``aws s3 cp``:
  ``upload failed: ./a/b.jpg to s3://bucket/a/b.jpg An error occurred (...) ...``.

The file is UTF-8, or UTF-16 with a byte-order mark (an error log redirected by
Windows PowerShell 5.1). Success lines (``upload: ...``), progress lines
(``Completed ...``), blank lines and the failures of ``s3stow restore`` (marked
``"command": "restore"``: retrying them as uploads could overwrite an object with the
local file kept in its way) are ignored; anything else is counted as unparseable and
kept for the report (the first few are shown), never silently dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from s3stow.errors import ConfigError
from s3stow.localfiles import decode_text

_AWS_FAILED = re.compile(
    r"^upload failed: (?P<src>.+?) to s3://(?P<bucket>[a-z0-9][a-z0-9.-]+[a-z0-9])/(?P<rest>.+)$"
)
_AWS_ERROR_START = re.compile(
    r" (?=(An error occurred|Could not connect|Connect timeout|Read timeout|"
    r"Connection was closed|\[Errno|\[WinError|Unable to|Parameter validation))"
)
_IGNORED = ("upload: ", "Completed ", "copy: ", "delete: ", "warning: ")


@dataclass(frozen=True, slots=True)
class FailedItem:
    """One file to retry: its local path as written, and where it was going."""

    local: str
    bucket: str
    key: str
    error: str
    line: int
    error_class: str | None = None


@dataclass
class FailureSource:
    """What a failures file or log yielded."""

    items: list[FailedItem] = field(default_factory=list)
    unparseable: list[tuple[int, str]] = field(default_factory=list)
    ignored: int = 0  # lines that are no failure, and restore failures (counted apart too)
    restores: int = 0  # failures of ``s3stow restore``: never retried as uploads


def read_failures(path: Path) -> FailureSource:
    """Parse ``path`` (failures JSON lines and/or aws s3 error output)."""
    try:
        text = decode_text(path.read_bytes(), errors="replace")
    except FileNotFoundError:
        hint = "pass the file written by --failures-file or an aws s3 error log"
        raise ConfigError(f"failures file {path} does not exist", hint=hint) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    return parse_lines(text.splitlines())


def parse_lines(lines: Iterable[str]) -> FailureSource:
    result = FailureSource()
    for number, raw in enumerate(lines, start=1):
        line = raw.split("\r")[-1].strip()  # aws rewrites progress with carriage returns
        marker = line.find("upload failed: ")
        if marker > 0:  # a progress line glued to the error when \r was lost
            line = line[marker:]
        if not line:
            continue
        item = _parse_json(line, number) if line.startswith("{") else _parse_aws(line, number)
        if item is not None:
            result.items.append(item)
        elif _from_restore(line):
            result.ignored += 1
            result.restores += 1
        elif line.startswith(_IGNORED):
            result.ignored += 1
        else:
            result.unparseable.append((number, line))
    return result


def _parse_json(line: str, number: int) -> FailedItem | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict) or not all(k in data for k in ("path", "bucket", "key")):
        return None
    if data.get("status") not in (None, "failed", "changed") or data.get("command") == "restore":
        return None
    error = f"[{data.get('error_class')}] {data.get('error')}" if data.get("error") else ""
    return FailedItem(
        str(data["path"]),
        str(data["bucket"]),
        str(data["key"]),
        error,
        number,
        str(data["error_class"]) if data.get("error_class") else None,
    )


def _from_restore(line: str) -> bool:
    try:
        data = json.loads(line) if line.startswith("{") else None
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("command") == "restore"


def _parse_aws(line: str, number: int) -> FailedItem | None:
    match = _AWS_FAILED.match(line)
    if match is None:
        return None
    rest = match.group("rest")
    split = _AWS_ERROR_START.search(rest)
    if split is not None:
        key, error = rest[: split.start()], rest[split.start() + 1 :]
    else:
        key, _, error = rest.partition(" ")
    return FailedItem(match.group("src"), match.group("bucket"), key, error, number)


def resolve_local(local: str, *, base_dir: Path | None) -> Path:
    """The local file a failure names: absolute as is, relative against ``base_dir``."""
    path = Path(local.replace("\\", "/")) if "\\" in local and "/" not in local else Path(local)
    if path.is_absolute() or base_dir is None:
        return path
    return base_dir / path
