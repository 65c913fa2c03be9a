"""The settings of a run: ``Settings``, one frozen value holding every setting, valid
by construction.

Each field carries its ``Rule`` (``settingrules``: its type, bounds and the checks
beyond them); making a ``Settings`` converts and checks every value and raises
``InvalidSettings`` (exit 2) naming each one that is not a setting's. Where the values
come from (defaults, YAML, environment, flags) and how errors name their origin is
``config``'s.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from s3stow.errors import ConfigError
from s3stow.settingrules import Problem, Rule
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

MIN_PART = 5 * MiB
MAX_PART = 5 * GiB

ChecksumName = Literal["crc64nvme", "crc32c", "crc32", "sha256", "none"]


# What an HTTP header allows (RFC 9110 token; visible ASCII and spaces), which is what S3
# takes in x-amz-meta-* and Content-Type: anything else fails every file at send time.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
_HEADER_TEXT = re.compile(r"[ -~]*\Z")
# The metadata s3stow writes itself (transfer/context.py) and proves with (store/proof.py).
OWN_METADATA = frozenset({"uploaded-at", "source", "mtime", "sha256"})


def _empty_list() -> list[str]:
    return []


def _empty_dict() -> dict[str, str]:
    return {}


def _default_folder_types() -> dict[str, list[str]]:
    return {k: list(v) for k, v in DEFAULT_FOLDER_TYPES.items()}


# ---- the checks of single settings beyond their type (``Rule.before`` and ``after``)
def _endpoint(value: str | None) -> str | None:
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


def _ledger(value: str | None) -> str | None:
    if value is not None and not value.strip():  # an unset shell variable, say
        raise ValueError(
            "the ledger path is empty: give a SQLite file or a postgresql:// URL, or "
            "leave the setting out for the default (ledger.db in the user state "
            "directory)"
        )
    return value


def _concurrency(value: Any) -> Any:
    return parse_concurrency(value) if isinstance(value, str) else value


def _list(value: Any) -> Any:
    if isinstance(value, str):  # from an env var: comma-separated
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


def _size(value: Any) -> Any:
    return parse_size(value) if isinstance(value, str) else value


def _part_limits(value: int) -> int:
    if not MIN_PART <= value <= MAX_PART:
        raise ValueError("part size must be between 5 MiB and 5 GiB (S3's limits)")
    return value


def _threshold_limits(value: int) -> int:
    if not MIN_PART <= value <= MAX_PART:
        raise ValueError("multipart threshold must be between 5 MiB and 5 GiB")
    return value


def _point_in_time(value: str) -> str:
    parse_point_in_time(value, now=0.0)  # the form is checked here, where it came from is known
    return value


def _metadata_text(value: Any) -> Any:
    if isinstance(value, str):  # from an env var: "k=v,k2=v2"
        return parse_metadata(value.split(",") if value else [])
    return value


def _metadata_headers(value: dict[str, str]) -> dict[str, str]:
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


def _content_type_header(value: str) -> str:
    if not _HEADER_TEXT.match(value):
        raise ValueError(
            f"{value!r} cannot be a Content-Type: printable ASCII only, such as "
            "text/plain; charset=utf-8"
        )
    return value


_TEXT = Rule("str")
_MAYBE_TEXT = Rule("str", optional=True)
_FLAG = Rule("bool")
_TEXTS = Rule("list", before=_list)
_SIZE = Rule("int", optional=True, ge=0, before=_size)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Every setting s3stow reads, with its default. See the README table.

    Made with keywords only; every value is converted and checked (``settingrules``)
    when the settings are made, so a ``Settings`` is always valid: ``InvalidSettings``
    (a ``ConfigError``, exit 2) names each value that is not. ``replace`` makes a
    changed copy, checked again; ``dump`` the values as a mapping."""

    # Connection
    auth: Literal["chain", "keyring"] = field(
        default="chain", metadata={"rule": Rule("choice", choices=("chain", "keyring"))}
    )
    keyring_service: str = field(default="s3stow", metadata={"rule": _TEXT})
    # unset: botocore's (AWS_ENDPOINT_URL*, AWS config, AWS)
    endpoint_url: str | None = field(
        default=None, metadata={"rule": Rule("str", optional=True, after=_endpoint)}
    )
    profile: str | None = field(default=None, metadata={"rule": _MAYBE_TEXT})
    region: str | None = field(default=None, metadata={"rule": _MAYBE_TEXT})
    # unset: the AWS profile's s3.addressing_style (auto)
    path_style: bool | None = field(default=None, metadata={"rule": Rule("bool", optional=True)})
    ca_bundle: str | None = field(default=None, metadata={"rule": _MAYBE_TEXT})
    verify_ssl: bool = field(default=True, metadata={"rule": _FLAG})
    connect_timeout: float = field(default=20.0, metadata={"rule": Rule("float", gt=0)})
    read_timeout: float = field(default=120.0, metadata={"rule": Rule("float", gt=0)})
    checksum_compat: bool = field(default=False, metadata={"rule": _FLAG})
    etag_check: Literal["auto", "on", "off"] = field(
        default="auto", metadata={"rule": Rule("choice", choices=("auto", "on", "off"))}
    )
    fast_path: bool = field(default=True, metadata={"rule": _FLAG})
    expected_bucket_owner: str | None = field(
        default=None,
        metadata={
            "rule": Rule("str", optional=True, pattern=r"\d{12}", form="a 12-digit AWS account id")
        },
    )
    # Transfer
    concurrency: int = field(
        default=16, metadata={"rule": Rule("int", ge=1, le=1024, before=_concurrency)}
    )
    # growth past concurrency while files/s rises (unset: 16 x concurrency, at most 256)
    max_concurrency: int | None = field(
        default=None,
        metadata={"rule": Rule("int", optional=True, ge=1, le=4096, before=_concurrency)},
    )
    part_size: int | None = field(
        default=None,
        metadata={"rule": Rule("int", optional=True, before=_size, after=_part_limits)},
    )
    multipart_threshold: int = field(
        default=16 * MiB, metadata={"rule": Rule("int", before=_size, after=_threshold_limits)}
    )
    memory_limit: int = field(
        default=256 * MiB, metadata={"rule": Rule("int", ge=16 * MiB, before=_size)}
    )
    checksum: ChecksumName = field(
        default="crc64nvme",
        metadata={
            "rule": Rule("choice", choices=("crc64nvme", "crc32c", "crc32", "sha256", "none"))
        },
    )
    sha256_metadata: bool = field(default=False, metadata={"rule": _FLAG})
    content_type: str | None = field(
        default=None, metadata={"rule": Rule("str", optional=True, after=_content_type_header)}
    )
    metadata: dict[str, str] = field(
        default_factory=_empty_dict,
        metadata={"rule": Rule("dict", before=_metadata_text, after=_metadata_headers)},
    )
    sse: Literal["AES256", "aws:kms"] | None = field(
        default=None,
        metadata={"rule": Rule("choice", optional=True, choices=("AES256", "aws:kms"))},
    )
    sse_kms_key_id: str | None = field(default=None, metadata={"rule": _MAYBE_TEXT})
    storage_class: str | None = field(default=None, metadata={"rule": _MAYBE_TEXT})
    follow_symlinks: bool = field(default=False, metadata={"rule": _FLAG})
    # Keys and selection
    layout: Literal["mirror", "date-folders", "project"] = field(
        default="mirror",
        metadata={"rule": Rule("choice", choices=("mirror", "date-folders", "project"))},
    )
    key_template: str | None = field(default=None, metadata={"rule": _MAYBE_TEXT})
    strip_prefix: str | None = field(default=None, metadata={"rule": _MAYBE_TEXT})
    project_key: str | None = field(default=None, metadata={"rule": _MAYBE_TEXT})
    timestamp: bool = field(default=False, metadata={"rule": _FLAG})
    custom_timestamp: str | None = field(
        default=None,
        metadata={
            "rule": Rule(
                "str", optional=True, pattern=r"\d{8}_\d{4}", form="a timestamp YYYYMMDD_HHMM"
            )
        },
    )
    include: list[str] = field(default_factory=_empty_list, metadata={"rule": _TEXTS})
    exclude: list[str] = field(default_factory=_empty_list, metadata={"rule": _TEXTS})
    min_size: int | None = field(default=None, metadata={"rule": _SIZE})
    max_size: int | None = field(default=None, metadata={"rule": _SIZE})
    newer_than: str | None = field(
        default=None, metadata={"rule": Rule("str", optional=True, after=_point_in_time)}
    )
    older_than: str | None = field(
        default=None, metadata={"rule": Rule("str", optional=True, after=_point_in_time)}
    )
    folder_types: dict[str, list[str]] = field(
        default_factory=_default_folder_types, metadata={"rule": Rule("dict_list")}
    )
    include_types: list[str] = field(default_factory=_empty_list, metadata={"rule": _TEXTS})
    exclude_types: list[str] = field(default_factory=_empty_list, metadata={"rule": _TEXTS})
    no_clobber: bool = field(default=False, metadata={"rule": _FLAG})
    force: bool = field(default=False, metadata={"rule": _FLAG})
    dry_run: bool = field(default=False, metadata={"rule": _FLAG})
    limit: int | None = field(default=None, metadata={"rule": Rule("int", optional=True, ge=0)})
    # Retries
    max_attempts: int = field(default=5, metadata={"rule": Rule("int", ge=1, le=20)})
    file_retries: int = field(default=2, metadata={"rule": Rule("int", ge=0, le=20)})
    retry_base_delay: float = field(default=1.0, metadata={"rule": Rule("float", ge=0)})
    retry_max_delay: float = field(default=20.0, metadata={"rule": Rule("float", gt=0)})
    # Records and reports
    ledger: str | None = field(
        default=None, metadata={"rule": Rule("str", optional=True, after=_ledger)}
    )
    status_json: Path | None = field(default=None, metadata={"rule": Rule("path", optional=True)})
    status_interval: float = field(default=5.0, metadata={"rule": Rule("float", gt=0)})
    failures_file: Path | None = field(default=None, metadata={"rule": Rule("path", optional=True)})
    progress_interval: float = field(default=10.0, metadata={"rule": Rule("float", gt=0)})
    # Prometheus /metrics of upload, watch, job work and restore (None: not served)
    metrics_port: int | None = field(
        default=None, metadata={"rule": Rule("int", optional=True, ge=0, le=65535)}
    )
    metrics_host: str = field(default="127.0.0.1", metadata={"rule": _TEXT})

    def __post_init__(self) -> None:
        problems: list[tuple[str, str]] = []
        for name, rule in _RULES:
            try:
                object.__setattr__(self, name, rule.apply(getattr(self, name)))
            except Problem as exc:
                problems.append((name, str(exc)))
        if problems:
            raise InvalidSettings(problems)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes``, checked as a new ``Settings`` is."""
        return dataclasses.replace(self, **changes)

    def dump(self, *, json: bool = False, exclude: Collection[str] = ()) -> dict[str, Any]:
        """Every setting by name (copies of lists and mappings); ``json``: paths as text,
        so the mapping can be stored as JSON."""
        values: dict[str, Any] = {}
        for name, _ in _RULES:
            if name in exclude:
                continue
            value = getattr(self, name)
            if isinstance(value, list):
                value = list(value)
            elif isinstance(value, dict):
                value = {k: list(v) if isinstance(v, list) else v for k, v in value.items()}
            elif json and isinstance(value, Path):
                value = str(value)
            values[name] = value
        return values

    @property
    def concurrency_ceiling(self) -> int:
        """How far the request limit may grow past ``concurrency`` while files/s rises
        (``max_concurrency``; below ``concurrency`` it means no growth)."""
        if self.max_concurrency is None:
            return max(self.concurrency, min(256, 16 * self.concurrency))
        return max(self.concurrency, self.max_concurrency)


_RULES: tuple[tuple[str, Rule], ...] = tuple(
    (f.name, f.metadata["rule"]) for f in dataclasses.fields(Settings)
)


class InvalidSettings(ConfigError):
    """Settings made with values that are not theirs: ``problems`` names each (setting,
    reason); ``load_settings`` adds where each value came from."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__(
            "invalid configuration: "
            + "; ".join(f"setting {name!r}: {problem}" for name, problem in problems),
            hint=FIX_HINT,
        )


SETTING_NAMES: tuple[str, ...] = tuple(name for name, _ in _RULES)


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


FIX_HINT = (
    "fix the value named above; the command's --help lists the accepted forms, and "
    "the README's configuration table every setting"
)
