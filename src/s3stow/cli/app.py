"""The ``s3stow`` Typer application: command registry, top-level help, ``main``.

The global options are defined in ``cli.globalopts`` and accepted before and after
the command name; every command built here gets the house help (``cli.helptext``).

The registry is lazy: ``COMMANDS`` names each command's module, and a command is
imported and built only when it is invoked or listed, so ``s3stow upload`` does
not pay for the options of ten other commands.

``main`` is the console-script entry point. It maps every error to the
documented exit code (0 ok, 1 some failed, 2 usage/config, 3 fatal
auth/permission/bucket, 130 interrupted) and prints a message with a hint,
never a traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from s3stow import __version__
from s3stow.cli.globalopts import (
    GLOBAL_PARAMS,
    GlobalOptions,
    debug_on,
    hold_collector,
    release_collector,
    settle,
)
from s3stow.cli.helptext import (
    HouseGroup,
    examples,
    house,
    write_commands,
    write_global_options,
)
from s3stow.errors import ExitCode, S3StowError
from s3stow.logs import flush_warnings, redact

if TYPE_CHECKING:
    from rich.console import Console
    from typer._click import (  # the click that typer's classes are typed with
        Command,
        Context,
        HelpFormatter,
    )

# Command name -> the module of s3stow.cli whose ``register(app)`` defines it, in the
# order ``s3stow --help`` lists them.
COMMANDS = {
    "upload": "upload",
    "restore": "restore",
    "retry": "retry",
    "verify": "verify",
    "stats": "stats",
    "status": "status",
    "doctor": "doctor",
    "watch": "watch",
    "dev-server": "devserver",
    "bucket": "bucket",
    "archive": "archive",
    "job": "job",
    "completion": "completion",
}


class LazyCommandGroup(HouseGroup):
    """The top-level group: builds a command from its module on first use."""

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        if cmd_name not in self.commands:
            if cmd_name in COMMANDS:
                self.commands[cmd_name] = _build_command(cmd_name)
            else:  # a typo: load every command so "Did you mean ...?" sees them all
                for name in COMMANDS:
                    self.get_command(ctx, name)
        return self.commands.get(cmd_name)

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        own = [p for p in self.get_params(ctx) if p not in GLOBAL_PARAMS]
        write_global_options(ctx, formatter, extra=own)
        write_commands(self, ctx, formatter)


def _typer(**settings: Any) -> typer.Typer:
    return typer.Typer(
        rich_markup_mode=None,  # help texts show s3://BUCKET[/PREFIX] literally
        add_completion=False,
        pretty_exceptions_enable=False,
        **settings,
    )


def _no_options() -> None:
    """Callback of the holder group: makes typer build a group, never a lone command."""


def _build_command(name: str) -> Command:
    module = importlib.import_module(f"s3stow.cli.{COMMANDS[name]}")
    holder = _typer()
    holder.callback()(_no_options)
    module.register(holder)
    command: Command = typer.main.get_group(holder).commands[name]
    return house(command)


app = _typer(
    cls=LazyCommandGroup,
    name="s3stow",
    help="Upload and archive local files to S3 and S3-compatible stores: every file ends "
    "verified in S3 or reported with its reason, and interrupted runs resume.",
    epilog=examples(
        (
            "Upload a folder; run the same line again to resume or to send only what changed:",
            "s3stow upload ./photos s3://my-bucket/photos",
        ),
        (
            "The same to an S3-compatible server (global options go before or after the command):",
            "s3stow upload ./photos s3://backup/photos --endpoint-url http://nas:9000",
        ),
        ("Help on one command, with its examples:", "s3stow upload --help"),
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
log = logging.getLogger("s3stow")


def _version(value: bool) -> None:
    if value:
        print(f"s3stow {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """The global options (``cli.globalopts``) given before the command."""
    settle(ctx)


# Options of the commands that run the engine for long (upload, watch, job work, restore):
# settings metrics_port and metrics_host, served by report/metrics.py.
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        help="Serve Prometheus metrics on this port at /metrics (0: any free port).",
        metavar="PORT",
        show_default=False,
    ),
]
MetricsHostOpt = Annotated[
    str | None,
    typer.Option(
        help="Address --metrics-port listens on.", metavar="ADDRESS", show_default="127.0.0.1"
    ),
]

# Piped or redirected, results are data: a width no key, path or table row reaches.
_PIPED_WIDTH = 1_000_000


def output_console() -> Console:
    """The console for a command's results on stdout. On a terminal rich fits tables
    to its width; piped or redirected nothing is cut short or wrapped (a key in a
    table is read whole by the script that reads it)."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=True)
    if console.is_terminal:
        return console
    return Console(highlight=False, soft_wrap=True, width=_PIPED_WIDTH)


def heading(console: Console, title: str) -> None:
    """A rule with ``title`` on a terminal; piped, the title alone on its line."""
    if console.is_terminal:
        console.rule(title)
    else:
        console.print(title, markup=False)


def _error(message: str) -> None:
    from rich.console import Console
    from rich.text import Text

    # the message as plain text, never markup: rich's escape() leaves a backslash
    # before a [ that is no tag, and markup then drops it (a hint's "write \\[")
    Console(file=sys.stderr, highlight=False, soft_wrap=True).print(
        Text.assemble(("error:", "bold red"), " ", redact(message))
    )


def unencodable_escaped() -> None:
    """Let stdout write a character its encoding lacks as ``\\uXXXX`` instead of
    raising ``UnicodeEncodeError`` (stderr already does, Python's default).

    On Windows a redirected or piped stdout (``> plan.txt``, ``| findstr``) uses the
    ANSI code page (cp1252 and the like), not UTF-8, and a key or file name outside it
    (Greek, CJK, emoji) ended a dry run, a listing or a table half written.
    """
    stdout = sys.stdout
    if isinstance(stdout, io.TextIOWrapper) and stdout.errors == "strict":
        stdout.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; exits with the documented code. Run as the program
    (``argv`` not given: the console script, ``python -m s3stow``), the process is
    s3stow's own: its garbage collector is held during start-up
    (``globalopts.hold_collector``); a host calling ``main([...])`` keeps its own."""
    if argv is None:
        hold_collector()
        unencodable_escaped()
    if os.environ.get("_S3STOW_COMPLETE"):  # the shell asks for completions
        from typer._completion_classes import completion_init

        completion_init()
    try:
        _main(argv)
    finally:
        release_collector()
        flush_warnings()  # what a command warned of many times, said once (logs.warn_each)


# Asked when the command ends: an output that failed after the run's outcome was decided
# (the status file's last write), said as the command's last line; exit 3 where the run
# would end 0 or 1.
_LATE_CHECKS: list[Callable[[], str | None]] = []


def check_at_exit(check: Callable[[], str | None]) -> None:
    """Ask ``check`` when the command ends (``StatusHeartbeat.final_error``): a message
    is an output the run could not write at its end, which a user who monitors the
    status file is told nothing else of."""
    _LATE_CHECKS.append(check)


def _after_run(code: int) -> int:
    """The exit code, once the late errors are said: 3 (an output the user relies on
    was not written) for a run that would exit 0 or 1; 2, 3 and 130 stay."""
    checks, _LATE_CHECKS[:] = list(_LATE_CHECKS), []
    late = [message for message in (check() for check in checks) if message]
    for message in late:
        _error(f"{message}; exit {int(ExitCode.FATAL)}, the summary is the run's outcome")
    if late and code in (ExitCode.OK, ExitCode.SOME_FAILED):
        return int(ExitCode.FATAL)
    return code


def _main(argv: list[str] | None) -> None:
    _LATE_CHECKS.clear()
    try:
        # With standalone_mode=False click returns the code of a typer.Exit.
        code = app(args=argv, standalone_mode=False, prog_name="s3stow")
    except S3StowError as exc:
        if debug_on():
            log.exception("s3stow error")
        _error(str(exc))
        sys.exit(_after_run(int(exc.exit_code)))
    except typer.Exit as exc:
        sys.exit(_after_run(exc.exit_code))
    except typer.Abort:
        _error("interrupted")
        sys.exit(_after_run(int(ExitCode.INTERRUPTED)))
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            _error(str(exc))
        sys.exit(int(ExitCode.USAGE))
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(_after_run(int(ExitCode.INTERRUPTED)))
    except Exception as exc:
        if debug_on():
            log.exception("unexpected error")
        _error(
            f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback; "
            "please report it)"
        )
        sys.exit(int(ExitCode.FATAL))
    sys.exit(_after_run(code if isinstance(code, int) else 0))


__all__ = [
    "COMMANDS",
    "GlobalOptions",
    "app",
    "check_at_exit",
    "heading",
    "main",
    "output_console",
]
