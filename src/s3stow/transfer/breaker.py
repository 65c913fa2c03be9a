"""The endpoint breaker: a run stops once its endpoint has stopped answering.

A file counts against the endpoint when it failed, after all its retries (botocore's
and ``transfer/retry.py``'s), with an error that got no answer from the endpoint at
all: ``TransferError.unreachable``, as ``store/translate.py`` classifies botocore's
exceptions (a connection refused, reset or closed, a name that does not resolve, a
connect that timed out). An answer, even a 5xx or a throttle, is a server that is
there: the retry policy deals with it, and such an answer resets the count, as any
success does (a file done, bytes S3 acknowledged). A file's own fault (unreadable,
changed while read) says nothing about the endpoint: it neither counts nor resets.

After ``threshold`` such files in a row (the run's ``concurrency``, at least 3: every
file thread has failed its whole retry window with no success anywhere, so neither
one odd file nor a blip shorter than the retries can trip it) the run stops as a
ledger that cannot be written stops it (``fail_run``: the fatal ``EndpointError``,
exit 3, the summary printed): what is in flight finishes, or is left pending when it
too finds the endpoint gone, and the files not started stay pending for the next run.
Shared by uploads (``FileWorker``: ``upload``, ``retry``, ``archive``, ``job work``) and
restores (``RestoreWorker``); a ``watch`` turns it off (``enabled``): it keeps files
queued through an outage and retries them, as it promises.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from s3stow.errors import EndpointError, SourceChanged, TransferError
from s3stow.store.base import ObjectStore

MIN_THRESHOLD = 3


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure that got no answer from the endpoint."""
    return bool(getattr(exc, "unreachable", False))


def _answered(exc: BaseException) -> bool:
    """Whether ``exc`` came with an answer of the endpoint (a 4xx, a 5xx, a throttle)."""
    return isinstance(exc, TransferError) and not isinstance(exc, SourceChanged)


class EndpointBreaker:
    """Counts files failed in a row for want of an endpoint; thread-safe."""

    def __init__(self, threshold: int, *, store: ObjectStore, endpoint: str | None) -> None:
        self.threshold = max(threshold, MIN_THRESHOLD)
        self.store = store
        self.endpoint = endpoint  # the configured one; botocore's is asked when tripping
        self.in_a_row = 0
        self.tripped = False
        self.enabled = True  # off for a watch: it outlasts outages, its files queued
        self._lock = threading.Lock()

    def success(self) -> None:
        if self.in_a_row:  # the common case reads one attribute, no lock
            with self._lock:
                self.in_a_row = 0

    def failure(self, exc: BaseException) -> EndpointError | None:
        """Count a file's final failure ``exc``: the run's fatal error when this one
        trips the breaker, else ``None`` (once tripped, never again)."""
        if not self.enabled:
            return None
        if not unreachable(exc):
            if _answered(exc):  # the endpoint is there
                self.success()
            return None  # a file's own fault (unreadable, changed) says nothing of it
        with self._lock:
            self.in_a_row += 1
            if self.tripped or self.in_a_row < self.threshold:
                return None
            self.tripped = True
            count = self.in_a_row
        return self._error(exc, count)

    def left_pending(
        self, exc: BaseException, *, fail_run: Callable[[EndpointError], None]
    ) -> bool:
        """Count a file's final failure ``exc`` (``failure``), handing the run's fatal
        error to ``fail_run`` when it trips the breaker; whether the run had already
        stopped for its endpoint, so the file is left pending, not failed. What both
        workers (``FileWorker``, ``RestoreWorker``) ask of a failed file."""
        if self.tripped and unreachable(exc):
            return True
        gone = self.failure(exc)
        if gone is not None:
            fail_run(gone)
        return False

    def _error(self, exc: BaseException, count: int) -> EndpointError:
        from s3stow.store.probes import endpoint_of

        endpoint = endpoint_of(self.store) or self.endpoint or "the S3 endpoint"
        code = getattr(exc, "code", None) or type(exc).__name__
        return EndpointError(
            f"the endpoint {endpoint} stopped answering: {count} files in a row failed "
            f"with {code} after all their retries; the run stopped, and the files not "
            "finished are left for the next run",
            hint="check that the server is running and reachable (--endpoint-url, the "
            "network, proxies); once it answers again, run the same command to go on "
            "where this one stopped",
        )
