"""``ServerProbes``: when a run asks the server how it behaves, and what it does with
the answer.

Two questions (``store/probes.py`` sends them), each asked once per endpoint and
bucket, only on a configured endpoint (AWS's own is known), and only when the
answer would change something:

- *Does the server refuse a wrong checksum?* Asked by the first transfer that would
  compute an MD5 for the ETag check under ``etag_check: auto``. Yes (SeaweedFS,
  MinIO): no MD5 and no ETag comparison, the server's own validation of the run's
  checksum already refuses damaged bytes. No (moto): the check stays.
- *Does the server keep a ``\\`` in a key?* Asked when a planned key holds one. If
  it stores it as ``/`` (SeaweedFS), such keys are folded before they are claimed
  (``KeyClaims.fold``), so the ledger, verify and the collision check see the key
  the server really has.

The first question need not wait for the first transfer: the engine starts it in a
thread of its own (``start_checksum_probe``) as soon as HeadBucket has passed (never
before: SeaweedFS creates a missing bucket on any PUT, even a refused one), alongside
the rest of the listing, and the transfers that ask then wait for that answer (one
probe at a time: the lock) rather than for a probe sent only once the listing came
back. ``settle`` waits for it at
the end of a run, so its answer is cached before the ledger closes.

An answer is kept for the run, and in the ledger for a day (``ledger/probes.py``):
the next run sends no probe. A dry run never probes (it uses a cached answer, else
the safe default). A probe that cannot tell (403, no write permission, a network
error) leaves the safe default (ETag check on, keys as they are), is logged once at
debug level and never fails the run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from s3stow.config import Settings

if TYPE_CHECKING:
    from s3stow.ledger import Ledger
    from s3stow.models import PlannedUpload, Refused
    from s3stow.plan.collisions import KeyClaims
    from s3stow.store.base import ObjectStore
    from s3stow.store.probes import ProbeOutcome

log = logging.getLogger(__name__)


def asks_checksum_probe(settings: Settings) -> bool:
    """Whether this run's transfers ask the server about checksums (on a configured
    endpoint): ``etag_check: auto``, a checksum sent and checked (not compatibility
    mode), no SSE-KMS (whose ETag is no MD5 whatever the server does)."""
    return (
        settings.etag_check == "auto"
        and settings.sse != "aws:kms"
        and not settings.checksum_compat
        and settings.checksum != "none"
    )


class ServerProbes:
    """The probe answers of one uploader (thread-safe: one probe at a time)."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ObjectStore,
        ledger: Ledger | None,
        send: bool = True,
    ) -> None:
        self.settings = settings
        self.may_send = send and not settings.dry_run  # False: cached answers only
        self.store = store
        self.ledger = ledger
        self.sent = 0  # probes sent by this uploader (tests, doctor)
        self._answers: dict[tuple[str, str], str | None] = {}
        self._lock = threading.Lock()
        self._early: dict[str, threading.Thread] = {}  # bucket -> probe started ahead
        self._early_lock = threading.Lock()  # not _lock: a probe's before_send may start one

    def validates_checksums(self, bucket: str, *, near: str) -> bool:
        """Whether the server refuses a body whose checksum is wrong (``near``: a key
        the run writes, beside which the probe object goes)."""
        from s3stow.store import probes

        algorithm = self.settings.checksum
        if algorithm == "none":
            return False

        def send() -> ProbeOutcome:
            return probes.probe_checksum_validation(
                self.store, bucket, near=near, algorithm=algorithm
            )

        return self.answer(probes.CHECKSUM_VALIDATION, bucket, send) == probes.VALIDATES

    def start_checksum_probe(self, bucket: str, *, near: str) -> None:
        """Ask ``validates_checksums`` now, in a thread of its own, when this run's
        transfers would ask it and may send it (no answer yet for ``bucket``): the
        transfers then wait for this answer, not for a probe of their own. An error
        is left for the transfer that asks again (it is not an answer)."""
        if not self.may_send or not asks_checksum_probe(self.settings):
            return
        from s3stow.store.probes import CHECKSUM_VALIDATION

        with self._early_lock:
            if (CHECKSUM_VALIDATION, bucket) in self._answers or bucket in self._early:
                return

            def ask() -> None:
                try:
                    self.validates_checksums(bucket, near=near)
                except Exception as exc:  # noqa: BLE001  (no client...: a transfer asks again)
                    log.debug("checksum probe on %s not sent ahead: %s", bucket, exc)

            thread = threading.Thread(target=ask, name="probe", daemon=True)
            self._early[bucket] = thread
        thread.start()

    def settle(self) -> None:
        """Wait for the probes ``start_checksum_probe`` started (end of a run)."""
        for thread in list(self._early.values()):
            thread.join()

    def folds_backslash(
        self, bucket: str, *, near: str, before_send: Callable[[], None] | None = None
    ) -> bool:
        """Whether the server stores a key's ``\\`` as ``/`` (``before_send``: called
        before a probe is sent, not when the answer is known)."""
        from s3stow.store import probes

        def send() -> ProbeOutcome:
            if before_send is not None:
                before_send()
            return probes.probe_backslash(self.store, bucket, near=near)

        return self.answer(probes.BACKSLASH_KEYS, bucket, send) == probes.FOLDS

    def fold_keys(
        self,
        batch: Sequence[PlannedUpload],
        claims: KeyClaims,
        *,
        before_send: Callable[[], None] | None = None,
    ) -> tuple[list[PlannedUpload], list[Refused]]:
        """On a server that stores a key's ``\\`` as ``/``, ``batch`` with such keys
        folded (``KeyClaims.fold``); the server is asked only when a key holds one.
        Uploads and ``job plan`` both fold here, so a job's keys are the server's too."""
        first = next((item for item in batch if "\\" in item.key), None)
        if first is None or not self.folds_backslash(
            first.bucket, near=first.key, before_send=before_send
        ):
            return list(batch), []
        return claims.fold(batch, server=self.server_name())

    def pin(self, name: str, bucket: str, result: str | None) -> None:
        """Take ``result`` as the answer of probe ``name`` for ``bucket`` without asking
        (an embedder that knows its server; ``None``: the safe default)."""
        with self._lock:
            self._answers[name, bucket] = result

    def server_name(self) -> str:
        """The endpoint, for messages."""
        from s3stow.store.probes import endpoint_of

        return endpoint_of(self.store) or "this server"

    def answer(self, name: str, bucket: str, send: Callable[[], ProbeOutcome]) -> str | None:
        """The answer of probe ``name`` for ``bucket``: this run's, the ledger's (fresh),
        else ``send``'s (``None``: not known)."""
        with self._lock:
            if (name, bucket) in self._answers:
                return self._answers[name, bucket]
            result = self._find(name, bucket, send)
            self._answers[name, bucket] = result
            return result

    def _find(self, name: str, bucket: str, send: Callable[[], ProbeOutcome]) -> str | None:
        from s3stow.ledger import probes as cache
        from s3stow.store.probes import endpoint_of

        if not self.store.custom_endpoint():
            return None  # AWS: known, never probed
        endpoint = endpoint_of(self.store)
        if self.ledger is not None and endpoint is not None:
            found = cache.cached(self.ledger, endpoint, bucket, name)  # at most a day old
            if found is not None:
                log.debug("probe %s on %s/%s: %s (cached)", name, endpoint, bucket, found)
                return found
        if not self.may_send:
            return None
        self.sent += 1
        outcome = send()
        if outcome.result is None:
            log.debug(
                "probe %s on %s: no answer (%s); keeping the safe default",
                name,
                bucket,
                outcome.detail,
            )
            return None
        log.debug(
            "probe %s on %s/%s: %s (%s)", name, endpoint, bucket, outcome.result, outcome.detail
        )
        if self.ledger is not None and endpoint is not None:
            cache.remember(self.ledger, endpoint, bucket, name, outcome.result)
        return outcome.result
