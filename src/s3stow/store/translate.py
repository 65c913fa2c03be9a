"""Translation of botocore exceptions into the s3stow error tree.

Classifies each failure as fatal (credentials, permissions, missing bucket, an
endpoint that does not answer like S3), transient (5xx, throttling, timeouts,
resets: worth retrying) or permanent for that one item, and adds a hint that names
what to check. The first request of a run (``translate_preflight``) also makes an
endpoint that cannot be reached fatal: a closed port or a wrong host is a
configuration mistake, not a blip to retry file by file.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConfigNotFound,
    ConfigParseError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    InvalidConfigError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    ReadTimeoutError,
    ResponseStreamingError,
    SSLError,
    SSOError,
    TokenRetrievalError,
    UnknownCredentialError,
)

from s3stow.errors import (
    AuthError,
    BucketMissingError,
    ConfigError,
    EndpointError,
    S3StowError,
    TransferError,
)

AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "InvalidToken",
        "TokenRefreshRequired",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidSecurity",
        "RequestTimeTooSkewed",
        "403",
        "Forbidden",
    }
)
THROTTLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "503",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "ServiceUnavailable",
    }
)
TRANSIENT_CODES = THROTTLE_CODES | frozenset(
    {
        "InternalError",
        "RequestTimeout",
        "500",
        "502",
        "504",
        "OperationAborted",
        "PriorRequestNotComplete",
        "IncompleteBody",
        "BadGateway",
        "GatewayTimeout",
        "BadDigest",  # the bytes S3 got do not match their Content-MD5/checksum: resend
    }
)
_COMPAT_CODES = ("InvalidArgument", "NotImplemented", "InvalidRequest", "XAmzContentSHA256Mismatch")
_COMPAT_WORDS = ("checksum", "aws-chunked", "trailer", "x-amz-sdk", "contentsha256", "crc")

AUTH_HINT = (
    "check the credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID, ~/.aws/credentials, SSO login) and "
    "that the IAM policy allows s3:PutObject, s3:GetObject and s3:ListBucket on this bucket; "
    "`s3stow doctor` checks each permission"
)
PROFILE_HINT = (
    "check --profile (or AWS_PROFILE) against the profiles of the AWS config and "
    "credentials files (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE; `aws configure "
    "list-profiles` lists them)"
)
ENDPOINT_CHECK = (
    "check --endpoint-url (or AWS_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, endpoint_url in the AWS "
    "config), the network, proxies and the CA bundle"
)
ENDPOINT_HINT = ENDPOINT_CHECK + "; `s3stow doctor` shows the endpoint, region and CA bundle in use"
COMPAT_HINT = (
    "this server seems not to support the newer S3 checksum headers; set checksum_compat: true "
    "(S3STOW_CHECKSUM_COMPAT=1) or use --checksum none"
)


def error_code(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "")
    if not code:
        code = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "Unknown"))
    return code


def _not_s3(headers: Mapping[str, Any]) -> bool:
    """An answer no S3 server gives: an HTML page without any ``x-amz`` header (a web
    server, a captive portal or a proxy's error page; S3 servers send a request id as
    ``x-amz-request-id``, moto as ``x-amzn-requestid``)."""
    content_type = str(headers.get("content-type", "")).lower()
    return "html" in content_type and not any(str(h).lower().startswith("x-amz") for h in headers)


def not_s3_error(endpoint: str | None, where: str) -> EndpointError:
    at = f"the endpoint {endpoint}" if endpoint else "the endpoint"
    return EndpointError(
        f"{at} does not answer like S3 (a web page, not S3's XML, for {where})",
        hint=ENDPOINT_HINT,
    )


def not_s3_answer(response: Mapping[str, Any], *, endpoint: str | None) -> EndpointError | None:
    """The error for a successful botocore response that did not come from S3."""
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return not_s3_error(endpoint, "HeadBucket") if _not_s3(headers) else None


def translate_preflight(exc: Exception, *, bucket: str, endpoint: str | None) -> S3StowError:
    """``translate`` for a run's first request: an unreachable endpoint is fatal."""
    if isinstance(
        exc, EndpointConnectionError | ConnectTimeoutError | SSLError | ProxyConnectionError
    ):
        at = endpoint or "the S3 endpoint"
        return EndpointError(f"cannot reach {at}: {exc}", hint=ENDPOINT_HINT)
    return translate(exc, bucket=bucket, endpoint=endpoint)


def translate_configuration(exc: Exception) -> S3StowError | None:
    """The error for what botocore raised reading the AWS configuration and credentials,
    else ``None``. The configuration itself (a profile that is not there, a file that
    does not parse) is a configuration error, exit 2; credentials that could not be had
    (an expired SSO session, a credential_process that failed) stop the run, exit 3.
    Both were a transient failure of the first file (exit 1), or "unexpected" where the
    client was made (``doctor``, ``bucket``)."""
    if isinstance(exc, ProfileNotFound | ConfigNotFound | ConfigParseError | InvalidConfigError):
        return ConfigError(f"the AWS configuration cannot be used: {exc}", hint=PROFILE_HINT)
    if isinstance(
        exc, CredentialRetrievalError | SSOError | TokenRetrievalError | UnknownCredentialError
    ):
        return AuthError(f"no usable AWS credentials were found ({exc})", hint=AUTH_HINT)
    return None


def unreachable(exc: Exception) -> bool:
    """Whether ``exc`` means no answer came from the endpoint: a connection refused
    (botocore's ``EndpointConnectionError``, also a name that does not resolve), reset
    or closed before the answer (``ConnectionClosedError``), a connect that timed out,
    a proxy that could not connect. A read timeout (connected, the answer slow), a TLS
    failure and any answer (5xx, 429) are not: a server is there. Feeds the run's
    endpoint breaker (``transfer/breaker.py``) through ``TransferError.unreachable``."""
    return isinstance(
        exc,
        EndpointConnectionError
        | ConnectTimeoutError
        | ConnectionClosedError
        | ProxyConnectionError
        | ConnectionRefusedError
        | ConnectionResetError
        | ConnectionAbortedError
        | socket.gaierror,
    )


def translate(
    exc: Exception, *, bucket: str, key: str | None = None, endpoint: str | None = None
) -> S3StowError:
    """Return the s3stow error for a botocore/OS exception, keeping it as the cause."""
    where = f"s3://{bucket}/{key}" if key else f"s3://{bucket}"
    if isinstance(exc, S3StowError):
        return exc
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return AuthError(f"no usable AWS credentials were found ({exc})", hint=AUTH_HINT)
    configuration = translate_configuration(exc)
    if configuration is not None:
        return configuration
    # botocore.parsers costs ~40 ms to import: only a run that made a client needs it
    from botocore.parsers import ResponseParserError

    if isinstance(exc, ResponseParserError):  # its message holds the page: never shown
        return not_s3_error(endpoint, where)
    if isinstance(exc, ClientError):
        meta = exc.response.get("ResponseMetadata", {})
        if _not_s3(meta.get("HTTPHeaders", {})):
            status = int(meta.get("HTTPStatusCode") or 0)
            if status >= 500 or status == 429:  # a proxy's or a failing server's error page
                return TransferError(
                    f"HTTP {status} on {where}: an error page, not S3's answer",
                    code=str(status),
                    transient=True,
                )
            return not_s3_error(endpoint, where)
        code = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message") or code)
        if code in ("NoSuchBucket",) or (code == "404" and key is None):
            return BucketMissingError(
                f"bucket {bucket!r} does not exist",
                hint=f"create it with `s3stow bucket setup {bucket}` or check the name/region",
            )
        if code in AUTH_CODES:
            return AuthError(f"{code} on {where}: {message}", hint=AUTH_HINT)
        if code in TRANSIENT_CODES:
            return TransferError(
                f"{code} on {where}: {message}",
                code=code,
                transient=True,
                throttled=code in THROTTLE_CODES,
            )
        hint = COMPAT_HINT if any(w in message.lower() for w in _COMPAT_WORDS) else None
        if code in (
            "InvalidArgument",
            "NotImplemented",
            "InvalidRequest",
            "XAmzContentSHA256Mismatch",
        ):
            hint = hint or COMPAT_HINT
        return TransferError(f"{code} on {where}: {message}", code=code, hint=hint)
    if isinstance(
        exc,
        EndpointConnectionError
        | ConnectionClosedError
        | ConnectTimeoutError
        | ReadTimeoutError
        | ResponseStreamingError,
    ):
        return TransferError(
            f"{type(exc).__name__} on {where}: {exc}",
            code=type(exc).__name__,
            transient=True,
            unreachable=unreachable(exc),
        )
    if isinstance(exc, BotoCoreError):
        return TransferError(
            f"{type(exc).__name__} on {where}: {exc}",
            code=type(exc).__name__,
            transient=True,
            unreachable=unreachable(exc),
        )
    if isinstance(exc, OSError):
        return TransferError(
            f"{type(exc).__name__} on {where}: {exc}",
            code=type(exc).__name__,
            transient=True,
            unreachable=unreachable(exc),
        )
    return TransferError(f"{type(exc).__name__} on {where}: {exc}", code=type(exc).__name__)
