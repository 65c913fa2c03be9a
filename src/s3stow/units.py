"""Parsing and formatting of human quantities: byte sizes, durations, concurrency, counts
agreeing in number with their noun (``plural``), and the per-second UTC time stamps that
requests and metadata carry."""

from __future__ import annotations

import os
import re
import time

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "t": 1000**4,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_CPU_RE = re.compile(r"^\s*cpu\s*(?:\*\s*(\d+))?\s*$", re.IGNORECASE)

MiB = 1024**2
GiB = 1024**3


def parse_size(value: str | int) -> int:
    """Return a byte count from ``8MiB``, ``64MB``, ``1.5GiB`` or a plain integer."""
    if isinstance(value, int):
        return value
    match = _SIZE_RE.match(value)
    if not match or match.group(2).lower() not in _UNITS:
        raise ValueError(f"{value!r} is not a size; use e.g. 8MiB, 64MB, 1GiB or a byte count")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower()])


def parse_concurrency(value: str | int) -> int:
    """Return a worker count from an integer or ``cpu*K`` (K times the CPU count)."""
    if isinstance(value, int):
        return value
    text = value.strip()
    if text.isdigit():
        return int(text)
    match = _CPU_RE.match(text)
    if not match:
        raise ValueError(f"{value!r} is not a concurrency; use a number like 16 or cpu*4")
    factor = int(match.group(1) or 1)
    return (os.cpu_count() or 1) * factor


def format_size(count: float) -> str:
    """Format a byte count with binary units: ``1.5 MiB``."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def plural(count: int, noun: str, *, many: str | None = None) -> str:
    """``count`` and ``noun`` agreeing in number, for the summaries people read: "1
    file", "0 files", "1,234 files"; ``many``, a plural other than ``noun`` + "s"
    ("1 transient error", "2 transient errors"; ``many="matches"``)."""
    return f"{count:,} {noun if count == 1 else (many or noun + 's')}"


def format_duration(seconds: float) -> str:
    """Format seconds as ``1h02m03s``, ``2m05s`` or ``3.2s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


_AGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_AGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_point_in_time(value: str, *, now: float) -> float:
    """Epoch seconds from an age (``7d``, ``12h``, ``30m``, ``2w``) or an ISO date/time."""
    from datetime import UTC, datetime

    match = _AGE_RE.match(value)
    if match:
        return now - float(match.group(1)) * _AGE_UNITS[match.group(2).lower()]
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{value!r} is neither an age (7d, 12h, 30m, 2w) nor an ISO date (2025-07-29)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


_STAMPS: dict[str, tuple[int, str]] = {}


def utc_stamp(fmt: str) -> str:
    """The current UTC time formatted with ``fmt`` (second resolution); the text is
    reused within the same second, since requests and metadata ask for it per file."""
    second = int(time.time())
    cached = _STAMPS.get(fmt)
    if cached is None or cached[0] != second:
        cached = (second, time.strftime(fmt, time.gmtime(second)))
        _STAMPS[fmt] = cached
    return cached[1]
