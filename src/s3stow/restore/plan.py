"""The plan stage of a restore: which objects, to which local paths, and what to do.

``RestorePlanner`` maps each object to its path under DEST (``paths.py``: unsafe keys
and collisions are refused with the rule named), applies ``--include``/``--exclude``
to the relative path, and skips folder markers (keys ending in ``/``). ``decide``
then settles each item from the ledger and the local disk alone, without a request:
restored before and untouched since (same object ETag and size, same local size and
mtime) is skipped; a ranged download the ledger knows is resumed; a local file in
the way is left to the worker to compare; anything else is new.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from s3stow.ledger.restores import RestoreEntry, RestoreLedger, RestoreRecord
from s3stow.models import Decision, PlannedUpload, Reason, SourceFile, Status, UploadResult
from s3stow.plan.discover import ROOT_GROUP
from s3stow.plan.ownfiles import OwnFiles
from s3stow.plan.select import Selector
from s3stow.restore.glacier import archived
from s3stow.restore.paths import PathClaims, PathRules, UnsafePath, local_path, relative_parts
from s3stow.store.base import ObjectInfo


@dataclass(frozen=True, slots=True)
class RestoreItem:
    """One object and the local file it restores to (``source.path``)."""

    source: SourceFile  # path: the destination; size: the object's; group: top folder
    bucket: str
    info: ObjectInfo  # from the listing, the ledger (--run) or the media table
    expect_md5: str | None = None  # archive restore: the row's md5_sum
    run: str | None = None  # restore --run: the upload run that recorded ``info``

    @property
    def key(self) -> str:
        return self.info.key

    @property
    def path(self) -> Path:
        return self.source.path

    @property
    def planned(self) -> PlannedUpload:
        """The item in the pipeline's common shape (for the observers)."""
        return PlannedUpload(self.source, self.bucket, self.key)

    def failed(self, error_class: str, message: str) -> UploadResult:
        return UploadResult(
            self.path,
            self.bucket,
            self.key,
            Status.FAILED,
            size=self.info.size,
            error_class=error_class,
            error=message,
        )

    def record(self, result: UploadResult) -> RestoreRecord | None:
        """The ledger row for this item's outcome (``None`` when the restored file is
        gone again before it could be recorded)."""
        etag = result.etag or self.info.etag or None
        if result.status not in (Status.DONE, Status.SKIPPED):
            return RestoreRecord(
                self.bucket,
                self.key,
                str(self.path),
                self.info.size,
                "failed",
                etag=etag,
                error_class=result.error_class,
                error_message=result.error,
            )
        try:
            local = os.stat(self.path)
        except OSError:
            return None
        return RestoreRecord(
            self.bucket,
            self.key,
            str(self.path),
            local.st_size,
            "done",
            etag=etag,
            mtime_ns=local.st_mtime_ns,
            tier=result.tier,
            checksum=result.checksum,
        )


@dataclass(frozen=True, slots=True)
class RestoreRefusal:
    """An object the plan refused (an unsafe key, a path collision): the failed result,
    and the local file it would have been (``source``: its path, size and group, so it
    is counted where an item of that folder is, as an upload's refusals are)."""

    source: SourceFile
    result: UploadResult


def refusal(
    root: Path, rel: str, result: UploadResult, error_class: str, message: str
) -> RestoreRefusal:
    """``result`` refused as ``error_class``: ``rel`` (the key below the prefix) is the
    path under ``root`` it asked for, unsafe or not (never opened, only named)."""
    parts = rel.split("/")
    top = parts[0] if len(parts) > 1 and parts[0] not in ("", ".", "..") else ROOT_GROUP
    path = Path(os.sep.join([str(root), *parts]))  # no segment may reset the root
    source = SourceFile(path, rel, result.size or 0, 0, root, top)
    return RestoreRefusal(source, _refuse(replace(result, path=path), error_class, message))


def make_item(
    root: Path,
    parts: list[str],
    bucket: str,
    info: ObjectInfo,
    *,
    expect_md5: str | None = None,
    run: str | None = None,
    path: Path | None = None,
) -> RestoreItem:
    """The item restoring ``info`` to ``root`` joined with ``parts`` (``path``, when the
    caller has it already: ``local_path``'s)."""
    rel = "/".join(parts)
    mtime_ns = int(info.last_modified * 1_000_000) * 1000 if info.last_modified else 0
    source = SourceFile(
        path if path is not None else root.joinpath(*parts),
        rel,
        info.size,
        mtime_ns,
        root,
        parts[0] if len(parts) > 1 else ROOT_GROUP,
    )
    return RestoreItem(source, bucket, info, expect_md5, run)


class RestorePlanner:
    """Key-to-path planning for one restore run into ``root`` (a resolved directory)."""

    def __init__(
        self,
        root: Path,
        *,
        rules: PathRules | None = None,
        selector: Selector | None = None,
        run: str | None = None,
        own: OwnFiles | None = None,
    ) -> None:
        self.root = root
        self.own = own  # the run's ledger, status and failures files: never written over
        self.run = run  # restore --run: the upload run whose objects these are
        self.rules = rules or PathRules.for_this_os()
        self.claims = PathClaims(self.rules)
        self.selector = selector
        self._inside: set[str] = set()  # folders already resolved inside the root
        self.not_selected = 0  # objects --include/--exclude left out

    def plan(
        self, bucket: str, prefix: str, info: ObjectInfo
    ) -> RestoreItem | RestoreRefusal | None:
        """The item, a refusal, or ``None`` (not selected, or a folder marker)."""
        if info.key.endswith("/") and info.key.startswith(prefix) and not info.size:
            return None  # a folder marker ("photos/") from a console or another tool
        if self.selector is not None and self.selector.active and info.key.startswith(prefix):
            probe = SourceFile(self.root, info.key[len(prefix) :], info.size, 0, self.root)
            if self.selector.takes(probe) is not None:
                self.not_selected += 1
                return None
        if info.key.endswith("/"):  # not a marker: its bytes have no file name to go to
            message = (
                f"key ends with '/' (a folder's name) but the object holds {info.size} "
                "bytes; not written"
            )
            return self._refused(bucket, info, _below(info.key, prefix), "unsafe-path", message)
        try:
            parts = relative_parts(info.key, prefix, self.rules)
            path = local_path(self.root, parts, checked=self._inside)
        except (UnsafePath, OSError) as exc:
            message = f"{exc}; not written"
            return self._refused(bucket, info, _below(info.key, prefix), "unsafe-path", message)
        what = self.own.what(path) if self.own is not None else None
        if what is not None:  # --overwrite or not: the run writes it, it would undo ours
            message = (
                f"{path} is {what} of this run; not replaced (restore into another folder, "
                "or give that file another place)"
            )
            return self._refused(bucket, info, "/".join(parts), "local-exists", message)
        collision = self.claims.claim(parts, info.key)
        if collision is not None:
            message = f"{path}: {collision}; not written"
            return self._refused(bucket, info, "/".join(parts), "path-collision", message)
        return make_item(self.root, parts, bucket, info, run=self.run, path=path)

    def _refused(
        self, bucket: str, info: ObjectInfo, rel: str, error_class: str, message: str
    ) -> RestoreRefusal:
        """``info`` refused as ``error_class`` (its result made only here, for a refusal)."""
        failed = UploadResult(self.root, bucket, info.key, Status.FAILED, size=info.size)
        return refusal(self.root, rel, failed, error_class, message)


def _below(key: str, prefix: str) -> str:
    """``key`` below ``prefix`` (a refusal names the path it asked for)."""
    return key[len(prefix) :] if key.startswith(prefix) else key


def _refuse(result: UploadResult, error_class: str, message: str) -> UploadResult:
    return UploadResult(
        result.path,
        result.bucket,
        result.key,
        Status.FAILED,
        size=result.size,
        error_class=error_class,
        error=message,
    )


def decide(
    items: Sequence[RestoreItem], *, ledger: RestoreLedger | None
) -> list[tuple[Decision, RestoreEntry | None]]:
    """A decision per item from the ledger and the local disk, and its ledger entry."""
    entries: dict[tuple[str, str, str], RestoreEntry] = {}
    if ledger is not None:
        for bucket in {item.bucket for item in items}:
            keys = [item.key for item in items if item.bucket == bucket]
            found = ledger.lookup(bucket, keys)
            entries.update({(bucket, *where): entry for where, entry in found.items()})
    decided = []
    for item in items:
        entry = entries.get((item.bucket, item.key, str(item.path)))
        decided.append((Decision(item.planned, *_verdict(item, entry)), entry))
    return decided


def _verdict(item: RestoreItem, entry: RestoreEntry | None) -> tuple[bool, Reason]:
    try:
        local = os.lstat(item.path)
    except FileNotFoundError:
        local = None
    except NotADirectoryError:  # a local file where a folder should be: the worker keeps it
        return True, Reason.LOCAL_EXISTS
    except OSError:  # the worker reports it
        return True, Reason.NEW
    restored = (
        local is not None
        and not stat.S_ISDIR(local.st_mode)
        and entry is not None
        and entry.status == "done"
        and entry.size == item.info.size == local.st_size
        and entry.mtime_ns == local.st_mtime_ns
        and (not entry.etag or not item.info.etag or entry.etag == item.info.etag)
    )
    if restored:
        return False, Reason.LEDGER_DONE
    if local is not None:
        return True, Reason.LOCAL_EXISTS
    if entry is not None and entry.download_id and entry.etag == item.info.etag:
        return True, Reason.RESUME
    if archived(item.info):
        return True, Reason.ARCHIVED
    return True, Reason.NEW
