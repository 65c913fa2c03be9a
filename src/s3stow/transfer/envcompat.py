"""Settings from the environment of the seed stream aggregator's upload component.

``BUCKET_NAME`` (required), ``PREFIX`` (default ``xml-events/``),
``USE_DATE_FOLDERS`` (true -> the ``date-folders`` layout), ``MAX_RETRIES``
(file-level retries), ``RETRY_BASE_DELAY`` (seconds) and ``AWS_REGION`` are
accepted next to every ``S3STOW_*`` variable, which wins.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from s3stow.config import Settings, load_settings
from s3stow.errors import ConfigError
from s3stow.models import Target
from s3stow.plan.keys import normalise_prefix, validate_bucket

_TRUE = {"1", "true", "yes", "on"}


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
    if env.get("USE_DATE_FOLDERS", "").strip().lower() in _TRUE and "S3STOW_LAYOUT" not in env:
        overlay["S3STOW_LAYOUT"] = "date-folders"
    for name, ours in seeds.items():
        if name in env and ours not in env:
            overlay[ours] = env[name]
    settings = load_settings(env=overlay)
    return settings, Target(validate_bucket(bucket), normalise_prefix(prefix))
