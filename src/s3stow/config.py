"""Configuration: one validated ``Settings`` value, resolved once, in one place.

Precedence, lowest first: built-in defaults < YAML config file < environment
variables (``S3STOW_<KEY>``) < command-line flags. This is the only module of
the library that reads ``os.environ`` (the environment mapping is passed in, so
tests and embedders can supply their own). Errors name the key and where it came
from (file and line, environment variable, or flag) and exit with code 2.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from s3stow.errors import ConfigError
from s3stow.localfiles import decode_text
from s3stow.units import GiB, MiB, parse_concurrency, parse_point_in_time, parse_size

# The seed project's folder types and their extensions (the project layout's default).
DEFAULT_FOLDER_TYPES: dict[str, list[str]] = {
    "reels": [".mp4", ".json", ".csv", ".gpx"],
    "config": [".yaml", ".yml", ".json", ".txt"],
    "gis_data": [
        ".shp",
        ".shx",
        ".dbf",
        ".prj",
        ".cpg",
        ".geojson",
        ".gpkg",
        ".kml",
        ".kmz",
        ".tif",
        ".tiff",
        ".csv",
        ".json",
    ],
    "logs": [".log", ".txt", ".csv", ".json"],
    "report": [".pdf", ".html", ".docx", ".xlsx", ".csv", ".png", ".jpg", ".md"],
}

ENV_PREFIX = "S3STOW_"
MIN_PART = 5 * MiB
MAX_PART = 5 * GiB

ChecksumName = Literal["crc64nvme", "crc32c", "crc32", "sha256", "none"]


# What an HTTP header allows (RFC 9110 token; visible ASCII and spaces), which is what S3
# takes in x-amz-meta-* and Content-Type: anything else fails every file at send time.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_HEADER_TEXT = re.compile(r"[ -~]*\Z")
# The metadata s3stow writes itself (transfer/context.py) and proves with (store/proof.py).
OWN_METADATA = frozenset({"uploaded-at", "source", "mtime", "sha256"})


# The factories of the defaults are s3stow's functions, not ``list`` and ``dict``:
# pydantic asks each factory's signature, and a builtin's is parsed from its text by the
# tokenizer, whose first use compiles its regular expressions (about 3 ms a start).
def _empty_list() -> list[str]:
    return []


def _empty_dict() -> dict[str, str]:
    return {}


def _default_folder_types() -> dict[str, list[str]]:
    return {k: list(v) for k, v in DEFAULT_FOLDER_TYPES.items()}


class Settings(BaseModel):
    """Every setting s3stow reads, with its default. See the README table."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Connection
    auth: Literal["chain", "keyring"] = "chain"
    keyring_service: str = "s3stow"
    endpoint_url: str | None = None  # unset: botocore's (AWS_ENDPOINT_URL*, AWS config, AWS)
    profile: str | None = None
    region: str | None = None
    path_style: bool | None = None  # unset: the AWS profile's s3.addressing_style (auto)
    ca_bundle: str | None = None
    verify_ssl: bool = True
    connect_timeout: float = Field(default=20.0, gt=0)
    read_timeout: float = Field(default=120.0, gt=0)
    checksum_compat: bool = False
    etag_check: Literal["auto", "on", "off"] = "auto"
    fast_path: bool = True
    expected_bucket_owner: str | None = Field(default=None, pattern=r"^\d{12}$")
    # Transfer
    concurrency: int = Field(default=16, ge=1, le=1024)
    # growth past concurrency while files/s rises (unset: 16 x concurrency, at most 256)
    max_concurrency: int | None = Field(default=None, ge=1, le=4096)
    part_size: int | None = None
    multipart_threshold: int = 16 * MiB
    memory_limit: int = Field(default=256 * MiB, ge=16 * MiB)
    checksum: ChecksumName = "crc64nvme"
    sha256_metadata: bool = False
    content_type: str | None = None
    metadata: dict[str, str] = Field(default_factory=_empty_dict)
    sse: Literal["AES256", "aws:kms"] | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    follow_symlinks: bool = False
    # Keys and selection
    layout: Literal["mirror", "date-folders", "project"] = "mirror"
    key_template: str | None = None
    strip_prefix: str | None = None
    project_key: str | None = None
    timestamp: bool = False
    custom_timestamp: str | None = Field(default=None, pattern=r"^\d{8}_\d{4}$")
    include: list[str] = Field(default_factory=_empty_list)
    exclude: list[str] = Field(default_factory=_empty_list)
    min_size: int | None = Field(default=None, ge=0)
    max_size: int | None = Field(default=None, ge=0)
    newer_than: str | None = None
    older_than: str | None = None
    folder_types: dict[str, list[str]] = Field(default_factory=_default_folder_types)
    include_types: list[str] = Field(default_factory=_empty_list)
    exclude_types: list[str] = Field(default_factory=_empty_list)
    no_clobber: bool = False
    force: bool = False
    dry_run: bool = False
    limit: int | None = Field(default=None, ge=0)
    # Retries
    max_attempts: int = Field(default=5, ge=1, le=20)
    file_retries: int = Field(default=2, ge=0, le=20)
    retry_base_delay: float = Field(default=1.0, ge=0)
    retry_max_delay: float = Field(default=20.0, gt=0)
    # Records and reports
    ledger: str | None = None
    status_json: Path | None = None
    status_interval: float = Field(default=5.0, gt=0)
    failures_file: Path | None = None
    progress_interval: float = Field(default=10.0, gt=0)
    # Prometheus /metrics of upload, watch, job work and restore (None: not served)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError(
                "the endpoint URL is empty: give one such as https://s3.example.com, "
                "or leave the setting out to use the AWS configuration's"
            )
        if not value.strip().lower().startswith(("http://", "https://")):
            raise ValueError(
                f"the endpoint URL {value!r} has no scheme: write http://{value.strip()} "
                f"or https://{value.strip()}"
            )
        return value.strip()

    @field_validator("ledger")
    @classmethod
    def _ledger(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():  # an unset shell variable, say
            raise ValueError(
                "the ledger path is empty: give a SQLite file or a postgresql:// URL, or "
                "leave the setting out for the default (ledger.db in the user state "
                "directory)"
            )
        return value

    @field_validator("concurrency", "max_concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> Any:
        return parse_concurrency(value) if isinstance(value, str) else value

    @field_validator("include", "exclude", "include_types", "exclude_types", mode="before")
    @classmethod
    def _list(cls, value: Any) -> Any:
        if isinstance(value, str):  # from an env var: comma-separated
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator(
        "part_size", "multipart_threshold", "memory_limit", "min_size", "max_size", mode="before"
    )
    @classmethod
    def _size(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, str) else value

    @field_validator("part_size")
    @classmethod
    def _part_limits(cls, value: int | None) -> int | None:
        if value is not None and not MIN_PART <= value <= MAX_PART:
            raise ValueError("part size must be between 5 MiB and 5 GiB (S3's limits)")
        return value

    @field_validator("multipart_threshold")
    @classmethod
    def _threshold_limits(cls, value: int) -> int:
        if not MIN_PART <= value <= MAX_PART:
            raise ValueError("multipart threshold must be between 5 MiB and 5 GiB")
        return value

    @field_validator("newer_than", "older_than")
    @classmethod
    def _point_in_time(cls, value: str | None) -> str | None:
        if value is not None:  # the form is checked here, where the value came from is known
            parse_point_in_time(value, now=0.0)
        return value

    @field_validator("metadata", mode="before")
    @classmethod
    def _metadata(cls, value: Any) -> Any:
        if isinstance(value, str):  # from an env var: "k=v,k2=v2"
            return parse_metadata(value.split(",") if value else [])
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.match(name):
                raise ValueError(
                    f"metadata name {name!r} cannot be an HTTP header: use letters, digits "
                    "and - _ . only"
                )
            if name.lower() in OWN_METADATA:
                raise ValueError(
                    f"metadata name {name!r} is s3stow's own (it writes "
                    f"{', '.join(sorted(OWN_METADATA))} itself): choose another name"
                )
            if not _HEADER_TEXT.match(text):
                raise ValueError(
                    f"metadata {name}={text!r}: S3 takes printable ASCII only in a metadata "
                    "value (no accents, line breaks or tabs); encode others, e.g. as %C3%A9"
                )
        return value

    @field_validator("content_type")
    @classmethod
    def _content_type_header(cls, value: str | None) -> str | None:
        if value is not None and not _HEADER_TEXT.match(value):
            raise ValueError(
                f"{value!r} cannot be a Content-Type: printable ASCII only, such as "
                "text/plain; charset=utf-8"
            )
        return value

    @property
    def concurrency_ceiling(self) -> int:
        """How far the request limit may grow past ``concurrency`` while files/s rises
        (``max_concurrency``; below ``concurrency`` it means no growth)."""
        if self.max_concurrency is None:
            return max(self.concurrency, min(256, 16 * self.concurrency))
        return max(self.concurrency, self.max_concurrency)


SETTING_NAMES: tuple[str, ...] = tuple(Settings.model_fields)


def wants_etag_check(settings: Settings, *, custom_endpoint: bool) -> bool:
    """Compare ETags with local MD5s? ``auto``: yes when botocore addresses a configured
    endpoint rather than AWS (such servers may not validate checksums themselves, as AWS
    S3 does), never under SSE-KMS (ETag != MD5)."""
    if settings.sse == "aws:kms" or settings.etag_check == "off":
        return False
    return settings.etag_check == "on" or custom_endpoint


def parse_metadata(pairs: list[str]) -> dict[str, str]:
    """Turn ``["k=v", ...]`` into a dict, rejecting entries without ``=``."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"metadata entry {pair!r} is not key=value")
        result[key.strip().lower()] = value
    return result


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
    lines = {
        str(key_node.value): key_node.start_mark.line + 1
        for key_node, _ in node.value
        if isinstance(key_node, yaml.ScalarNode)
    }
    normalised = {str(k).replace("-", "_"): v for k, v in data.items()}
    lines = {k.replace("-", "_"): v for k, v in lines.items()}
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
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
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


# The value each setting with a pattern expects, in words.
_FORMS = {
    "expected_bucket_owner": "a 12-digit AWS account id",
    "custom_timestamp": "a timestamp YYYYMMDD_HHMM",
}


def _problem(key: str, error: Any) -> str:
    """One validation error in s3stow's words (never pydantic's)."""
    kind = str(error.get("type", ""))
    context = error.get("ctx") or {}
    value = error.get("input")
    shown = repr(value) if isinstance(value, str) else str(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    if kind in ("bool_parsing", "bool_type"):
        return f"{shown} is not true or false (write true, false, yes, no, on, off, 1 or 0)"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{shown} is not a whole number"
    if kind in ("float_parsing", "float_type"):
        return f"{shown} is not a number"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(context.values()), "?")
        words = {
            "greater_than_equal": "at least",
            "greater_than": "more than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        return f"{shown} is out of range: it must be {words} {bound}"
    if kind == "literal_error":
        choices = str(context.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return f"{shown} is not one of: {choices}"
    if kind == "string_pattern_mismatch":
        return f"{shown} is not {_FORMS.get(key, 'in the expected form')}"
    if kind in ("dict_type", "model_type"):
        return f"{shown} is not a mapping of name: value"
    if kind == "list_type":
        return f"{shown} is not a list (a YAML list, or comma-separated in a variable)"
    if kind == "string_type":
        return f"{shown} is not text"
    return str(error.get("msg", "invalid")).removeprefix("Value error, ")


def _explain(exc: ValidationError, origin: Mapping[str, _Source]) -> ConfigError:
    problems = []
    for error in exc.errors():
        key = str(error["loc"][0]) if error["loc"] else "?"
        where = origin[key].describe if key in origin else "defaults"
        problems.append(f"setting {key!r} from {where}: {_problem(key, error)}")
    return ConfigError(
        "invalid configuration: " + "; ".join(problems),
        hint="fix the value named above; the command's --help lists the accepted forms, and "
        "the README's configuration table every setting",
    )
