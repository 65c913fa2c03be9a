"""``--where`` row filters for the archive commands: parsed triples, never SQL text.

A filter is ``COLUMN OP VALUE`` (``media_type=image``, ``created_at>=2025-01-01``,
``mime_type~image/%`` for LIKE) or ``COLUMN is null`` / ``COLUMN is not null``. The
column must exist in the table (checked against the database's own description of it,
so a typo is a configuration error, not a failed query); the value is always a bound
parameter. On typed databases (PostgreSQL) the value is converted to the column's
Python type first (a timestamp column compares with a datetime, an integer column with
an int); SQLite compares the text as given, which is how its rows are stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from s3stow.errors import ConfigError, LedgerError
from s3stow.logs import redact

_FILTER = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_]{0,62})\s*"
    r"(>=|<=|!=|=|<|>|~|\s+is\s+(?:not\s+)?null\b)(.*)$",
    re.IGNORECASE,
)
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
    "~": lambda c, v: c.like(v),
}
_HINT = (
    "OP is one of = != < <= > >= ~ (LIKE), or write 'COLUMN is null'; "
    "e.g. --where media_type=image --where 'created_at>=2025-01-01'"
)


@dataclass(frozen=True, slots=True)
class RowFilter:
    """``column OP value``; ``value`` is None for ``is null`` and ``is not null``."""

    column: str
    op: str
    value: Any

    def clause(self, column: Any) -> Any:
        """The SQLAlchemy condition on ``column`` (the value bound, not inlined)."""
        if self.op == "is null":
            return column.is_(None)
        if self.op == "is not null":
            return column.is_not(None)
        return _OPERATORS[self.op](column, self.value)


def parse_filters(expressions: Sequence[str], columns: Mapping[str, str]) -> list[RowFilter]:
    """Parse ``--where`` texts; a column-map key (``created_at``) names its column."""
    filters = []
    for text in expressions:
        match = _FILTER.match(text)
        if match is None:
            raise ConfigError(f"--where {text!r} is not COLUMN OP VALUE", hint=_HINT)
        name, op, value = match.group(1), " ".join(match.group(2).lower().split()), match.group(3)
        column = columns.get(name, name)
        if op.startswith("is"):
            if value.strip():
                raise ConfigError(f"--where {text!r}: nothing may follow 'is null'", hint=_HINT)
            filters.append(RowFilter(column, op, None))
        else:
            filters.append(RowFilter(column, op, value.strip()))
    return filters


def _typed(value: str, python_type: type, text: str) -> Any:
    try:
        if python_type is datetime:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        if python_type is date:
            return date.fromisoformat(value)
        if python_type is bool:
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if python_type in (int, float):
            return python_type(value)
        if python_type is Decimal:
            return Decimal(value)
    except (ValueError, InvalidOperation) as exc:
        raise ConfigError(
            f"--where {text!r}: {value!r} is not a {python_type.__name__}",
            hint="dates and times in ISO form, e.g. 2025-01-01 or 2025-01-01T12:00:00",
        ) from exc
    return value


def bind_filters(engine: Engine, table: str, filters: Sequence[RowFilter]) -> list[RowFilter]:
    """Check each filter's column against the table and type its value for the database."""
    try:
        described = {c["name"]: c["type"] for c in inspect(engine).get_columns(table)}
    except SQLAlchemyError as exc:
        raise LedgerError(
            f"cannot read the columns of {table}: {redact(str(exc).splitlines()[0])}",
            hint="check --db and --table",
        ) from exc
    bound = []
    for f in filters:
        if f.column not in described:
            raise ConfigError(
                f"--where names {f.column!r}, which is not a column of {table}",
                hint=f"columns: {', '.join(sorted(described))}",
            )
        value = f.value
        if isinstance(value, str) and f.op != "~" and engine.dialect.name != "sqlite":
            try:
                python_type = described[f.column].python_type
            except NotImplementedError:
                python_type = str
            value = _typed(value, python_type, f"{f.column}{f.op}{value}")
        bound.append(RowFilter(f.column, f.op, value))
    return bound
