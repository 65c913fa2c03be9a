"""The rows a job step reads and hands to a worker, and the row-level helpers every
step shares (locking in one order: upload, then item, then parts).

A claimed row carries the ``version`` it was claimed at: the fencing token every later
write of that claim is conditional on (``holds``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select, update

from s3stow.job import schema
from s3stow.localfiles import FileIdentity

UPLOADS, PARTS, ITEMS = schema.job_uploads, schema.job_parts, schema.job_items
ACTIVE = ("parts", "completing", "restarting")  # an upload in these states is in S3


@dataclass(frozen=True, slots=True)
class Claimed:
    """An item as claimed by a worker."""

    id: int
    version: int  # the item's version under this claim
    path: str
    rel_path: str
    key: str
    size: int
    mtime_ns: int
    grp: str | None


@dataclass(frozen=True, slots=True)
class SplitFile:
    """A split upload as one step read it: its file, upload id and versions."""

    item_id: int
    path: str
    rel_path: str
    key: str
    grp: str | None
    upload_id: str
    size: int
    mtime_ns: int
    ctime_ns: int | None
    inode: int | None
    checksum_algorithm: str | None
    version: int  # the upload row's version (under a completion or restart claim: its token)
    item_version: int  # the item's version while it is this upload's
    restarts: int

    @property
    def identity(self) -> FileIdentity:
        return FileIdentity(self.size, self.mtime_ns, self.ctime_ns, self.inode)


_FILE = (
    UPLOADS.c.item_id, ITEMS.c.path, ITEMS.c.rel_path, ITEMS.c.key, ITEMS.c.grp,
    UPLOADS.c.upload_id, UPLOADS.c.size, UPLOADS.c.mtime_ns, UPLOADS.c.ctime_ns,
    UPLOADS.c.inode, UPLOADS.c.checksum_algorithm, UPLOADS.c.version,
    UPLOADS.c.item_version, UPLOADS.c.restarts,
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClaimedPart:
    file: SplitFile
    number: int
    offset: int
    length: int
    version: int


@dataclass(frozen=True, slots=True)
class DonePart:
    number: int
    etag: str
    checksum: str | None
    length: int


@dataclass(frozen=True, slots=True)
class UploadWork:
    """A claimed completion (``complete``, with the done parts) or restart."""

    kind: str
    file: SplitFile
    parts: list[DonePart]


def holds(row: Any, worker: str, version: int, state: str = "claimed") -> bool:
    """``row`` is in ``state`` at ``version``, leased to ``worker``: still this claim."""
    return (
        row is not None
        and row.state == state
        and row.version == version
        and row.lease_owner == worker
    )


def lock_upload(conn: Connection, item_id: int, *, share: bool = False) -> Any:
    return conn.execute(
        select(UPLOADS).where(UPLOADS.c.item_id == item_id).with_for_update(read=share)
    ).first()


def lock_item(conn: Connection, item_id: int) -> Any:
    return conn.execute(select(ITEMS).where(ITEMS.c.id == item_id).with_for_update()).first()


def split_files(conn: Connection, item_ids: set[int]) -> dict[int, SplitFile]:
    query = (
        select(*_FILE)
        .join(ITEMS, ITEMS.c.id == UPLOADS.c.item_id)
        .where(UPLOADS.c.item_id.in_(item_ids))
    )
    return {row[0]: SplitFile(*row) for row in conn.execute(query)}  # type: ignore[call-arg]


def free_parts(conn: Connection, item_ids: list[int]) -> None:
    """Give back the claimed parts of uploads that stopped taking parts."""
    conn.execute(
        update(PARTS)
        .where(PARTS.c.item_id.in_(item_ids), PARTS.c.state == "claimed")
        .values(state="pending", lease_owner=None, lease_until=None,
                version=PARTS.c.version + 1)
    )  # fmt: skip
