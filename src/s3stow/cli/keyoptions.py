"""The options that decide which files a run takes and the key of each, defined once.

``upload`` plans keys with them; ``verify`` must plan the same keys to check what
an upload wrote, ``retry --from`` to re-plan what a log names, ``watch`` and ``job
plan`` to upload like ``upload``. Each of those commands is decorated with
``key_options`` (and ``selection_options`` where it walks a tree), which adds these
parameters to its signature and hands their values to it as one ``KeyOptions`` in
its ``keys`` parameter: an option added here exists in every command at once, so
the commands cannot drift apart. ``KeyOptions.flags`` maps them to ``Settings``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import typer

Opt = typer.Option

# name -> (annotation, default); the names are the command parameters' names
KEY_OPTIONS: dict[str, tuple[Any, Any]] = {
    "layout": (
        Annotated[
            str | None,
            Opt(
                help="Key layout: mirror (prefix + relative path), date-folders (prefix/YYYY/"
                "MM/DD/name from the file name's timestamp), project (project_key/"
                "folder_type/[timestamp/]path) [mirror]."
            ),
        ],
        None,
    ),
    "key_template": (
        Annotated[
            str | None,
            Opt(help="Key template, e.g. '{prefix}{file_time:%Y/%m/%d}/{name}' (see README)."),
        ],
        None,
    ),
    "strip_prefix": (
        Annotated[str | None, Opt(help="Remove this leading part of each relative path.")],
        None,
    ),
    "project_key": (
        Annotated[str | None, Opt(help="Project key for the project layout (e.g. RMI25320).")],
        None,
    ),
    "timestamp": (
        Annotated[
            bool | None,
            Opt(
                "--timestamp",
                help="Add the run timestamp folder (YYYYMMDD_HHMM); verify takes the newest "
                "one in the bucket.",
            ),
        ],
        None,
    ),
    "custom_timestamp": (
        Annotated[str | None, Opt(help="Use this timestamp (YYYYMMDD_HHMM) instead of the run's.")],
        None,
    ),
}
SELECTION_OPTIONS: dict[str, tuple[Any, Any]] = {
    "include": (
        Annotated[
            list[str] | None,
            Opt("--include", help="Only files matching this gitignore-style glob (repeatable)."),
        ],
        None,
    ),
    "exclude": (
        Annotated[
            list[str] | None,
            Opt("--exclude", help="Skip files matching this glob (repeatable; exclude wins)."),
        ],
        None,
    ),
    "min_size": (Annotated[str | None, Opt(help="Skip files smaller than this.")], None),
    "max_size": (Annotated[str | None, Opt(help="Skip files larger than this.")], None),
    "newer_than": (
        Annotated[str | None, Opt(help="Only files modified after this (7d, 12h or 2025-07-29).")],
        None,
    ),
    "older_than": (
        Annotated[str | None, Opt(help="Only files modified before this (age or date).")],
        None,
    ),
    "include_type": (
        Annotated[
            list[str] | None,
            Opt(
                "--include-type",
                "--folder-type",
                help="Project folder types to take (repeatable; 'auto' = all present).",
            ),
        ],
        None,
    ),
    "exclude_type": (
        Annotated[
            list[str] | None,
            Opt("--exclude-type", help="Project folder types to skip (repeatable)."),
        ],
        None,
    ),
    "follow_symlinks": (
        Annotated[
            bool | None,
            Opt("--follow-symlinks", help="Follow symlinks that stay inside the source tree."),
        ],
        None,
    ),
}
# option name -> the Settings field it sets, where the two differ
_FIELDS = {"include_type": "include_types", "exclude_type": "exclude_types"}


@dataclass(frozen=True)
class KeyOptions:
    """The values a command received for the shared options (``None``: not given)."""

    values: dict[str, Any]

    def flags(self) -> dict[str, Any]:
        """The values as ``Settings`` flags (empty lists count as not given)."""
        return {_FIELDS.get(name, name): value or None for name, value in self.values.items()}

    def given(self) -> list[str]:
        """The options given, as written on the command line."""
        return ["--" + name.replace("_", "-") for name, value in self.values.items() if value]


Command = Callable[..., None]


def key_options(command: Command) -> Command:
    """Give ``command`` the key options; it receives them as ``keys: KeyOptions``."""
    return _with(command, KEY_OPTIONS)


def selection_options(command: Command) -> Command:
    """Give ``command`` the key and the selection options, as ``keys: KeyOptions``."""
    return _with(command, {**KEY_OPTIONS, **SELECTION_OPTIONS})


def _with(command: Command, options: dict[str, tuple[Any, Any]]) -> Command:
    signature = inspect.signature(command, eval_str=True)  # real types, not strings
    own = [p for p in signature.parameters.values() if p.name != "keys"]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, (kind, default) in options.items()
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        values = {name: kwargs.pop(name, None) for name in options}
        command(*args, keys=KeyOptions(values), **kwargs)

    # typer reads the parameters from the signature and their types from the annotations
    wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in (*own, *added)}
    return wrapper
