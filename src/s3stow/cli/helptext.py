"""How every command reads on the command line: usage, help and the global options.

Each command and command group s3stow builds gets the classes below (``house``): they
list the global options (``cli.globalopts``) among the command's parameters, so the
options are accepted after the command name too, and they write the help the same
way everywhere:

- the usage line names the arguments as a user types them
  (``s3stow upload [OPTIONS] SRC... s3://BUCKET[/PREFIX]``);
- an option shows the value it takes by what it means (``--include PATTERN``,
  ``--part-size SIZE``, ``--concurrency N``), never a Python type, and its default in
  one form, ``[default: 16]``;
- a command list shows each command's whole first paragraph, never cut off;
- a command's help ends with the global options it also accepts and two or three
  real examples (``examples``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from typer.core import TyperCommand, TyperGroup, TyperOption

from s3stow.cli.globalopts import GLOBAL_PARAMS, settle
from s3stow.cli.plainparams import PlainOption, plain

if TYPE_CHECKING:
    from typer._click import Command, Context, HelpFormatter, Parameter

_COMMAND = "$ "


def examples(*pairs: tuple[str, str]) -> str:
    """An epilog of examples: ``(what it does, the command line)`` pairs."""
    return "\n".join(f"{what}\n{_COMMAND}{line}" for what, line in pairs)


def first_paragraph(text: str | None) -> str:
    """The first paragraph of a help text, on one line."""
    return " ".join(inspect.cleandoc(text or "").split("\n\n")[0].split())


def _metavar(param: Parameter) -> str:
    metavar = param.metavar or param.name.upper()
    spelled = "..." in metavar or " " in metavar  # it names its parts already
    if param.param_type_name == "argument" and param.nargs != 1 and not spelled:
        metavar += "..."
    return metavar


def _default_text(param: Any) -> str | None:
    show = getattr(param, "show_default", False)
    if isinstance(show, str):
        return show
    default = param.default
    if not show or default is None or callable(default) or default in ("", [], ()):
        return None
    if getattr(param, "is_flag", False):
        if not param.secondary_opts:
            return None
        return str(param.opts[0] if default else param.secondary_opts[0])
    if isinstance(default, list | tuple):
        return ", ".join(str(d) for d in default)
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def option_record(param: Any) -> tuple[str, str]:
    """The two columns of one option in the help: names with metavar, and text."""
    names = ", ".join(sorted(param.opts, key=lambda o: o.startswith("--")))
    if param.secondary_opts:
        names += " / " + ", ".join(param.secondary_opts)
    if not param.is_flag and not param.count:
        names += " " + _metavar(param)
    text = param.help or ""
    if param.multiple and "repeatable" not in text:
        if text.endswith(")."):
            text = text[:-2] + "; repeatable)."
        else:
            text = text.removesuffix(".") + " (repeatable)."
    default = _default_text(param)
    if param.required:
        text += "  [required]"
    elif default is not None:
        text += f"  [default: {default}]"
    return names, text


def _is_global(param: Parameter) -> bool:
    return any(param is g for g in GLOBAL_PARAMS)


def plain_help_option(command: Command, ctx: Context) -> Parameter | None:
    """The command's -h/--help, built by click, as a ``PlainOption`` (typer would build
    a pydantic adapter just to see it was not given)."""
    option = TyperCommand.get_help_option(command, ctx)
    if option is not None and type(option) is TyperOption:
        option.__class__ = PlainOption  # the same fields; only process_value differs
    return option


class HouseCommand(TyperCommand):
    """A command with the global options and the house help."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        params: list[Parameter] = [*self.params, *GLOBAL_PARAMS]
        help_option = plain_help_option(self, ctx)
        return [*params, help_option] if help_option is not None else params

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.params:
            if param.param_type_name == "argument":
                metavar = _metavar(param)
                pieces.append(metavar if param.required else f"[{metavar}]")
        return pieces

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        write_parameters(self, ctx, formatter)
        write_global_summary(formatter)

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        write_examples(self.epilog, formatter)


class HouseGroup(TyperGroup):
    """A command group (``bucket``, ``archive``, ``job``) with the house help."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return HouseCommand.get_params(self, ctx)  # type: ignore[arg-type]

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        write_parameters(self, ctx, formatter)
        write_commands(self, ctx, formatter)
        write_global_summary(formatter)

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        write_examples(self.epilog, formatter)


def write_parameters(command: Command, ctx: Context, formatter: HelpFormatter) -> None:
    """The Arguments and Options sections (global options left out)."""
    arguments = [
        (_metavar(p), getattr(p, "help", None) or "")
        for p in command.params
        if p.param_type_name == "argument"
    ]
    options = [
        option_record(p)
        for p in command.get_params(ctx)
        if p.param_type_name == "option" and not _is_global(p) and not getattr(p, "hidden", 0)
    ]
    if arguments:
        with formatter.section("Arguments"):
            formatter.write_dl(arguments)
    if options:
        with formatter.section("Options"):
            formatter.write_dl(options)


def write_commands(group: Any, ctx: Context, formatter: HelpFormatter) -> None:
    """The Commands section: each command's whole first paragraph."""
    rows = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            rows.append((name, first_paragraph(command.short_help or command.help)))
    if rows:
        with formatter.section("Commands"):
            formatter.write_dl(rows, col_max=12)


def write_global_summary(formatter: HelpFormatter) -> None:
    """One paragraph naming the global options a command also takes (an option and its
    value never split across lines)."""
    heading = "Global options, accepted after the command name as well as before it:"
    words = heading.split(" ")
    names = [option_record(p)[0].replace(", ", "/") for p in GLOBAL_PARAMS]
    items = [
        *words,
        *(f"{n}," for n in names[:-1]),
        names[-1],
        "(s3stow",
        "--help",
        "describes",
        "them).",
    ]
    indent = " " * (formatter.current_indent + 2)
    lines: list[str] = []
    line = ""
    for item in items:
        if line and len(indent) + len(line) + 1 + len(item) > formatter.width:
            lines.append(line)
            line = item
        else:
            line = f"{line} {item}" if line else item
    lines.append(line)
    formatter.write_paragraph()
    formatter.write("".join(f"{indent}{text}\n" for text in lines))


def write_global_options(ctx: Context, formatter: HelpFormatter, *, extra: list[Parameter]) -> None:
    """The top-level help's section of global options (and ``extra``: --version, -h)."""
    with formatter.section("Global options (before or after the command name)"):
        formatter.write_dl([option_record(p) for p in [*GLOBAL_PARAMS, *extra]])


def write_examples(epilog: str | None, formatter: HelpFormatter) -> None:
    """The examples epilog: each description, then its command line, unwrapped."""
    if not epilog:
        return
    with formatter.section("Examples"):
        for index, line in enumerate(inspect.cleandoc(epilog).splitlines()):
            if line.startswith(_COMMAND):
                formatter.write(f"{'':>{formatter.current_indent + 2}}{line[2:]}\n")
            elif line.strip():
                if index:
                    formatter.write("\n")
                formatter.write_text(line)


def house(command: Command) -> Command:
    """Give ``command`` (and the commands of a group) the house classes and plain
    parameters (``cli.plainparams``), and settle the global options once its line is
    parsed, before its own code runs."""
    for param in command.params:
        plain(param)
    if isinstance(command, TyperGroup):
        command.__class__ = HouseGroup
        for sub in command.commands.values():
            house(sub)
    elif isinstance(command, TyperCommand):
        command.__class__ = HouseCommand
    if command.callback is not None:
        command.callback = _settled(command.callback)
    return command


def _settled(callback: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        from typer._click.globals import get_current_context

        settle(get_current_context())
        return callback(*args, **kwargs)

    run.__wrapped__ = callback  # type: ignore[attr-defined]
    return run
