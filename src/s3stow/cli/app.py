"""The ``s3stow`` Typer application: global options, command registry, ``main``.

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
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from s3stow import __version__
from s3stow.errors import ExitCode, S3StowError
from s3stow.logs import configure_logging, redact

if TYPE_CHECKING:
    from rich.console import Console
    from typer._click import Command, Context  # the click that typer's classes are typed with

    from s3stow.config import Settings

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
}


class LazyCommandGroup(TyperGroup):
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
    return command


app = _typer(
    cls=LazyCommandGroup,
    name="s3stow",
    help="Upload and archive local files to S3 and S3-compatible stores: every file ends "
    "verified in S3 or reported with its reason, and interrupted runs resume.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
log = logging.getLogger("s3stow")


@dataclass
class GlobalOptions:
    """Options given before the command name."""

    config: Path | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    region: str | None = None
    path_style: bool | None = None
    ca_bundle: str | None = None
    verify_ssl: bool | None = None
    expected_bucket_owner: str | None = None
    auth: str | None = None
    keyring_service: str | None = None
    verbose: int = 0
    debug: bool = False
    quiet: bool = False
    json: bool = False

    def settings(self, **flags: Any) -> Settings:
        """Resolve the settings: defaults < config file < env < these flags."""
        from s3stow.config import load_settings

        merged = {
            "endpoint_url": self.endpoint_url,
            "profile": self.profile,
            "region": self.region,
            "path_style": self.path_style,
            "ca_bundle": self.ca_bundle,
            "verify_ssl": self.verify_ssl,
            "expected_bucket_owner": self.expected_bucket_owner,
            "auth": self.auth,
            "keyring_service": self.keyring_service,
            **flags,
        }
        return load_settings(config_file=self.config, flags=merged)


_DEBUG = {"on": False}


def _version(value: bool) -> None:
    if value:
        print(f"s3stow {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML config file.", envvar="S3STOW_CONFIG")
    ] = None,
    endpoint_url: Annotated[
        str | None, typer.Option(help="S3-compatible endpoint URL (e.g. http://127.0.0.1:9000).")
    ] = None,
    profile: Annotated[str | None, typer.Option(help="AWS profile to use.")] = None,
    region: Annotated[str | None, typer.Option(help="AWS region.")] = None,
    path_style: Annotated[
        bool | None,
        typer.Option(
            "--path-style/--virtual-style",
            help="Addressing style (path-style for most S3-compatible servers).",
            show_default=False,
        ),
    ] = None,
    auth: Annotated[
        str | None,
        typer.Option(help="Credentials: chain (env, profiles, SSO, roles) or keyring."),
    ] = None,
    keyring_service: Annotated[
        str | None, typer.Option(help="Keyring service holding the access key [s3stow].")
    ] = None,
    ca_bundle: Annotated[
        str | None, typer.Option(help="CA bundle file for TLS verification.")
    ] = None,
    no_verify_ssl: Annotated[
        bool, typer.Option("--no-verify-ssl", help="Disable TLS verification (warns).")
    ] = False,
    expected_bucket_owner: Annotated[
        str | None,
        typer.Option(help="12-digit account id: S3 refuses requests to a bucket it does not own."),
    ] = None,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log output (-vv for debug).")
    ] = 0,
    debug: Annotated[
        bool, typer.Option(help="Debug logs (secrets redacted) and tracebacks.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Nothing on success; only errors and failures.")
    ] = False,
    json_output: Annotated[
        bool, typer.Option("--json", help="Machine-readable JSON output.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Global options, given before the command."""
    _DEBUG["on"] = debug
    configure_logging(verbose=verbose, debug=debug, quiet=quiet)
    ctx.obj = GlobalOptions(
        config=config,
        endpoint_url=endpoint_url,
        profile=profile,
        region=region,
        path_style=path_style,
        ca_bundle=ca_bundle,
        verify_ssl=False if no_verify_ssl else None,
        expected_bucket_owner=expected_bucket_owner,
        auth=auth,
        keyring_service=keyring_service,
        verbose=verbose,
        debug=debug,
        quiet=quiet,
        json=json_output,
    )


# Options of the commands that run the engine for long (upload, watch, job work, restore):
# settings metrics_port and metrics_host, served by report/metrics.py.
MetricsPortOpt = Annotated[
    int | None,
    typer.Option(
        help="Serve Prometheus metrics on this port at /metrics (0: any free port).",
        show_default=False,
    ),
]
MetricsHostOpt = Annotated[
    str | None, typer.Option(help="Address --metrics-port listens on [127.0.0.1].")
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
    from rich.markup import escape

    Console(file=sys.stderr, highlight=False, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(redact(message))}", markup=True
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point; exits with the documented code."""
    try:
        # With standalone_mode=False click returns the code of a typer.Exit.
        code = app(args=argv, standalone_mode=False)
    except S3StowError as exc:
        if _DEBUG["on"]:
            log.exception("s3stow error")
        _error(str(exc))
        sys.exit(int(exc.exit_code))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _error("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            _error(str(exc))
        sys.exit(int(ExitCode.USAGE))
    except KeyboardInterrupt:
        _error("interrupted")
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:
        if _DEBUG["on"]:
            log.exception("unexpected error")
        _error(
            f"unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback; "
            "please report it)"
        )
        sys.exit(int(ExitCode.FATAL))
    sys.exit(code if isinstance(code, int) else 0)
