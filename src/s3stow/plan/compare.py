"""The compare stage: decide which planned files need uploading, and why.

First the ledger (batched lookups): an item recorded ``done`` on this store (the
same endpoint, ``ObjectStore.store_id``) with the same size and mtime is skipped
without reading the file or asking S3; one recorded on another store is checked like
a file the ledger does not know. Items the ledger
does not know are checked against one paginated listing of the prefix, loaded
lazily (only when some file is not in the ledger). An object listed with the
same size is proven equal by ``remote_matches``, in the tier order ``proof.py``
shares with verify and restore: S3's checksum of the same algorithm, else the
``sha256`` metadata, else a single-part ETag (MD5), else the ``mtime`` metadata,
else size alone (reported as the weakest tier).
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from s3stow.config import Settings
from s3stow.ledger import Ledger, LedgerEntry
from s3stow.localfiles import stored_ns
from s3stow.models import Decision, PlannedUpload, Reason, Status
from s3stow.store import checksums
from s3stow.store.base import ObjectInfo, ObjectStore
from s3stow.store.proof import CHECKSUM_ALGORITHMS, choose_proof, hash_file

log = logging.getLogger(__name__)


class RemoteIndex:
    """``key -> ObjectInfo`` of one prefix, listed once on first use.

    ``before_first_use(key)`` (the engine's bucket check: HeadBucket, then the start
    of the checksum probe beside ``key``) is called before any answer is used. The listing
    does not wait for it: its first page is asked for in a thread of its own while the
    check runs in the caller's, and the listing is used only once the check passed
    (the check's error wins over the listing's), so one round trip over a long link is
    saved and nothing is decided on a bucket the check refused.

    With ``by_head`` (a few scattered keys, as in a retry) each key is HEADed
    instead, so a huge bucket is never listed for a handful of files. With ``trust_ledger``
    nothing is asked of S3: a key the ledger does not know is uploaded (job workers,
    whose items were just planned; the upload itself is verified).
    """

    def __init__(
        self,
        store: ObjectStore,
        bucket: str,
        prefix: str,
        *,
        by_head: bool = False,
        trust_ledger: bool = False,
        before_first_use: Callable[[str], None] | None = None,
    ) -> None:
        self._before = before_first_use
        self._store = store
        self._bucket = bucket
        self._prefix = prefix
        self._by_head = by_head
        self._trust_ledger = trust_ledger
        self._objects: dict[str, ObjectInfo] | None = None
        self._lock = threading.Lock()
        self._store_id: str | None = None
        self._elsewhere: set[str] = set()  # other stores the ledger's rows named (warned)

    def recorded_here(self, entry: LedgerEntry) -> bool:
        """``LedgerEntry.recorded_on`` this store, warning once per other store named."""
        if entry.store is None:  # no client needed to know
            return True
        if self._store_id is None:
            self._store_id = self._store.store_id()
        if entry.recorded_on(self._store_id):
            return True
        assert entry.store is not None
        with self._lock:
            first = entry.store not in self._elsewhere
            self._elsewhere.add(entry.store)
        if first:
            log.warning(
                "the ledger recorded objects of s3://%s as uploaded to %s, but this run "
                "sends to %s: they are checked there, not skipped",
                self._bucket,
                entry.store,
                self._store_id,
            )
        return False

    def get(self, key: str) -> ObjectInfo | None:
        if self._trust_ledger or self._by_head:
            if self._before is not None:
                self._before(key)
            if self._trust_ledger:
                return None
            return self._store.head_object(self._bucket, key)
        with self._lock:
            if self._objects is None:
                self._objects = self._listed_after_check(key)
        return self._objects.get(key)

    def _listed_after_check(self, key: str) -> dict[str, ObjectInfo]:
        """The listing, fetched alongside ``before_first_use`` and returned only once
        that passed; its error first, then the listing's (lock held)."""
        if self._before is None:
            return self._list()
        listed: list[dict[str, ObjectInfo]] = []
        failed: list[BaseException] = []
        stop = threading.Event()  # the check failed: no more pages

        def fetch() -> None:
            try:
                listed.append(self._list(stop))
            except BaseException as exc:  # noqa: BLE001  (raised in the caller's thread)
                failed.append(exc)

        lister = threading.Thread(target=fetch, name="listing", daemon=True)
        lister.start()
        try:
            self._before(key)
        except BaseException:
            stop.set()
            raise
        lister.join()
        if failed:
            raise failed[0]
        return listed[0]

    def _list(self, stop: threading.Event | None = None) -> dict[str, ObjectInfo]:
        objects: dict[str, ObjectInfo] = {}
        for info in self._store.list_objects(self._bucket, self._prefix):
            if stop is not None and stop.is_set():
                break
            objects[info.key] = info
        return objects


def decide(
    items: Sequence[PlannedUpload],
    *,
    ledger: Ledger | None,
    remote: RemoteIndex,
    settings: Settings,
    known: Mapping[str, LedgerEntry] | None = None,
) -> list[tuple[Decision, ObjectInfo | None]]:
    """Return a decision per item, with the listed remote object when it needs a proof.

    ``known``: the ledger's entries for these keys when the caller has looked them up."""
    if not items:
        return []
    if known is None:
        known = ledger.lookup(items[0].bucket, [i.key for i in items]) if ledger else {}
    decisions: list[tuple[Decision, ObjectInfo | None]] = []
    for item in items:
        entry = known.get(item.key)
        if settings.force:
            decisions.append((Decision(item, True, Reason.FORCED), None))
            continue
        if entry is not None and entry.status == Status.DONE and remote.recorded_here(entry):
            if entry.size == item.source.size and entry.mtime_ns == stored_ns(item.source.mtime_ns):
                decisions.append((Decision(item, False, Reason.LEDGER_DONE), None))
            else:
                decisions.append((Decision(item, True, Reason.CHANGED), None))
            continue
        if entry is not None and entry.status in (Status.FAILED, Status.CHANGED, Status.UPLOADING):
            decisions.append((Decision(item, True, Reason.RETRY), None))
            continue
        listed = remote.get(item.key)
        if listed is None:
            decisions.append((Decision(item, True, Reason.NEW), None))
        elif settings.no_clobber:
            decisions.append((Decision(item, False, Reason.NO_CLOBBER), listed))
        elif listed.size != item.source.size:
            decisions.append((Decision(item, True, Reason.CHANGED), None))
        else:
            decisions.append((Decision(item, False, Reason.REMOTE_MATCH), listed))
    return decisions


def remote_matches(
    item: PlannedUpload,
    info: ObjectInfo,
    *,
    settings: Settings,
    progress: checksums.Progress = None,
    any_algorithm: bool = False,
) -> tuple[bool, str, str | None]:
    """Prove a same-size remote object equals the local file (tiers: ``proof.py``).

    Returns ``(equal, tier, local_checksum)``; ``info`` must come from HEAD.
    ``progress`` is told of each block read when the file is hashed. The checksum
    tier takes S3's checksum of ``settings.checksum`` only (the value is recorded
    as that algorithm's), or with ``any_algorithm`` whichever the object has
    (``verify --deep``: the file is re-read whatever the upload's setting was).
    """
    algorithms = CHECKSUM_ALGORITHMS if any_algorithm else (settings.checksum,)
    proof = choose_proof(info, algorithms=algorithms, etag_is_md5=settings.sse is None, mtime=True)
    if proof.tier == "mtime-metadata":
        local_mtime = datetime.fromtimestamp(item.source.mtime_ns / 1e9, UTC).isoformat()
        return proof.expected == local_mtime, proof.tier, None
    if proof.tier == "size":
        return info.size == item.source.size, proof.tier, None
    local = hash_file(str(item.source.path), proof, progress=progress)
    return proof.matches(local), proof.tier, local if proof.tier == "checksum" else None


def b64_to_hex(value: str) -> str:
    return base64.b64decode(value).hex()
