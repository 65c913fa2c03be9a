"""Configuration: one validated ``Settings`` value (``s3stow.settings``), resolved once,
in one place.

Precedence, lowest first: built-in defaults < YAML config file < environment
variables (``S3STOW_<KEY>``) < command-line flags. This is the only module of
the library that reads ``os.environ`` (the environment mapping is passed in, so
tests and embedders can supply their own). Errors name the key and where it came
from (file and line, environment variable, or flag) and exit with code 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from s3stow.errors import ConfigError
from s3stow.localfiles import decode_text
from s3stow.settings import (
    DEFAULT_FOLDER_TYPES,
    FIX_HINT,
    SETTING_NAMES,
    ChecksumName,
    InvalidSettings,
    Settings,
    parse_metadata,
    wants_etag_check,
)

__all__ = [  # the settings are made here; what they are is s3stow.settings'
    "DEFAULT_FOLDER_TYPES",
    "ENV_PREFIX",
    "SETTING_NAMES",
    "ChecksumName",
    "InvalidSettings",
    "Settings",
    "load_settings",
    "parse_metadata",
    "wants_etag_check",
]

ENV_PREFIX = "S3STOW_"


class _Source:
    """Where one raw value came from, for error messages."""

    def __init__(self, describe: str) -> None:
        self.describe = describe


_YAML_HINT = (
    "write one `setting: value` per line (e.g. `concurrency: 8`), indent with spaces, not "
    "tabs, and quote a value that holds ': ' or ' #'"
)


def _text_loader() -> Any:
    """PyYAML's ``SafeLoader`` whose plain scalars stay text (``null`` and ``~``
    aside), validated as an environment variable's are: YAML 1.1 would read the README's
    own values otherwise (``etag_check: on`` as a boolean, ``newer_than: 2025-07-29`` as a
    date, ``2025-13-45`` as an error outside the YAML errors, ``20250729_1615`` as a
    number). Quoted values, lists, mappings and explicit tags load as before."""
    import yaml

    kept = ("tag:yaml.org,2002:null", "tag:yaml.org,2002:merge")

    class TextLoader(yaml.SafeLoader):
        pass

    TextLoader.yaml_implicit_resolvers = {
        first: [(tag, pattern) for tag, pattern in resolvers if tag in kept]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return TextLoader


def _yaml_with_lines(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    import yaml  # only a run with --config pays for it

    try:
        text = decode_text(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist", hint="check the --config path"
        ) from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not UTF-8 text (byte {exc.start + 1} is not)",
            hint="save it as UTF-8 (Notepad: Save as, Encoding UTF-8)",
        ) from None
    loader = _text_loader()
    try:
        node = yaml.compose(text, Loader=loader)
        data = yaml.load(text, Loader=loader)  # noqa: S506 (a SafeLoader: see _text_loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)  # without PyYAML's excerpt
        raise ConfigError(
            f"config file {path} is not valid YAML{where}: {problem}", hint=_YAML_HINT
        ) from None
    if data is None:
        return {}, {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise ConfigError(
            f"config file {path} must be a mapping of setting: value", hint=_YAML_HINT
        )
    lines: dict[str, int] = {}
    for key_node, _ in node.value:
        if not isinstance(key_node, yaml.ScalarNode):
            continue
        key, line = str(key_node.value).replace("-", "_"), key_node.start_mark.line + 1
        if key in lines:  # PyYAML keeps the last one silently, as - and _ would
            raise ConfigError(
                f"setting {key!r} is given twice in {path}, lines {lines[key]} and {line}",
                hint="keep one of them: s3stow does not guess which one you meant",
            )
        lines[key] = line
    normalised = {str(k).replace("-", "_"): v for k, v in data.items()}
    return normalised, lines


def _from_env(env: Mapping[str, str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, raw in env.items():
        if name.startswith(ENV_PREFIX):
            key = name[len(ENV_PREFIX) :].lower()
            if key in SETTING_NAMES:
                values[key] = raw
    return values


def load_settings(
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
) -> Settings:
    """Resolve the settings from defaults, a YAML file, the environment and flags.

    ``env`` defaults to ``os.environ``; ``flags`` holds only the flags the user
    actually gave (``None`` values are ignored).
    """
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    origin: dict[str, _Source] = {}
    if config_file is None and env.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(env[ENV_PREFIX + "CONFIG"])
    if config_file is not None:
        data, lines = _yaml_with_lines(config_file)
        for key, value in data.items():
            line = lines.get(key)
            where = f"{config_file}, line {line}" if line else str(config_file)
            if key not in SETTING_NAMES:
                raise ConfigError(f"unknown setting {key!r} in {where}", hint=_suggest(key))
            merged[key] = value
            origin[key] = _Source(where)
    for key, value in _from_env(env).items():
        merged[key] = value
        origin[key] = _Source(f"environment variable {ENV_PREFIX}{key.upper()}")
    for key, value in (flags or {}).items():
        if value is None:
            continue
        merged[key] = value
        origin[key] = _Source(f"option --{key.replace('_', '-')}")
    try:
        settings = Settings(**merged)
    except InvalidSettings as exc:
        raise _explain(exc, origin) from None
    _check_outputs(settings, origin)
    return settings


_OUTPUTS = {
    "ledger": "the ledger",
    "status_json": "the status file",
    "failures_file": "the failures file",
}


def _check_outputs(settings: Settings, origin: Mapping[str, _Source]) -> None:
    """The ledger, the status file and the failures file must be three files: one path
    given for two destroyed one (the status file replaces its path, a failures file
    truncates it; the ledger was replaced by a JSON file, exit 0)."""
    seen: dict[Path, str] = {}
    for key, name in _OUTPUTS.items():
        value = getattr(settings, key)
        if value is None:
            continue
        text = str(value)
        if key == "ledger":
            if "://" in text and not text.startswith("sqlite:///"):
                continue  # a database server's
            text = text.removeprefix("sqlite:///")
        path = Path(text).expanduser().resolve()
        if path in seen:
            first = seen[path]
            raise ConfigError(
                f"{_OUTPUTS[first]} ({_given(first, origin)}) and {name} ({_given(key, origin)}) "
                f"are one file, {path}: writing one would destroy the other",
                hint="give the ledger, --status-json and --failures-file a file each",
            )
        seen[path] = key


def _given(key: str, origin: Mapping[str, _Source]) -> str:
    source = origin.get(key)
    return source.describe if source is not None else "the default"


def _suggest(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, SETTING_NAMES, n=3, cutoff=0.6)
    if close:  # the closest, and those nearly as close ('concurency': not max_concurrency)
        best = difflib.SequenceMatcher(None, key, close[0]).ratio()
        close = [c for c in close if difflib.SequenceMatcher(None, key, c).ratio() >= best - 0.1]
        return "did you mean " + " or ".join(repr(c) for c in close) + "?"
    return "the README's configuration table lists every setting"


def _explain(exc: InvalidSettings, origin: Mapping[str, _Source]) -> ConfigError:
    problems = []
    for key, problem in exc.problems:
        where = origin[key].describe if key in origin else "defaults"
        problems.append(f"setting {key!r} from {where}: {problem}")
    return ConfigError("invalid configuration: " + "; ".join(problems), hint=FIX_HINT)
