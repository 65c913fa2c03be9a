"""Logging set-up, the secret-redaction filter and warnings said once per kind.

botocore's DEBUG logs print the session token, the Authorization header and
SSE-C keys; database URLs carry passwords. ``RedactingFilter`` scrubs those from
every record before any handler formats it, and ``configure_logging`` installs
it on the handlers s3stow owns, so even ``--debug`` output is safe to share.

A warning that can concern every file of a run (``warn_each``: a file name without
a timestamp, a file that could not be deleted after archiving) is shown once per
kind: the first one as it happens, then ``flush_warnings`` says how many there were
in all, with a few examples; ``-v`` lists every one as it happens instead.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from pathlib import PurePath
from typing import TextIO
from urllib.parse import unquote

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
    # Passwords in URLs: scheme://user:password@host (the user may be empty)
    (re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@\s/]+)(@)"), r"\1" + REDACTED + r"\3"),
)

# A database URL's password as SQLAlchemy reads it: everything between the user's ':' and
# the next '@', so also a '/', '+' or space typed unencoded (a base64 password), which
# the pattern above cannot tell from a host, port and path.
_URL_PASSWORD = re.compile(r"^[\w+.-]+://[^:/]*:([^@]*)@")

_registered: list[str] = []

# C0 controls, DEL and C1 controls: each shown as Python writes it in a string literal
_CONTROLS = {c: repr(chr(c))[1:-1] for c in (*range(0x20), *range(0x7F, 0xA0))}


def for_terminal(text: str) -> str:
    """``text`` with every control character escaped (``\\n``, ``\\x1b``), for output
    read by people: a file name cannot move the cursor, recolour or split a line."""
    return text.translate(_CONTROLS)


def _escaped(arg: object) -> object:
    """A log argument that is text or a path, its control characters escaped (a file
    named ``a\\nERROR ...`` forged a log line); anything else as it is."""
    if isinstance(arg, str | PurePath):
        text = str(arg)
        escaped = for_terminal(text)
        return arg if escaped == text else escaped
    return arg


def register_secret(value: str | None) -> None:
    """Remember a literal secret (e.g. an access key) to scrub wherever it appears."""
    if value and len(value) >= 4 and value not in _registered:
        _registered.append(value)


def register_url_password(url: str) -> None:
    """Remember the password of a database URL (as typed and percent-decoded) as a
    secret, whatever characters it holds."""
    found = _URL_PASSWORD.match(url)
    if found:
        register_secret(found.group(1))
        register_secret(unquote(found.group(1)))


def redact(text: str) -> str:
    """Return ``text`` with every known secret shape replaced by ``***``."""
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    for secret in _registered:
        text = text.replace(secret, REDACTED)
    return text


class _Kinds(logging.Filter):
    """Lets the first warning of each kind through, counts the others (see module)."""

    def __init__(self) -> None:
        super().__init__()
        self.each = False  # -v: every warning as it happens
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, list[str], str]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = getattr(record, "s3stow_kind", None)
        if kind is None or self.each:
            return True
        with self._lock:
            many = str(vars(record)["s3stow_many"])  # warn_each sets all three
            count, examples, many = self._seen.get(kind, (0, [], many))
            if len(examples) < 3:
                examples.append(str(vars(record)["s3stow_example"]))
            self._seen[kind] = (count + 1, examples, many)
        return count == 0

    def take(self) -> list[tuple[int, list[str], str]]:
        with self._lock:
            seen, self._seen = self._seen, {}
        return [entry for entry in seen.values() if entry[0] > 1]


_KINDS = _Kinds()


def warn_each(
    logger: logging.Logger, kind: str, message: str, *args: object, example: str, many: str
) -> None:
    """Warn ``message`` about one of possibly many items: shown once per ``kind`` (``-v``:
    each time); ``flush_warnings`` later says ``<count> <many>``, with examples."""
    extra = {"s3stow_kind": kind, "s3stow_example": example, "s3stow_many": many}
    logger.warning(message, *args, extra=extra)


def flush_warnings() -> None:
    """Say, per kind warned more than once, how many there were and a few examples."""
    for count, examples, many in _KINDS.take():
        logging.getLogger("s3stow").warning(
            "%s %s (e.g. %s; -v lists every one)", f"{count:,}", many, ", ".join(examples)
        )


class RedactingFilter(logging.Filter):
    """A logging filter that formats the record once and scrubs secrets from it; the
    text and path arguments of s3stow's own records have their control characters
    escaped."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("s3stow") and isinstance(record.args, tuple):
            record.args = tuple(_escaped(arg) for arg in record.args)  # paths, as printed
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
    _KINDS.each = level <= logging.INFO
    handler.addFilter(_KINDS)
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
