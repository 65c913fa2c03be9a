"""``doctor``: a preflight checklist before a long job.

Each check returns a ``Check`` (OK, WARN or FAIL, what was found, and for a FAIL
the fix): where the credentials come from (never the secret), who the caller is
(STS, a warning where the endpoint has none), the endpoint, region, addressing, CA
bundle and proxy that ``upload`` will use (from the same store, so the same botocore
resolution), the clock skew against the server's ``Date`` header (S3 rejects
requests more than 15 minutes off; over 5 minutes is a warning), the bucket and its
region, its settings (informational: a setting the server does not implement shows
as ``unsupported``, one this identity may not read as ``not readable``; neither fails
the check), whether the fast path gets botocore's answers for the bucket, and each
permission a job needs, probed harmlessly (list, then put/get/delete of a probe
object under the prefix), and, on a configured endpoint, how the server behaves where
``upload`` depends on it (``store/probes.py``: does it refuse a wrong checksum, does it
keep a ``\\`` in a key), with what ``upload`` makes of the answers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from s3stow.config import Settings
from s3stow.errors import EndpointError, S3StowError
from s3stow.models import Target
from s3stow.store.resolution import compare_fast_path, resolution
from s3stow.store.s3 import S3Store
from s3stow.store.translate import (
    AUTH_HINT,
    ENDPOINT_CHECK,
    error_code,
    not_s3_answer,
    not_s3_error,
    translate,
)
from s3stow.tools.bucket import BucketAdmin

SKEW_WARN = 300.0


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, WARN, FAIL
    detail: str
    fix: str = ""


def run_checks(
    settings: Settings, target: Target | None, *, clock: Callable[[], float] = time.time
) -> list[Check]:
    """Run every check that applies; stop probing after a credentials failure."""
    checks: list[Check] = []
    store = S3Store.from_settings(settings)
    session = store.session(settings)
    try:
        credentials = session.get_credentials()
    except Exception as exc:  # a profile that is not there, a failed credential_process
        from s3stow.store.translate import translate_configuration

        refused = translate_configuration(exc)
        if refused is None:
            raise
        checks.append(Check("credentials", "FAIL", refused.message, refused.hint or ""))
        return checks
    if credentials is None:
        checks.append(
            Check(
                "credentials",
                "FAIL",
                "no credentials found",
                "configure them: aws configure, AWS_PROFILE, env vars or SSO",
            )
        )
        return checks
    frozen = credentials.get_frozen_credentials()
    masked = f"{frozen.access_key[:4]}...{frozen.access_key[-4:]}" if frozen.access_key else "?"
    source = getattr(credentials, "method", "unknown")
    profile = settings.profile or "(default chain)"
    checks.append(Check("credentials", "OK", f"{source}, profile {profile}, key {masked}"))
    try:
        client = store.client
        found = resolution(store)
    except S3StowError as exc:  # an endpoint botocore refuses
        checks.append(Check("endpoint", "FAIL", exc.message, exc.hint or ENDPOINT_CHECK))
        return checks
    checks.append(
        Check(
            "endpoint",
            "OK",
            f"{found['endpoint']}, region {found['region']}, addressing {found['addressing']}, "
            f"CA bundle {found['ca_bundle']}, proxy {found['proxy']}",
        )
    )
    checks.append(_identity(settings, session))
    if target is None:
        return checks
    checks.append(_bucket(client, target, clock))
    if checks[-1].status == "FAIL":
        return checks
    checks.append(_settings(client, target))
    same, detail = compare_fast_path(store, target.bucket, target.prefix)
    checks.append(Check("fast path", "OK" if same or not settings.fast_path else "WARN", detail))
    checks.extend(_permissions(client, target))
    if store.custom_endpoint():
        checks.extend(_behaviour(settings, store, target))
    return checks


def _behaviour(settings: Settings, store: S3Store, target: Target) -> list[Check]:
    """The server probes ``upload`` sends (``transfer/probes.py``), sent now."""
    from s3stow.store import probes

    checks = []
    if settings.checksum != "none":
        found = probes.probe_checksum_validation(
            store, target.bucket, near=target.prefix, algorithm=settings.checksum
        )
        if found.result == probes.VALIDATES:
            effect = "etag_check auto: no MD5, no ETag comparison (the server checks)"
        elif found.result == probes.STORES:
            effect = "etag_check auto: ETags compared with local MD5s (the server does not check)"
        else:
            effect = "no answer: etag_check auto keeps the ETag check"
        if settings.etag_check != "auto":
            effect = f"etag_check {settings.etag_check} is set: the answer is not used"
        status = "OK" if found.result is not None else "WARN"
        checks.append(Check("checksum validation", status, f"{found.detail}; {effect}"))
    found = probes.probe_backslash(store, target.bucket, near=target.prefix)
    if found.result == probes.FOLDS:
        detail = f"{found.detail}: keys with '\\' are uploaded with '/' instead"
    elif found.result == probes.KEEPS:
        detail = found.detail
    else:
        detail = f"{found.detail}; keys with '\\' are uploaded as they are"
    checks.append(Check("backslash in keys", "OK" if found.result else "WARN", detail))
    return checks


def _identity(settings: Settings, session: Any) -> Check:
    try:
        sts = session.create_client("sts", endpoint_url=settings.endpoint_url)
        who = sts.get_caller_identity()
    except ResponseParserError:  # a web page: never dumped
        return Check("caller identity", "WARN", "STS not available here (not an STS answer)")
    except Exception as exc:  # noqa: BLE001 - any other failure: a warning
        return Check("caller identity", "WARN", f"STS not available here ({type(exc).__name__})")
    return Check("caller identity", "OK", f"{who.get('Arn')} (account {who.get('Account')})")


def _bucket(client: Any, target: Target, clock: Callable[[], float]) -> Check:
    try:
        response = client.head_bucket(Bucket=target.bucket)
    except ClientError as exc:
        problem = translate(exc, bucket=target.bucket, endpoint=client.meta.endpoint_url)
        if isinstance(problem, EndpointError):
            return Check("bucket", "FAIL", problem.message, ENDPOINT_CHECK)
        code = error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            return Check(
                "bucket",
                "FAIL",
                f"{target.bucket} does not exist",
                f"create it: s3stow bucket setup {target.bucket}",
            )
        return Check("bucket", "FAIL", f"{target.bucket}: {code}", AUTH_HINT)
    except BotoCoreError as exc:
        return Check("bucket", "FAIL", f"cannot reach the endpoint: {exc}", ENDPOINT_CHECK)
    not_s3 = not_s3_answer(response, endpoint=client.meta.endpoint_url)
    if not_s3 is not None:
        return Check("bucket", "FAIL", not_s3.message, ENDPOINT_CHECK)
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    region = headers.get("x-amz-bucket-region")
    detail = (
        f"{target.bucket} reachable, region {region}"
        if region
        else f"{target.bucket} reachable (the server names no region; "
        f"requests are signed for {client.meta.region_name})"
    )
    date = headers.get("date")
    if date:
        skew = clock() - parsedate_to_datetime(date).timestamp()
        if abs(skew) > SKEW_WARN:
            return Check(
                "bucket",
                "WARN",
                f"{detail}; clock is {skew:+.0f} s off the server",
                "fix the system clock (NTP): S3 rejects requests over 15 min off",
            )
        detail += f"; clock skew {skew:+.1f} s"
    return Check("bucket", "OK", detail)


def _settings(client: Any, target: Target) -> Check:
    """The bucket settings a job meets, as ``bucket check`` reads them."""
    admin = BucketAdmin(client, target.bucket)
    shown = []
    for setting in ("versioning", "encryption", "public access block", "lifecycle rules"):
        try:
            value = admin.read(setting)
        except S3StowError as exc:  # a job needs none of these permissions
            value = f"not readable ({exc.message.split(' on ', 1)[0]})"
        shown.append(f"{setting} {value}")
    return Check("bucket settings", "OK", "; ".join(shown))


def _permissions(client: Any, target: Target) -> list[Check]:
    checks = []
    try:
        client.list_objects_v2(Bucket=target.bucket, Prefix=target.prefix, MaxKeys=1)
        checks.append(Check("s3:ListBucket", "OK", f"list {target.url}"))
    except ResponseParserError:
        problem = not_s3_error(client.meta.endpoint_url, target.url)
        checks.append(Check("s3:ListBucket", "FAIL", problem.message, ENDPOINT_CHECK))
    except ClientError as exc:
        checks.append(
            Check(
                "s3:ListBucket",
                "FAIL",
                error_code(exc),
                "grant s3:ListBucket (resume and verify list the prefix)",
            )
        )
    try:
        BucketAdmin(client, target.bucket).write_probe(target.prefix)
        checks.append(
            Check(
                "s3:PutObject/GetObject/DeleteObject",
                "OK",
                f"probe object written, read back and deleted under {target.url}",
            )
        )
    except S3StowError as exc:
        checks.append(
            Check("s3:PutObject/GetObject/DeleteObject", "FAIL", exc.message, exc.hint or AUTH_HINT)
        )
    return checks
