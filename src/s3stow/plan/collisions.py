"""Key collisions: which file owns each key, so that no object is written for two files.

Two files collide when they get the same key: NFC and NFD spellings of one name, a
template without the directories (``{name}``, date folders), ``--strip-prefix``.
``KeyClaims`` settles each batch of planned uploads before any of them is compared or
sent, with the ledger's rows for the batch's keys:

- a key the ledger records ``done`` for another file that still exists is held by
  that file: its verified object is never overwritten, and every other file of the
  key is refused, naming it;
- files of one batch that share a key are all refused, each naming the others:
  neither is sent, since which of them the key should hold is the user's call;
- a key taken earlier in the run keeps its first file; later files are refused;
- one file found twice in a batch (a source given twice, a folder and a file inside it)
  is uploaded once, the other reported deduplicated: it collides with nothing.

Discovery streams, so two colliding files in different batches (256 files each) are
settled in turn: the first may already be uploaded when the second is found; the
second is refused, naming it, and the first object stays that file's.

On a server that stores a key's ``\\`` as ``/`` (SeaweedFS; ``transfer/probes.py``
finds out), ``fold`` rewrites such keys before they are settled: ``back\\slash.txt``
claims ``back/slash.txt``, the key the server really writes, so it collides with a
file ``back/slash.txt`` instead of overwriting its object, and the refusal says why.

Under a content-addressed template (``{md5}``/``{sha256}``) equal keys mean equal
content: files sharing a key are duplicates, not collisions (the first is uploaded, the
others are reported deduplicated), and an object the ledger holds for another path
already has their bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from s3stow.ledger import LedgerEntry
from s3stow.logs import warn_each
from s3stow.models import Duplicate, PlannedUpload, Refused, Status
from s3stow.plan.keys import UnsafeKeyError, check_key

log = logging.getLogger(__name__)

COLLISION = "KeyCollision"


@dataclass(frozen=True, slots=True)
class _Owner:
    path: str
    why: str  # how it came to own the key: "run", "ledger" or "collided"
    run_id: str = ""


@dataclass
class KeyClaims:
    """The owner of every key seen in one run (or one long-running ``watch``)."""

    content_addressed: bool = False
    # key digest -> its owner; a bare path is a file of this run (the common case, kept cheap)
    _owners: dict[bytes, _Owner | str] = field(default_factory=dict)
    _folded: set[bytes] = field(default_factory=set)  # keys made by ``fold``

    def fold(
        self, batch: Sequence[PlannedUpload], *, server: str = "this server"
    ) -> tuple[list[PlannedUpload], list[Refused]]:
        """``batch`` with every ``\\`` of a key written as ``/``, for a server that
        stores it so; a key that folds into an unsafe one (``a\\`` -> ``a/``) is refused."""
        kept: list[PlannedUpload] = []
        refused: list[Refused] = []
        for item in batch:
            if "\\" not in item.key:
                kept.append(item)
                continue
            folded = item.key.replace("\\", "/")
            note = f"{server} stores '\\' in keys as '/'"
            try:
                check_key(folded)
            except UnsafeKeyError as exc:
                reason = f"key {item.key!r} would be stored as {folded!r} ({note}): {exc}"
                refused.append(Refused(item.source, item.key, "UnsafeKey", reason))
                continue
            warn_each(
                log,
                "backslash-folded",
                "%s: key %r instead of %r (%s)",
                item.source.path,
                folded,
                item.key,
                note,
                example=str(item.source.path),
                many="keys with '\\' given '/' instead",
            )
            self._folded.add(_digest(folded))
            kept.append(replace(item, key=folded))
        return kept, refused

    def settle(
        self, batch: Sequence[PlannedUpload], known: Mapping[str, LedgerEntry]
    ) -> tuple[list[PlannedUpload], list[Refused | Duplicate]]:
        """Split ``batch`` into the uploads that own their keys and the others.

        ``known``: the ledger's entries for the batch's keys (``Ledger.lookup``)."""
        by_key: dict[bytes, list[PlannedUpload]] = {}
        for item in batch:
            by_key.setdefault(_digest(item.key), []).append(item)
        refusals: dict[int, Refused | Duplicate] = {}
        owners = self._owners
        for digest, items in by_key.items():
            entry = known.get(items[0].key)
            if len(items) == 1 and digest not in owners:  # nearly always: one file, a free key
                path = str(items[0].source.path)
                if entry is None or entry.source_path == path or entry.status != Status.DONE:
                    owners[digest] = path
                    continue
            for item, refusal in self._settle_key(digest, items, entry):
                refusals[id(item)] = refusal
        if not refusals:
            return list(batch), []
        kept = [item for item in batch if id(item) not in refusals]
        return kept, [refusals[id(item)] for item in batch if id(item) in refusals]

    def _settle_key(
        self, digest: bytes, items: list[PlannedUpload], entry: LedgerEntry | None
    ) -> list[tuple[PlannedUpload, Refused | Duplicate]]:
        owner = self._owners.get(digest)
        if isinstance(owner, str):
            owner = _Owner(owner, "run")
        if owner is None and not self.content_addressed:
            owner = _ledger_holder(entry, items)
            if owner is not None:
                self._owners[digest] = owner
        if owner is not None:
            return [
                (i, self._refuse(i, owner))
                for i in items
                if owner.why == "collided" or str(i.source.path) != owner.path
            ]
        first = items[0]
        if len(items) == 1:
            self._owners[digest] = str(first.source.path)
            return []
        if len({os.path.realpath(i.source.path) for i in items}) == 1:
            # one file found twice (a source given twice, or a folder and a file in it):
            # one upload; the others are reported deduplicated, not as a collision
            self._owners[digest] = str(first.source.path)
            return [(i, Duplicate(i.source, i.key, str(first.source.path))) for i in items[1:]]
        if self.content_addressed:
            self._owners[digest] = str(first.source.path)
            path = str(first.source.path)
            return [(i, Duplicate(i.source, i.key, path)) for i in items[1:]]
        self._owners[digest] = _Owner(str(first.source.path), "collided")
        paths = [str(i.source.path) for i in items]
        refused: list[tuple[PlannedUpload, Refused | Duplicate]] = []
        for item in items:
            others = ", ".join(p for p in paths if p != str(item.source.path))
            reason = f"key {item.key!r} is also the key of {others}; neither is uploaded"
            reason += self._why_folded(digest) + _spellings(item.source.path, paths)
            refused.append((item, Refused(item.source, item.key, COLLISION, reason + _HINT)))
        return refused

    def _refuse(self, item: PlannedUpload, owner: _Owner) -> Refused | Duplicate:
        if self.content_addressed and owner.why == "run":
            return Duplicate(item.source, item.key, owner.path)
        if owner.why == "ledger":
            reason = (
                f"key {item.key!r} holds {owner.path}, verified in S3 by run {owner.run_id}; "
                "not overwritten"
            )
        elif owner.why == "collided":
            reason = f"key {item.key!r} is also the key of {owner.path} and others; not uploaded"
        else:
            reason = f"key {item.key!r} is also the key of {owner.path}; not uploaded"
        reason += self._why_folded(_digest(item.key))
        return Refused(item.source, item.key, COLLISION, reason + _HINT)

    def _why_folded(self, digest: bytes) -> str:
        if digest in self._folded:
            return " (the server stores '\\' in keys as '/', so a '\\' names the same key)"
        return ""


_HINT = " (rename one of the files, or choose a key template that tells them apart)"


def _ledger_holder(entry: LedgerEntry | None, items: list[PlannedUpload]) -> _Owner | None:
    """The file the ledger's verified object of this key belongs to, when that is
    another file that still exists (else ``None``: no one else holds the key)."""
    if entry is None or entry.status != Status.DONE:
        return None
    paths = {str(i.source.path) for i in items}
    if entry.source_path in paths:
        return _Owner(entry.source_path, "ledger", entry.run_id)
    try:
        held = os.stat(entry.source_path)
    except (OSError, ValueError):
        return None  # gone (moved, deleted, renamed tree): the key is free for its successor
    if not stat.S_ISREG(held.st_mode):
        return None
    for item in items:
        try:
            if os.path.samestat(held, os.stat(item.source.path)):
                return _Owner(str(item.source.path), "ledger", entry.run_id)  # another spelling
        except OSError:
            continue
    log.debug("%s: the ledger's object is %s's", entry.key, entry.source_path)
    return _Owner(entry.source_path, "ledger", entry.run_id)


def _digest(key: str) -> bytes:
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=12).digest()


def _spellings(path: Path, paths: list[str]) -> str:
    """Two files whose names differ only in their Unicode form (NFC and NFD: a macOS
    copy beside a Linux one) print alike: say so, with the code points that differ."""
    import unicodedata

    mine = str(path)
    form = unicodedata.normalize("NFC", mine)
    twins = [p for p in paths if p != mine and unicodedata.normalize("NFC", p) == form]
    if not twins:
        return ""
    shown = ", ".join(ascii(Path(p).name) for p in [mine, *twins])
    return f" (one name in two Unicode spellings, alike on screen: {shown})"
