"""What one setting's value may be: ``Rule``, the coercion and checks of one raw value.

A setting arrives as text (an environment variable, a YAML scalar, which the loader
keeps as text), as a list or mapping (YAML), or typed (a command-line flag, a library
caller). ``Rule.apply`` turns it into the setting's type or raises ``Problem`` with
the reason in s3stow's words. The coercions are pydantic's lax mode for the inputs a
setting can come as (``tests/test_settingrules.py`` compares both side by side):
``true/false/yes/no/on/off/t/f/y/n/1/0`` in any case for a boolean, ``8``, `` 8 ``,
``1_000`` or ``8.0`` for a whole number, Python's float text (``inf`` too) for a
number (pydantic's own reading of underscores in a fraction, as in ``1._5``, is not
copied).
s3stow validated its settings with pydantic until that import and the model's schema
build were a quarter of a one-file upload's CPU (docs/performance.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Literal

Kind = Literal["bool", "int", "float", "str", "path", "choice", "list", "dict", "dict_list"]

_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
# A whole number as text: digits with single underscores between them, a sign, and an
# all-zero fraction ("8.0"), once the spaces around are stripped.
_WHOLE = re.compile(r"[+-]?[0-9](?:_?[0-9])*(?:\.0+)?\Z", re.ASCII)
# The spaces stripped around a number: Unicode's White_Space (as pydantic strips them;
# Python's str.strip would take the ASCII separators 0x1c-0x1f too).
_SPACES = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + ("\u2028\u2029\u202f\u205f\u3000")
)


class Problem(ValueError):
    """Why a value is not a setting's (the message names the value)."""


def shown(value: Any) -> str:
    """A value as a message quotes it: text in quotes, at most 60 characters; YAML's
    null (``key:`` with nothing after it) in YAML's words, not Python's ``None``."""
    if value is None:
        return "null (no value)"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, slots=True)
class Rule:
    """One setting's type, bounds and checks; ``before`` sees the raw value (a size or
    a list in text, say), ``after`` the value of the setting's type."""

    kind: Kind
    optional: bool = False
    choices: tuple[str, ...] = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    pattern: str | None = None  # the whole text must match (ASCII classes)
    form: str = "in the expected form"  # what ``pattern`` expects, in words
    before: Callable[[Any], Any] | None = None
    after: Callable[[Any], Any] | None = None
    _compiled: re.Pattern[str] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.pattern is not None:
            object.__setattr__(self, "_compiled", re.compile(self.pattern, re.ASCII))

    def apply(self, value: Any) -> Any:
        """``value`` as the setting's type, checked; raises ``Problem``."""
        if self.before is not None:
            value = _reworded(self.before, value)
        if value is None and self.optional:
            return None
        given = value  # a refusal quotes the value as given ('-1', not -1.0)
        value = _COERCE[self.kind](self, value)
        self._bounds(value, given)
        if self._compiled is not None and not self._compiled.fullmatch(value):
            raise Problem(f"{shown(value)} is not {self.form}")
        if self.after is not None:
            value = _reworded(self.after, value)
        return value

    def _bounds(self, value: Any, given: Any) -> None:
        # "not value >= bound": NaN is in no range
        if self.ge is not None and not value >= self.ge:
            raise self._outside(given, "at least", self.ge)
        if self.gt is not None and not value > self.gt:
            raise self._outside(given, "more than", self.gt)
        if self.le is not None and not value <= self.le:
            raise self._outside(given, "at most", self.le)

    @staticmethod
    def _outside(given: Any, words: str, limit: float) -> Problem:
        bound = int(limit) if float(limit).is_integer() else limit
        return Problem(f"{shown(given)} is out of range: it must be {words} {bound}")


def _reworded(check: Callable[[Any], Any], value: Any) -> Any:
    try:
        return check(value)
    except Problem:
        raise
    except ValueError as exc:
        raise Problem(str(exc)) from None


def _bool(rule: Rule, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
    elif isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    raise Problem(
        f"{shown(value)} is not true or false (write true, false, yes, no, on, off, 1 or 0)"
    )


def _int(rule: Rule, value: Any) -> int:
    if isinstance(value, int):  # True and False too, as 1 and 0
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and _WHOLE.match(text := value.strip(_SPACES)):
        return int(text.partition(".")[0])
    raise Problem(f"{shown(value)} is not a whole number")


def _float(rule: Rule, value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    text = value.strip(_SPACES) if isinstance(value, str) else ""
    spaced = text != value  # pydantic reads "1_0" but not " 1_0"
    if text.isascii() and text == text.strip() and not (spaced and "_" in text):
        try:
            return float(text)
        except ValueError:
            pass
    raise Problem(f"{shown(value)} is not a number")


def _str(rule: Rule, value: Any) -> str:
    if isinstance(value, str):
        return value
    raise Problem(f"{shown(value)} is not text")


def _path(rule: Rule, value: Any) -> Path:
    if isinstance(value, str | PurePath):
        return Path(value)
    raise Problem(f"{shown(value)} is not a path")


def _choice(rule: Rule, value: Any) -> str:
    if isinstance(value, str) and value in rule.choices:
        return value
    raise Problem(f"{shown(value)} is not one of: {', '.join(rule.choices)}")


def _list(rule: Rule, value: Any) -> list[str]:
    if isinstance(value, str | bytes | Mapping) or not hasattr(value, "__iter__"):
        raise Problem(
            f"{shown(value)} is not a list (a YAML list, or comma-separated in a variable)"
        )
    return [_str(rule, item) for item in value]


def _dict(rule: Rule, value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise Problem(f"{shown(value)} is not a mapping of name: value")
    return {_str(rule, name): _str(rule, text) for name, text in value.items()}


def _dict_list(rule: Rule, value: Any) -> dict[str, list[str]]:
    if not isinstance(value, Mapping):
        raise Problem(f"{shown(value)} is not a mapping of name: value")
    return {_str(rule, name): _list(rule, items) for name, items in value.items()}


_COERCE: dict[str, Callable[[Rule, Any], Any]] = {
    "bool": _bool,
    "int": _int,
    "float": _float,
    "str": _str,
    "path": _path,
    "choice": _choice,
    "list": _list,
    "dict": _dict,
    "dict_list": _dict_list,
}
