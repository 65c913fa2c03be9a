"""The global options: defined once, accepted before and after the command name.

``s3stow --endpoint-url URL upload ./d s3://b`` and ``s3stow upload ./d s3://b
--endpoint-url URL`` mean the same. Each option is one parameter object in
``GLOBAL_PARAMS``, which the top-level group and every command and command group
list among their parameters (``cli.helptext``): one definition, one help text, one
completion. A value given in two places must agree: ``--region a`` before the
command and ``--region b`` after it is a usage error that names both (exit 2),
since silently taking either would send requests somewhere the user did not mean;
the same value twice is accepted, and ``-v`` counts add up wherever they are. The
values end in one ``GlobalOptions`` on the root context (every command reads it as
``ctx.obj``); ``settle`` applies them (logging) once a command's line is parsed.

The parameters are ``PlainOption``s (``cli.plainparams``): parsing them builds no
pydantic adapter, so ``s3stow upload --help`` imports no pydantic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s3stow.cli.collector import hold_collector as hold_collector
from s3stow.cli.collector import release_collector as release_collector
from s3stow.cli.plainparams import PlainOption
from s3stow.errors import ConfigError
from s3stow.logs import configure_logging

if TYPE_CHECKING:
    from typer._click import Context, Parameter

    from s3stow.config import Settings

_DEBUG = {"on": False}


def debug_on() -> bool:
    """Whether ``--debug`` was given (tracebacks are shown)."""
    return _DEBUG["on"]


@dataclass
class GlobalOptions:
    """The global options' values, wherever on the command line they were given."""

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
    # option name -> (value, where it was given), for the conflict check
    given: dict[str, tuple[Any, str]] = field(default_factory=dict, repr=False)

    def settings(self, *, keep_held: bool = False, **flags: Any) -> Settings:
        """Resolve the settings: defaults < config file < env < these flags. A command
        that resolves settings may make a botocore session: botocore's parsed JSON
        models are kept in the user's cache directory from here on (``modelcache``).
        The collector held during start-up runs again from here, unless ``keep_held``:
        a command whose engine reports to a ``StartupOver`` observer (``upload``,
        ``restore``) keeps it held through botocore's import and the client's creation,
        until a client is made or the run decides about its first file."""
        from s3stow.config import load_settings
        from s3stow.store.modelcache import use_directory

        use_directory(_model_cache)

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
        try:
            settings = load_settings(config_file=self.config, flags=merged)
        except BaseException:
            release_collector()
            raise
        if keep_held:
            from s3stow.store.client import when_client_made

            when_client_made(release_collector)
        else:
            release_collector()
        return settings

    def give(self, param: Parameter, value: Any, *, where: str) -> None:
        """Take ``value`` of ``param`` given on the command line ``where``."""
        name = param.name
        if name == "verbose":
            self.verbose += int(value)
            return
        shown = "/".join(getattr(param, "opts", [])[:1] or [name])
        if name in self.given and self.given[name][0] != value:
            first, before = self.given[name]
            raise ConfigError(
                f"{shown} is given twice with different values: {before} ({_text(first)}) "
                f"and {where} ({_text(value)})",
                hint=f"give {shown} once, before or after the command name",
            )
        self.given[name] = (value, where)
        if name == "config":
            self.config = Path(value)
        elif name == "no_verify_ssl":
            self.verify_ssl = False
        else:
            setattr(self, name, value)

    def apply(self) -> None:
        """Set up logging for these options."""
        _DEBUG["on"] = self.debug
        configure_logging(verbose=self.verbose, debug=self.debug, quiet=self.quiet)


def _model_cache() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("s3stow")) / "botocore"


def _text(value: Any) -> str:
    if value is True:
        return "on"
    if value is False:
        return "off"
    return str(value)


def options_of(ctx: Context) -> GlobalOptions:
    """The run's ``GlobalOptions`` (created on the root context on first use)."""
    root = ctx.find_root()
    if not isinstance(root.obj, GlobalOptions):
        root.obj = GlobalOptions()
    return root.obj


def _where(ctx: Context) -> str:
    if ctx.parent is None:
        return "before the command"
    root = ctx.find_root().info_name or "s3stow"
    return f"after '{ctx.command_path.removeprefix(root).strip()}'"


def _record(ctx: Context, param: Parameter, value: Any) -> Any:
    from typer._click.core import ParameterSource

    given = ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE
    if not given or value is None or ctx.resilient_parsing:  # resilient: shell completion
        return value
    options_of(ctx).give(param, value, where=_where(ctx))
    return value


def settle(ctx: Context) -> GlobalOptions:
    """The options once a command's whole line is parsed: apply and return them."""
    options = options_of(ctx)
    options.apply()
    # A sub-context inherited ``obj`` before it was created: point it at the options.
    node: Context | None = ctx
    while node is not None:
        node.obj = options
        node = node.parent
    return options


def _option(
    decls: list[str],
    help: str,
    *,
    metavar: str | None = None,
    count: bool = False,
    default: Any = None,
    show_default: str | bool = False,
) -> PlainOption:
    from typer._coercion import resolve_type_descriptor
    from typer.models import OptionInfo

    flag = metavar is None and not count
    kind: type = bool if flag else (int if count else str)
    return PlainOption(
        param_decls=decls,
        type_descriptor=resolve_type_descriptor(kind, OptionInfo()),
        metavar=metavar,
        is_flag=flag,
        count=count,
        default=default if default is not None else (0 if count else None),
        help=help,
        expose_value=False,
        callback=_record,
        show_default=show_default,
    )


GLOBAL_PARAMS: list[PlainOption] = [
    _option(
        ["config", "--config"],
        "YAML config file (also S3STOW_CONFIG); see the README's settings table.",
        metavar="FILE",
    ),
    _option(
        ["endpoint_url", "--endpoint-url"],
        "S3-compatible endpoint, e.g. http://127.0.0.1:9000 (AWS when not given).",
        metavar="URL",
    ),
    _option(["profile", "--profile"], "AWS profile (from ~/.aws/config).", metavar="NAME"),
    _option(["region", "--region"], "AWS region, e.g. eu-west-1.", metavar="REGION"),
    _option(
        ["path_style", "--path-style/--virtual-style"],
        "Addressing: path-style (most S3-compatible servers) or virtual-hosted.",
    ),
    _option(
        ["auth", "--auth"],
        "Credentials: chain (environment, profiles, SSO, roles) or keyring.",
        metavar="chain|keyring",
        show_default="chain",
    ),
    _option(
        ["keyring_service", "--keyring-service"],
        "Keyring service holding the access key (with --auth keyring).",
        metavar="NAME",
        show_default="s3stow",
    ),
    _option(["ca_bundle", "--ca-bundle"], "CA bundle file for TLS verification.", metavar="FILE"),
    _option(
        ["no_verify_ssl", "--no-verify-ssl"], "Do not verify TLS certificates (warns; unsafe)."
    ),
    _option(
        ["expected_bucket_owner", "--expected-bucket-owner"],
        "12-digit account id: S3 refuses requests to a bucket another account owns.",
        metavar="ACCOUNT",
    ),
    _option(
        ["verbose", "-v", "--verbose"],
        "More detail: every file named, every warning listed (-vv: debug logs).",
        count=True,
    ),
    _option(["debug", "--debug"], "Debug logs (secrets redacted) and tracebacks."),
    _option(["quiet", "-q", "--quiet"], "Nothing on success; only errors and failures."),
    _option(["json", "--json"], "Machine-readable JSON on stdout."),
]
