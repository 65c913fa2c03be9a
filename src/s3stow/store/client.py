"""Building botocore sessions and S3 clients from the settings.

``make_session`` resolves the user's own credential chain (env, profile, SSO,
instance role) or, with ``auth: keyring``, access keys from the OS keyring;
``make_client`` builds the thread-safe S3 client with botocore's retry mode set
explicitly to ``standard`` (its default differs between versions), the timeouts,
pool size and checksum behaviour from the settings. Everything else botocore resolves
from the whole AWS configuration as it would for boto3: the endpoint
(``--endpoint-url``, else ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, the profile's
``endpoint_url``, else AWS's own for the region), the region, the addressing style
(``--path-style``/``--virtual-style`` when given, else the profile's
``s3.addressing_style``), the CA bundle and proxies. An endpoint botocore refuses is a
configuration error (exit 2). Every secret it sees is registered with the log
redaction filter. The session parses S3's ISO 8601 timestamps (a listing's
``LastModified``) with ``datetime.fromisoformat`` instead of botocore's dateutil
parser (about 0.2 ms each, most of the CPU of a 1,000-object listing page), to the
same instant (``s3_timestamp``); any other form is botocore's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from s3stow.config import Settings
from s3stow.errors import AuthError, ConfigError
from s3stow.logs import register_secret

log = logging.getLogger(__name__)

ENDPOINT_SOURCES = (
    "the endpoint comes from --endpoint-url (S3STOW_ENDPOINT_URL), else AWS_ENDPOINT_URL_S3, "
    "AWS_ENDPOINT_URL or endpoint_url in the AWS config or credentials file; write it as "
    "http://HOST[:PORT] or https://HOST[:PORT]"
)


def make_session(settings: Settings) -> Any:
    """The botocore session: the user's credential chain, profile and region, or with
    ``auth: keyring`` access keys from the OS keyring. It is configured as
    ``boto3.Session(profile_name=..., region_name=..., aws_access_key_id=...)`` would
    configure it (the same three settings, nothing else): boto3 itself adds only its
    resource layer and transfer manager, which s3stow does not use, and would cost a
    start-up its import (about 0.1 s of CPU)."""
    keys: dict[str, str] = {}
    if settings.auth == "keyring":
        keys = keyring_credentials(settings.keyring_service)
    import botocore.session  # here, not at import: a no-op run never needs it

    from s3stow.store.modelcache import cache_models

    session = botocore.session.get_session()
    cache_models(session)
    session.get_component("response_parser_factory").set_parser_defaults(
        timestamp_parser=s3_timestamp()
    )
    if settings.profile is not None and not keys:
        session.set_config_variable("profile", settings.profile)
    if keys:
        session.set_credentials(
            keys["aws_access_key_id"],
            keys["aws_secret_access_key"],
            keys.get("aws_session_token"),
        )
    if settings.region is not None:
        session.set_config_variable("region", settings.region)
    return session


_ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z")


def s3_timestamp() -> Callable[[Any], Any]:
    """The session's parser of response timestamps: S3's ``2026-12-02T12:33:31.132Z``
    read by ``datetime.fromisoformat`` as an aware datetime of the same instant as
    botocore's (which names the zone ``tzlocal()`` where the machine's zone is UTC,
    else ``tzutc()``), about 15 times faster; anything else (a HEAD's RFC 1123 date,
    epoch seconds) by botocore's own ``parse_timestamp``."""
    from botocore.utils import parse_timestamp, tzutc  # loaded with the session

    utc = tzutc()

    def parse(value: Any) -> Any:
        if isinstance(value, str) and _ISO_UTC.fullmatch(value):
            return datetime.fromisoformat(value[:-1]).replace(tzinfo=utc)
        return parse_timestamp(value)

    return parse


def keyring_credentials(service: str) -> dict[str, str]:
    """Access keys kept in the OS keyring under ``service`` (entries
    ``aws_access_key_id``, ``aws_secret_access_key`` and optionally
    ``aws_session_token``)."""
    try:
        import keyring
    except ModuleNotFoundError:
        raise AuthError(
            "auth: keyring needs the keyring package", hint="pip install 's3stow[keyring]'"
        ) from None
    names = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
    found = {name: keyring.get_password(service, name) for name in names}
    if not found["aws_access_key_id"] or not found["aws_secret_access_key"]:
        raise AuthError(
            f"no access key in the OS keyring under service {service!r}",
            hint=f"store them: keyring set {service} aws_access_key_id (and aws_secret_access_key)",
        )
    for value in found.values():
        register_secret(value)
    return {name: value for name, value in found.items() if value}


_WARNED: set[str] = set()


def warn_if_unverified(settings: Settings) -> None:
    """Warn (once per process) that TLS certificates are not checked."""
    if not settings.verify_ssl and "tls" not in _WARNED:
        _WARNED.add("tls")
        log.warning(
            "TLS certificate verification is OFF (--no-verify-ssl): anyone on the "
            "network path can read and alter this transfer"
        )


def make_client(
    settings: Settings,
    *,
    pool: int | None = None,
    session: Any = None,
    max_attempts: int | None = None,
) -> Any:
    """Create the botocore S3 client for ``settings``."""
    session = session or make_session(settings)
    from botocore.exceptions import BotoCoreError

    try:
        credentials = session.get_credentials()
    except BotoCoreError as exc:  # a profile that is not there, a failed credential_process
        from s3stow.store.translate import translate_configuration

        refused = translate_configuration(exc)
        if refused is None:
            raise
        raise refused from None
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        register_secret(frozen.secret_key)
        register_secret(frozen.token)
    compat = settings.checksum_compat or settings.checksum == "none"
    from botocore.config import Config
    from botocore.exceptions import InvalidConfigError

    config = Config(
        retries={"mode": "standard", "total_max_attempts": max_attempts or settings.max_attempts},
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        max_pool_connections=pool or max(settings.concurrency_ceiling + 4, 10),
        s3=_addressing(settings),
        request_checksum_calculation="when_required" if compat else "when_supported",
        response_checksum_validation="when_required" if compat else "when_supported",
        user_agent_extra="s3stow",
    )
    verify: bool | str | None = settings.ca_bundle or (None if settings.verify_ssl else False)
    warn_if_unverified(settings)
    try:
        client = session.create_client(
            "s3", endpoint_url=settings.endpoint_url, config=config, verify=verify
        )
    except (ValueError, InvalidConfigError) as exc:  # "Invalid endpoint: ...", bad CA bundle
        raise ConfigError(
            f"botocore refused the S3 configuration: {exc}", hint=ENDPOINT_SOURCES
        ) from None
    if settings.expected_bucket_owner:
        owner = settings.expected_bucket_owner

        def add_owner(params: dict[str, Any], model: Any, **_: Any) -> None:
            if "ExpectedBucketOwner" in model.input_shape.members:
                params.setdefault("ExpectedBucketOwner", owner)

        client.meta.events.register("before-parameter-build.s3", add_owner)
    for operation in ("PutObject", "UploadPart"):
        client.meta.events.register(f"before-sign.s3.{operation}", no_continue_for_small_bodies)
    for callback in list(_MADE):
        callback()
    return client


CONTINUE_ABOVE = 1024 * 1024  # bytes: a smaller body goes with its head, no 100-continue


def no_continue_for_small_bodies(request: Any, **_: Any) -> None:
    """botocore asks for ``Expect: 100-continue`` on every PUT body, so each of its
    PutObject and UploadPart requests waits one round trip for the server's
    ``100 Continue`` before sending the body. For a body below ``CONTINUE_ABOVE`` that
    saves nothing worth a round trip (a refusal costs sending it once; the fast path
    never asks): the header is dropped, as the fast path sends it. Over a long link,
    the run's first PUTs (the checksum probe, the request the fast path learns from)
    and botocore's retries each take one round trip, not two. ``Expect`` is not signed."""
    headers = request.headers
    if "Expect" not in headers:
        return
    from botocore.utils import determine_content_length

    length = determine_content_length(request.body)
    if length is not None and length < CONTINUE_ABOVE:
        del headers["Expect"]


# Called (no arguments) each time ``make_client`` has made a client: the command line
# registers the release of the garbage collector it holds during start-up
# (``cli/collector.py``), so botocore's import and the client's creation run without
# collections and are frozen with the rest of start-up. A library host registers none.
_MADE: list[Callable[[], None]] = []


def when_client_made(callback: Callable[[], None]) -> None:
    """Call ``callback`` each time a client has been made (once registered)."""
    if callback not in _MADE:
        _MADE.append(callback)


def _addressing(settings: Settings) -> dict[str, str] | None:
    """The flag's addressing style; ``None`` leaves the profile's ``s3.addressing_style``
    (botocore merges a client's ``s3`` settings over the config file's, key by key)."""
    if settings.path_style is None:
        return None
    return {"addressing_style": "path" if settings.path_style else "virtual"}
