"""Server behaviour probes: what an S3 endpoint does with a wrong checksum and with a
backslash in a key, each found out with one tiny object sent through the store.

S3 servers differ where s3stow's checks depend on it:

- ``checksum-validation``: AWS S3, SeaweedFS and MinIO refuse a body whose
  ``x-amz-checksum-*`` (or ``Content-MD5``) does not match it (``BadDigest``), so a
  damaged body is never stored and comparing the ETag with a local MD5 adds nothing;
  moto stores it. The probe PUTs a tiny object with a deliberately wrong checksum of
  the run's algorithm: refused with ``BadDigest`` -> ``validates``; stored ->
  ``stores`` (and the object is deleted again).
- ``backslash-keys``: SeaweedFS stores a key's ``\\`` as ``/`` (``back\\slash.txt`` is
  listed as ``back/slash.txt``); AWS and moto keep it. The probe PUTs a tiny object
  whose key holds a ``\\`` and lists its folder: listed as sent -> ``keeps``, with
  ``/`` -> ``folds``. The object is deleted under the key it was listed with.

Probe objects live under ``<folder>.s3stow-probe/<random>`` beside a key the run
writes anyway (so a probe needs no permission the run does not), and are removed
at once. The requests go through the run's own ``ObjectStore`` (botocore's endpoint,
credentials, TLS and addressing: nothing re-derived). A probe that cannot tell
(403, a network error, an unexpected listing) returns no result; the caller keeps
its safe default. ``transfer/probes.py`` decides when to probe and caches the answers
in the ledger (``ledger/probes.py``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from s3stow.config import ChecksumName
from s3stow.errors import S3StowError
from s3stow.store.base import ObjectStore, WriteOptions
from s3stow.store.checksums import compute

log = logging.getLogger(__name__)

CHECKSUM_VALIDATION = "checksum-validation"
BACKSLASH_KEYS = "backslash-keys"
VALIDATES = "validates"  # a wrong checksum is refused (BadDigest)
STORES = "stores"  # a wrong checksum is stored: only the ETag check catches damage
KEEPS = "keeps"  # a key's backslash is kept
FOLDS = "folds"  # a key's backslash is stored as '/'
PROBE_FOLDER = ".s3stow-probe/"
_REFUSED = frozenset({"BadDigest"})  # S3's answer to a checksum that does not match
_BODY = b"s3stow probe object: safe to delete\n"
_OPTIONS = WriteOptions(content_type="text/plain", metadata={"source": "s3stow-probe"})


@dataclass(frozen=True, slots=True)
class ProbeOutcome:
    """A probe's answer (``None``: it could not tell) and what was seen, for logs."""

    result: str | None
    detail: str


def probe_key(near: str) -> str:
    """A fresh probe key in the folder of the key ``near``."""
    folder = near[: near.rfind("/") + 1]
    return f"{folder}{PROBE_FOLDER}{uuid.uuid4().hex}"


def probe_checksum_validation(
    store: ObjectStore, bucket: str, *, near: str, algorithm: ChecksumName
) -> ProbeOutcome:
    """Whether the server refuses a body whose ``algorithm`` checksum is wrong."""
    key = probe_key(near)
    wrong = compute(algorithm, b"not the probe object's bytes")
    if wrong is None:
        return ProbeOutcome(None, "no checksum algorithm to probe with")

    def put() -> None:
        store.put_object(bucket, key, _BODY, digest=wrong, options=_OPTIONS)

    try:
        _quietly(store, put)
    except S3StowError as exc:
        code = str(getattr(exc, "code", "") or "")
        if code in _REFUSED:
            return ProbeOutcome(VALIDATES, f"a wrong {algorithm} checksum was refused ({code})")
        return ProbeOutcome(None, f"the probe PUT of s3://{bucket}/{key} failed: {exc.message}")
    _delete(store, bucket, key)
    return ProbeOutcome(STORES, f"an object with a wrong {algorithm} checksum was stored")


def probe_backslash(store: ObjectStore, bucket: str, *, near: str) -> ProbeOutcome:
    """Whether the server keeps a ``\\`` in a key or stores it as ``/``."""
    folder = probe_key(near) + "/"
    key = folder + "back\\slash"
    folded = key.replace("\\", "/")
    listed: list[str] = []
    try:
        store.put_object(bucket, key, _BODY, digest=None, options=_OPTIONS)
        listed = [info.key for info in store.list_objects(bucket, folder)]
    except S3StowError as exc:
        return ProbeOutcome(None, f"the probe of s3://{bucket}/{key} failed: {exc.message}")
    finally:
        for left in listed or [key]:
            _delete(store, bucket, left)
    if listed == [key]:
        return ProbeOutcome(KEEPS, "a key's '\\' is kept")
    if listed == [folded]:
        return ProbeOutcome(FOLDS, "a key's '\\' is stored as '/'")
    return ProbeOutcome(None, f"the probe object {key!r} was listed as {listed!r}")


def _delete(store: ObjectStore, bucket: str, key: str) -> None:
    try:
        store.delete_object(bucket, key)
    except S3StowError as exc:
        log.debug("probe object s3://%s/%s not deleted: %s", bucket, key, exc.message)


def _quietly(store: ObjectStore, send: Callable[[], None]) -> None:
    """``send``, not counted among the run's transient errors: a refused probe is the
    answer asked for, not a server fault (``BadDigest`` counts as transient)."""
    from s3stow.store.s3 import S3Store

    inner = _innermost(store)
    before = inner.transient_errors if isinstance(inner, S3Store) else 0
    try:
        send()
    finally:
        if isinstance(inner, S3Store):
            inner.transient_errors -= max(0, inner.transient_errors - before)


def _innermost(store: ObjectStore) -> object:
    inner: object = store
    while hasattr(inner, "inner"):  # DryRunStore, ObservedStore
        inner = inner.inner
    return inner


def endpoint_of(store: ObjectStore) -> str | None:
    """The endpoint botocore addresses for ``store`` (through its wrappers), or ``None``
    when the store is not botocore's (a test double)."""
    client = getattr(_innermost(store), "client", None)
    url = getattr(getattr(client, "meta", None), "endpoint_url", None)
    return str(url) if url else None
