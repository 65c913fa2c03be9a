"""The file-level retry layer above botocore's per-request retries.

botocore (``standard`` mode, ``max_attempts`` per request) retries each HTTP
request. When it gives up on a transient error, this layer waits (exponential
backoff with full jitter, base ``retry_base_delay``, capped at
``retry_max_delay``) and runs the whole step again, up to ``file_retries``
times. The worst case is therefore ``max_attempts x (file_retries + 1)``
requests per step. Permanent and fatal errors are never retried here.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable
from typing import TypeVar

from s3stow.errors import Interrupted, TransferError

T = TypeVar("T")
log = logging.getLogger(__name__)


def backoff_delay(attempt: int, *, base: float, cap: float) -> float:
    """Full-jitter delay before retry ``attempt`` (1-based)."""
    return random.uniform(0, min(cap, base * 2 ** (attempt - 1)))


class RetryPolicy:
    """Runs a step, re-running it on transient ``TransferError``."""

    def __init__(
        self, *, retries: int, base_delay: float, max_delay: float, stop: threading.Event
    ) -> None:
        self.retries = retries
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.stop = stop
        self.retried = 0
        self._lock = threading.Lock()

    def run(self, step: Callable[[], T], *, what: str) -> T:
        attempt = 0
        while True:
            try:
                return step()
            except TransferError as exc:
                attempt += 1
                if not exc.transient or attempt > self.retries:
                    raise
                delay = backoff_delay(attempt, base=self.base_delay, cap=self.max_delay)
                log.info(
                    "retrying %s in %.2fs after %s (%d/%d)",
                    what,
                    delay,
                    exc.code,
                    attempt,
                    self.retries,
                )
                with self._lock:
                    self.retried += 1
                if self.stop.wait(delay):
                    raise Interrupted("interrupted while waiting to retry") from exc
