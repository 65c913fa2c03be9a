"""Settings from the environment of the seed stream aggregator's upload component.

``BUCKET_NAME`` (required), ``PREFIX`` (default ``xml-events/``),
``USE_DATE_FOLDERS`` (true -> the ``date-folders`` layout), ``MAX_RETRIES``
(file-level retries), ``RETRY_BASE_DELAY`` (seconds) and ``AWS_REGION`` are
accepted next to every ``S3STOW_*`` variable, which wins. A wrong value is refused
by the name of the variable that was set (``USE_DATE_FOLDERS=maybe`` too).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from s3stow.config import Settings, load_settings
from s3stow.errors import ConfigError
from s3stow.models import Target
from s3stow.plan.keys import normalise_prefix, validate_bucket

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"", "0", "false", "no", "off"}


def settings_and_target_from_env(
    env: Mapping[str, str] | None = None,
) -> tuple[Settings, Target]:
    env = os.environ if env is None else env
    bucket = env.get("S3STOW_BUCKET") or env.get("BUCKET_NAME")
    if not bucket:
        raise ConfigError(
            "BUCKET_NAME environment variable is required",
            hint="export BUCKET_NAME=my-bucket (or S3STOW_BUCKET)",
        )
    prefix = env.get("S3STOW_PREFIX", env.get("PREFIX", "xml-events/"))
    seeds = {  # the aggregator's variable -> ours (which wins when both are set)
        "MAX_RETRIES": "S3STOW_FILE_RETRIES",
        "RETRY_BASE_DELAY": "S3STOW_RETRY_BASE_DELAY",
        "AWS_REGION": "S3STOW_REGION",
    }
    overlay = {k: v for k, v in env.items() if k.startswith("S3STOW_")}
    date_folders = env.get("USE_DATE_FOLDERS", "").strip().lower()
    if date_folders not in _TRUE | _FALSE:
        raise ConfigError(
            f"environment variable USE_DATE_FOLDERS: {env['USE_DATE_FOLDERS']!r} is not true"
            " or false",
            hint="write true, false, yes, no, on, off, 1 or 0",
        )
    if date_folders in _TRUE and "S3STOW_LAYOUT" not in env:
        overlay["S3STOW_LAYOUT"] = "date-folders"
    taken: dict[str, str] = {}  # ours -> the aggregator's name it came from
    for name, ours in seeds.items():
        if name in env and ours not in env:
            overlay[ours] = env[name]
            taken[ours] = name
    try:
        settings = load_settings(env=overlay)
    except ConfigError as exc:  # name the variable that was set, not ours it fed
        message = exc.message
        for ours, name in taken.items():
            message = message.replace(
                f"environment variable {ours}:", f"environment variable {name}:"
            )
        raise ConfigError(message, hint=exc.hint) from None
    named = f"environment variable PREFIX={prefix!r}"
    return settings, Target(
        validate_bucket(bucket), normalise_prefix(prefix, named=named, write="PREFIX={}")
    )
