"""``verify``: compare the local tree, the ledger and the bucket, and classify every path.

Three views: the local files mapped to keys by the same planner as ``upload`` (so
layouts and filters agree), one paginated listing of the bucket under the keys'
common prefix, and the ledger's items under that prefix. HEAD (with checksum mode)
is sent only where a proof needs it. Classes: ``ok``, ``missing`` (not in S3),
``size-mismatch``, ``checksum-mismatch``, ``ledger-done-but-gone``, ``orphan`` (in
S3, not local), ``local-missing`` (the ledger's file is gone), ``changed-locally``,
``not-uploadable`` (a local file ``upload`` refuses or cannot read: an unsafe key,
another file's key, an unreadable path; it is not in S3, and the detail says why).
On a server the ledger knows to store a key's ``\\`` as ``/`` (``transfer/probes.py``)
such keys are checked where the upload put them.
Each finding names the tier that decided it: ``checksum`` / ``sha256-metadata`` /
``etag-md5`` (``--deep`` re-reads the file), ``ledger`` (size and mtime as
recorded), ``mtime-metadata``, ``size``, ``listing``. An upload's ``--timestamp``
folder is found as the newest one under the prefix.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from s3stow.config import Settings
from s3stow.ledger import Ledger, LedgerEntry
from s3stow.models import (
    INFORMATIONAL_SKIPS,
    PlannedUpload,
    Refused,
    Skipped,
    SourceFile,
    Status,
    Target,
)
from s3stow.plan.ahead import BATCH
from s3stow.plan.compare import remote_matches
from s3stow.plan.discover import Found, check_sources, discover
from s3stow.plan.ownfiles import working_files
from s3stow.plan.planner import Planner
from s3stow.store.base import ObjectInfo, ObjectStore
from s3stow.store.proof import choose_proof, hash_file
from s3stow.transfer.probes import ServerProbes

OK = "ok"
NOT_UPLOADABLE = "not-uploadable"
PROBLEM_ORDER = (
    "checksum-mismatch",
    "size-mismatch",
    "ledger-done-but-gone",
    "missing",
    "not-uploadable",
    "changed-locally",
    "local-missing",
    "orphan",
    OK,
)
FIXABLE = frozenset(
    {"missing", "ledger-done-but-gone", "size-mismatch", "checksum-mismatch", "changed-locally"}
)


@dataclass(frozen=True, slots=True)
class Finding:
    """The verdict on one key."""

    key: str
    path: str
    kind: str
    tier: str
    detail: str = ""
    source: SourceFile | None = None


def verify_tree(
    settings: Settings,
    target: Target,
    sources: Sequence[Path],
    *,
    store: ObjectStore,
    ledger: Ledger | None,
    deep: bool = False,
    limit: int | None = None,
    on_timestamp: Callable[[str | None], None] | None = None,
) -> Iterator[Finding]:
    """Yield a finding for every local file, listed object and ledger item.

    With ``timestamp`` and no ``custom_timestamp`` the upload's run timestamp is not
    known: the newest ``YYYYMMDD_HHMM`` folder under the keys' prefix (in S3 or the
    ledger) is the one checked, and ``on_timestamp`` is told which (``None``: none).
    """
    planner = Planner(settings, target)
    roots = check_sources(planner.sources(list(sources)))
    prefix = planner.template.static_prefix
    remote = {o.key: o for o in store.list_objects(target.bucket, prefix)}
    recorded = {e.key: e for e in ledger.items_under(target.bucket, prefix)} if ledger else {}
    if settings.timestamp and not settings.custom_timestamp:
        newest = newest_timestamp([*remote, *recorded], prefix)
        if on_timestamp is not None:
            on_timestamp(newest)
        if newest is not None:
            planner = Planner(settings.replace(custom_timestamp=newest), target)
    seen: set[str] = set()
    complete = True
    probes = ServerProbes(settings, store=store, ledger=ledger, send=False)
    own = working_files(settings, ledger)  # the ledger beside the files: not theirs
    found = discover(roots, follow_symlinks=settings.follow_symlinks, own=own)
    for planned in _plannable(found, planner, probes, recorded, bucket=target.bucket):
        if isinstance(planned, Finding):
            yield planned
            continue
        if limit is not None and len(seen) >= limit:
            complete = False  # a partial view cannot name orphans
            break
        seen.add(planned.key)
        yield _local(
            planned,
            remote.get(planned.key),
            recorded.get(planned.key),
            store=store,
            settings=settings,
            deep=deep,
        )
    if not complete:
        return
    for key, obj in remote.items():
        if key not in seen:
            entry = recorded.get(key)
            if entry is not None and not os.path.exists(entry.source_path):
                yield Finding(
                    key,
                    entry.source_path,
                    "local-missing",
                    "ledger",
                    "the ledger's file no longer exists",
                )
            else:
                yield Finding(
                    key,
                    entry.source_path if entry else "",
                    "orphan",
                    "listing",
                    f"{obj.size} bytes in S3, no local file maps to it",
                )
    for key, entry in recorded.items():
        if key not in seen and key not in remote and entry.status == Status.DONE:
            yield Finding(
                key,
                entry.source_path,
                "ledger-done-but-gone",
                "listing",
                "recorded done, but the object is gone and so is the local file",
            )


_TIMESTAMP = re.compile(r"(?<!\d)(\d{8}_\d{4})(?!\d)")


def newest_timestamp(keys: Iterable[str], prefix: str) -> str | None:
    """The newest run timestamp (``YYYYMMDD_HHMM``, the first in each key after
    ``prefix``) among ``keys``."""
    found = (_TIMESTAMP.search(key, len(prefix)) for key in keys)
    return max((match.group(1) for match in found if match), default=None)


def _plannable(
    found: Iterable[Found],
    planner: Planner,
    probes: ServerProbes,
    recorded: dict[str, LedgerEntry],
    *,
    bucket: str,
) -> Iterator[PlannedUpload | Finding]:
    """The files to check, with each key where the upload put it, and a finding for
    every local file ``upload`` refuses or cannot read (so it is not in S3). Keys are
    claimed in batches, as ``upload`` claims them: two files of one batch with one key
    are both refused; a later file loses to the one that has the key already."""
    batch: list[PlannedUpload] = []
    for path in found:
        if isinstance(path, Skipped):
            if path.error_class not in INFORMATIONAL_SKIPS:  # upload fails it
                yield Finding("", str(path.path), NOT_UPLOADABLE, "discovery", path.reason)
            continue
        planned = planner.plan(path)
        if planned is None:
            continue
        if isinstance(planned, Refused):
            yield _refused(planned)
            continue
        if "\\" in planned.key and probes.folds_backslash(bucket, near=planned.key):
            folded, unsafe = planner.claims.fold([planned])  # where the upload put it
            yield from (_refused(refusal) for refusal in unsafe)
            if not folded:
                continue
            planned = folded[0]
        batch.append(planned)
        if len(batch) >= BATCH:
            yield from _claimed(batch, planner, recorded)
            batch = []
    yield from _claimed(batch, planner, recorded)


def _claimed(
    batch: list[PlannedUpload], planner: Planner, recorded: dict[str, LedgerEntry]
) -> Iterator[PlannedUpload | Finding]:
    if not batch:
        return
    known = {item.key: recorded[item.key] for item in batch if item.key in recorded}
    kept, others = planner.claims.settle(batch, known)
    # a duplicate's content is in S3 under the key of the file that has it first
    yield from (_refused(other) for other in others if isinstance(other, Refused))
    yield from kept


def _refused(refusal: Refused) -> Finding:
    """A selected local file that ``upload`` refuses (so it is not in S3), and why."""
    return Finding(
        refusal.key,
        str(refusal.source.path),
        NOT_UPLOADABLE,
        "plan",
        f"{refusal.error_class}: {refusal.reason}",
        refusal.source,
    )


def _local(
    item: PlannedUpload,
    obj: ObjectInfo | None,
    entry: LedgerEntry | None,
    *,
    store: ObjectStore,
    settings: Settings,
    deep: bool,
) -> Finding:
    source = item.source
    path = str(source.path)
    if obj is None:
        done = entry is not None and entry.status == Status.DONE
        kind = "ledger-done-but-gone" if done else "missing"
        return Finding(item.key, path, kind, "listing", "not in S3", source)
    if obj.size != source.size:
        return Finding(
            item.key,
            path,
            "size-mismatch",
            "size",
            f"S3 {obj.size} bytes, local {source.size}",
            source,
        )
    if deep:
        info = store.head_object(item.bucket, item.key)
        if info is None:
            return Finding(item.key, path, "missing", "listing", "gone during verify", source)
        equal, tier = _deep_match(item, info, store=store, settings=settings)
        return Finding(
            item.key,
            path,
            OK if equal else "checksum-mismatch",
            tier,
            "" if equal else "content differs",
            source,
        )
    if entry is not None and entry.status == Status.DONE:
        if entry.size == source.size and entry.mtime_ns == source.mtime_ns:
            return Finding(item.key, path, OK, "ledger", "", source)
        return Finding(
            item.key, path, "changed-locally", "ledger", "modified since it was uploaded", source
        )
    info = store.head_object(item.bucket, item.key)
    stored = info.metadata.get("mtime") if info is not None else None
    if stored is not None:
        local = datetime.fromtimestamp(source.mtime_ns / 1e9, UTC).isoformat()
        if stored == local:
            return Finding(item.key, path, OK, "mtime-metadata", "", source)
        return Finding(
            item.key,
            path,
            "changed-locally",
            "mtime-metadata",
            f"S3 has mtime {stored}, local {local}",
            source,
        )
    return Finding(item.key, path, OK, "size", "same size (weakest proof)", source)


def _deep_match(
    item: PlannedUpload, info: ObjectInfo, *, store: ObjectStore, settings: Settings
) -> tuple[bool, str]:
    """``--deep``: the file re-read against S3's checksum of whatever algorithm the
    object has, a COMPOSITE one (``--checksum sha256`` multipart) over its part layout
    as restore computes it; else the tiers ``remote_matches`` takes."""
    proof = choose_proof(info, etag_is_md5=settings.sse is None, composite=True)
    if not proof.parts:
        equal, tier, _ = remote_matches(item, info, settings=settings, any_algorithm=True)
        return equal, tier
    path = str(item.source.path)
    layout = _part_sizes(store, item, info.size, proof.parts, exact=False)
    if proof.matches(hash_file(path, proof, layout=layout)):
        return True, proof.tier
    exact = _part_sizes(store, item, info.size, proof.parts, exact=True)
    return exact != layout and proof.matches(hash_file(path, proof, layout=exact)), proof.tier


def _part_sizes(
    store: ObjectStore, item: PlannedUpload, size: int, parts: int, *, exact: bool
) -> list[int]:
    """The object's part sizes: uniform from part 1's, or each part's own."""

    def part(number: int) -> int:
        info = store.stat_object(item.bucket, item.key, part_number=number)
        return info.size if info is not None else 0

    if exact:
        return [part(n) for n in range(1, parts + 1)]
    first = part(1)
    last = size - (parts - 1) * first
    if not 0 < last <= first:
        return _part_sizes(store, item, size, parts, exact=True)
    return [first] * (parts - 1) + [last]


def ordered(findings: Sequence[Finding]) -> list[Finding]:
    """Problems first, in order of gravity, then the ok ones."""
    rank = {kind: index for index, kind in enumerate(PROBLEM_ORDER)}
    return sorted(findings, key=lambda f: (rank.get(f.kind, 0), f.key))
