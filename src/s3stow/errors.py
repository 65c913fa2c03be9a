"""The s3stow exception tree and the exit-code table.

Every error a user can cause or meet is an ``S3StowError`` subclass carrying a
message that names the problem, a hint that names the fix, and the process exit
code the CLI ends with. Library errors (botocore, sqlite, psycopg, OS) are
translated where they enter s3stow, keeping the original as ``__cause__``.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """The documented exit codes of every s3stow command."""

    OK = 0
    SOME_FAILED = 1
    USAGE = 2
    FATAL = 3
    INTERRUPTED = 130


class S3StowError(Exception):
    """Root of every error s3stow raises on purpose."""

    exit_code: ExitCode = ExitCode.FATAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(S3StowError):
    """Invalid configuration or command-line usage (exit 2)."""

    exit_code = ExitCode.USAGE


class AuthError(S3StowError):
    """Credentials missing, invalid or expired, or a permission is denied (exit 3)."""

    exit_code = ExitCode.FATAL


class BucketMissingError(S3StowError):
    """The destination bucket does not exist (exit 3)."""

    exit_code = ExitCode.FATAL


class EndpointError(S3StowError):
    """The S3 endpoint cannot be reached, or what answers there is not S3 (exit 3)."""

    exit_code = ExitCode.FATAL


class SourceError(S3StowError):
    """A local source path is unusable: missing, unreadable, not a directory (exit 2)."""

    exit_code = ExitCode.USAGE


class TransferError(S3StowError):
    """One request or one file failed to transfer.

    ``transient`` tells the retry layer whether trying again can help;
    ``code`` is the S3 error code or exception class that caused it;
    ``unreachable``: no answer came from the endpoint at all (the connection was
    refused, reset or closed, its name did not resolve, connecting timed out), as
    opposed to an answer, even a 5xx or a throttle, from a server that is there.
    """

    exit_code = ExitCode.SOME_FAILED

    def __init__(
        self,
        message: str,
        *,
        code: str = "Unknown",
        transient: bool = False,
        throttled: bool = False,
        unreachable: bool = False,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.transient = transient
        self.throttled = throttled
        self.unreachable = unreachable


class SourceChanged(TransferError):
    """The file's size or mtime changed (or it vanished) while it was being uploaded."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="SourceChanged")


class LedgerError(S3StowError):
    """The ledger database cannot be opened, read or written (exit 3)."""

    exit_code = ExitCode.FATAL


class Interrupted(S3StowError):
    """The run was stopped by SIGINT/SIGTERM (exit 130)."""

    exit_code = ExitCode.INTERRUPTED
