"""Command-line values converted by s3stow, not by pydantic.

typer converts each parameter's value with a pydantic adapter it builds on first use:
about 50 ms to import pydantic for ``--help``, and an adapter per option of a run, whose
errors read "Input should be a valid integer, unable to parse string as an integer".
s3stow's parameters are strings, whole numbers, numbers, paths and flags (lists of
them when repeatable), so ``PlainOption`` and ``PlainArgument`` convert them directly
and say what is wrong in s3stow's words (``'abc' is not a whole number``). ``plain``
gives a parameter typer built these classes when its type is one of those.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_origin

from typer._click.exceptions import BadParameter, MissingParameter
from typer.core import TyperArgument, TyperOption

if TYPE_CHECKING:
    from typer._click import Context, Parameter

_WORDS = {int: "a whole number", float: "a number"}
PLAIN_TYPES = (str, int, float, bool, Path)


def _one(kind: Any, value: Any, param: Any, ctx: Context) -> Any:
    if value is None or isinstance(value, bool) or kind is str:
        return value
    if kind is Path:
        return Path(value)
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise BadParameter(f"{value!r} is not {_WORDS[kind]}", ctx=ctx, param=param) from None


def _process(param: Any, ctx: Context, value: Any) -> Any:
    annotation = param.type_descriptor.annotation
    kind = get_args(annotation)[0] if get_origin(annotation) is list else annotation
    if isinstance(value, list | tuple):
        value = tuple(_one(kind, v, param, ctx) for v in value)
    elif value is None and (param.multiple or param.nargs == -1):
        value = ()
    elif getattr(param, "count", False):
        value = int(value or 0)
    else:
        value = _one(kind, value, param, ctx)
    if param.required and param.value_is_missing(value):
        raise MissingParameter(ctx=ctx, param=param)
    if param.callback is not None:
        value = param.callback(ctx, param, value)
    return value


class PlainOption(TyperOption):
    """An option converted by s3stow (no pydantic adapter)."""

    def process_value(self, ctx: Context, value: Any) -> Any:
        return _process(self, ctx, value)


class PlainArgument(TyperArgument):
    """An argument converted by s3stow (no pydantic adapter)."""

    def process_value(self, ctx: Context, value: Any) -> Any:
        return _process(self, ctx, value)


def plain(param: Parameter) -> Parameter:
    """``param`` as a plain parameter when typer built it and its type allows."""
    annotation = param.type_descriptor.annotation  # type: ignore[attr-defined]
    kind = get_args(annotation)[0] if get_origin(annotation) is list else annotation
    if kind in PLAIN_TYPES:
        if type(param) is TyperOption:
            param.__class__ = PlainOption  # the same fields; only process_value differs
        elif type(param) is TyperArgument:
            param.__class__ = PlainArgument
    return param
