"""Logging set-up and the secret-redaction filter.

botocore's DEBUG logs print the session token, the Authorization header and
SSE-C keys; database URLs carry passwords. ``RedactingFilter`` scrubs those from
every record before any handler formats it, and ``configure_logging`` installs
it on the handlers s3stow owns, so even ``--debug`` output is safe to share.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TextIO

REDACTED = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header-shaped secrets, in dict reprs ('Name': b'value') or raw "Name: value" form.
    (
        re.compile(
            r"(?i)((?:authorization|x-amz-security-token|x-amz-server-side-encryption-customer-key"
            r"(?:-md5)?|x-amz-copy-source-server-side-encryption-customer-key(?:-md5)?)"
            r"['\"]?\s*[:=]\s*b?['\"]?)([^'\"\s,}]+(?:\s+[^'\"\s,}]+)*)"
        ),
        r"\1" + REDACTED,
    ),
    # The whole Authorization header value, up to its closing quote or line end.
    (re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*b?['\"]?)[^'\"\n]+"), r"\1" + REDACTED),
    (re.compile(r"(?i)(Signature=)[0-9a-zA-Z]+"), r"\1" + REDACTED),
    # Presigned-URL and query-string credentials.
    (
        re.compile(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s'\"]+"),
        r"\1" + REDACTED,
    ),
    # Keyword arguments and dict entries carrying secrets.
    (
        re.compile(
            r"(?i)(['\"]?(?:aws_secret_access_key|aws_session_token|secret_access_key|"
            r"session_token|SSECustomerKey|password|token)['\"]?\s*[:=]\s*['\"]?)"
            r"([^'\"\s,})]+)"
        ),
        r"\1" + REDACTED,
    ),
    # Passwords in URLs: scheme://user:password@host
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]+:)([^@\s/]+)(@)"), r"\1" + REDACTED + r"\3"),
)

_registered: list[str] = []


def register_secret(value: str | None) -> None:
    """Remember a literal secret (e.g. an access key) to scrub wherever it appears."""
    if value and len(value) >= 4 and value not in _registered:
        _registered.append(value)


def redact(text: str) -> str:
    """Return ``text`` with every known secret shape replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in _registered:
        text = text.replace(secret, REDACTED)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that formats the record once and scrubs secrets from it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = redact(message)
        record.args = None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class _Stderr:
    """``sys.stderr`` as it is at each write, so a live progress display that redirects
    stderr prints log lines above its frame instead of through it."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(
    *, verbose: int = 0, debug: bool = False, quiet: bool = False, stream: TextIO | None = None
) -> None:
    """Set up s3stow's log handler on stderr with redaction.

    ``--debug`` also opens botocore/urllib3 logs (still redacted); otherwise
    they stay at WARNING.
    """
    level = logging.WARNING
    if debug or verbose >= 2:
        level = logging.DEBUG
    elif verbose == 1:
        level = logging.INFO
    elif quiet:
        level = logging.ERROR
    handler = logging.StreamHandler(stream or _Stderr())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_s3stow", False):
            root.removeHandler(old)
    handler._s3stow = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)
