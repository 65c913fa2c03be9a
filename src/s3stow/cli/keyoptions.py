"""The options that decide which files a run takes and the key of each, defined once.

``upload`` plans keys with them; ``verify`` must plan the same keys to check what
an upload wrote, ``retry --from`` to re-plan what a log names, ``watch`` and ``job
plan`` to upload like ``upload``. Each of those commands is decorated with
``key_options`` (``selection_options`` where it walks a tree, ``pattern_options`` for
``watch``: the patterns without the size, age and folder-type filters), which adds these
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
                "folder_type/[timestamp/]path).",
                metavar="mirror|date-folders|project",
                show_default="mirror",
            ),
        ],
        None,
    ),
    "key_template": (
        Annotated[
            str | None,
            Opt(
                help="Key template, e.g. '{prefix}{file_time:%Y/%m/%d}/{name}' (the README "
                "lists the fields).",
                metavar="TEMPLATE",
            ),
        ],
        None,
    ),
    "strip_prefix": (
        Annotated[
            str | None,
            Opt(help="Remove this leading part of each relative path.", metavar="PATH"),
        ],
        None,
    ),
    "project_key": (
        Annotated[
            str | None,
            Opt(help="Project key for the project layout, e.g. RMI25320.", metavar="KEY"),
        ],
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
        Annotated[
            str | None,
            Opt(help="Use this timestamp instead of the run's.", metavar="YYYYMMDD_HHMM"),
        ],
        None,
    ),
}
SELECTION_OPTIONS: dict[str, tuple[Any, Any]] = {
    "include": (
        Annotated[
            list[str] | None,
            Opt(
                "--include",
                help="Only files whose path (relative to the source) matches this "
                "gitignore-style pattern: '*.jpg', 'raw/**', '2024/*/'.",
                metavar="PATTERN",
            ),
        ],
        None,
    ),
    "exclude": (
        Annotated[
            list[str] | None,
            Opt(
                "--exclude",
                help="Skip files matching this gitignore-style pattern (exclude wins over "
                "include).",
                metavar="PATTERN",
            ),
        ],
        None,
    ),
    "min_size": (
        Annotated[str | None, Opt(help="Skip files smaller than this, e.g. 1KiB.", metavar="SIZE")],
        None,
    ),
    "max_size": (
        Annotated[str | None, Opt(help="Skip files larger than this, e.g. 5GiB.", metavar="SIZE")],
        None,
    ),
    "newer_than": (
        Annotated[
            str | None,
            Opt(
                help="Only files modified after this: an age (7d, 12h, 30m) or a date "
                "(2025-07-29).",
                metavar="AGE|DATE",
            ),
        ],
        None,
    ),
    "older_than": (
        Annotated[
            str | None,
            Opt(help="Only files modified before this: an age or a date.", metavar="AGE|DATE"),
        ],
        None,
    ),
    "include_type": (
        Annotated[
            list[str] | None,
            Opt(
                "--include-type",
                "--folder-type",
                help="Project folder types to take ('auto': every one present).",
                metavar="TYPE",
            ),
        ],
        None,
    ),
    "exclude_type": (
        Annotated[
            list[str] | None,
            Opt("--exclude-type", help="Project folder types to skip.", metavar="TYPE"),
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


def pattern_options(command: Command) -> Command:
    """Give ``command`` the key options and --include/--exclude (``watch``)."""
    patterns = {name: SELECTION_OPTIONS[name] for name in ("include", "exclude")}
    return _with(command, {**KEY_OPTIONS, **patterns})


def selection_options(command: Command) -> Command:
    """Give ``command`` the key and the selection options, as ``keys: KeyOptions``."""
    return _with(command, {**KEY_OPTIONS, **SELECTION_OPTIONS})


def _with(command: Command, options: dict[str, tuple[Any, Any]]) -> Command:
    signature = inspect.signature(command, eval_str=True)  # real types, not strings
    params = [p for p in signature.parameters.values() if p.name != "keys"]
    # the command's own keyword-only options (after ``*``) come after the shared ones
    own = [p for p in params if p.kind != inspect.Parameter.KEYWORD_ONLY]
    last = [p for p in params if p.kind == inspect.Parameter.KEYWORD_ONLY]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
        for name, (kind, default) in options.items()
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        values = {name: kwargs.pop(name, None) for name in options}
        command(*args, keys=KeyOptions(values), **kwargs)

    # typer reads the parameters from the signature and their types from the annotations
    wrapper.__signature__ = signature.replace(parameters=[*own, *added, *last])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in (*own, *added, *last)}
    return wrapper
