"""The ObjectStore protocol: the only S3 operations the engine may use.

Everything above this line (engine, compare, verify) talks to an
``ObjectStore``; retry, limits, dry-run and fault injection wrap it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from s3stow.store.body import FileRange
from s3stow.store.checksums import Digest


@dataclass(frozen=True, slots=True)
class WriteOptions:
    """Per-object attributes of a write (from the settings and the file)."""

    content_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    sse: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    if_none_match: bool = False  # conditional create: fail if the key exists


@dataclass(frozen=True, slots=True)
class PutResult:
    """What S3 acknowledged for a completed write."""

    etag: str
    checksum: str | None = None
    version_id: str | None = None


@dataclass(frozen=True, slots=True)
class PartInfo:
    """A part as ListParts reports it."""

    number: int
    etag: str
    size: int
    checksum: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """An object's listing or HEAD view."""

    key: str
    size: int
    etag: str
    checksum: str | None = None
    checksum_algorithm: str | None = None
    checksum_type: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    last_modified: float | None = None
    # what restore reads (HEAD/GET, and the class from a listing):
    storage_class: str | None = None
    restore: str | None = None  # the x-amz-restore header of an archived object
    sse: str | None = None  # server-side encryption: AES256, aws:kms, ...
    version_id: str | None = None
    parts: int | None = None  # x-amz-mp-parts-count (a HEAD with a part number)


class ObjectBody(Protocol):
    """A GetObject answer: the object's headers, where the body starts, and the body
    streamed in chunks (errors while streaming arrive translated, as from the store).
    A chunk is valid until the next one is asked for: it may be a view of a buffer the
    body reuses (write it and hash it, never keep it)."""

    info: ObjectInfo  # size: the whole object's
    start: int  # offset of the first byte of this body in the object
    length: int  # bytes in this body

    def chunks(self, size: int) -> Iterator[bytes | memoryview]: ...

    def close(self) -> None: ...


class ObjectStore(Protocol):
    """The S3 operations s3stow needs, and nothing more."""

    def custom_endpoint(self) -> bool:
        """Whether the endpoint in use is a configured one rather than AWS's own."""
        ...

    def store_id(self) -> str:
        """Which S3 this is, as the ledger records it beside each outcome: a ``done``
        row proves an object only on the store it was reached against."""
        ...

    def signs_payload(self, bucket: str) -> bool:
        """Whether writes to ``bucket`` carry the payload's SHA-256 in the signature."""
        ...

    def head_bucket(self, bucket: str) -> None: ...

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None: ...

    def list_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]: ...

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes | FileRange,
        *,
        digest: Digest | None,
        options: WriteOptions,
        content_md5: str | None = None,
    ) -> PutResult: ...

    def create_multipart(
        self, bucket: str, key: str, *, algorithm: str | None, options: WriteOptions
    ) -> str: ...

    def upload_part(
        self,
        bucket: str,
        key: str,
        *,
        upload_id: str,
        number: int,
        body: bytes | FileRange,
        digest: Digest | None,
        content_md5: str | None = None,
    ) -> PutResult: ...

    def list_parts(self, bucket: str, key: str, *, upload_id: str) -> list[PartInfo]: ...

    def complete_multipart(
        self,
        bucket: str,
        key: str,
        *,
        upload_id: str,
        parts: Sequence[tuple[int, str, str | None]],
        algorithm: str | None,
        full_checksum: str | None,
        if_none_match: bool = False,
    ) -> PutResult: ...

    def abort_multipart(self, bucket: str, key: str, *, upload_id: str) -> None:
        """Abort an unfinished multipart upload; an id S3 no longer knows (completed,
        aborted, expired: ``NoSuchUpload``) is done already, not an error."""
        ...

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete one object (s3stow's own probe objects only: ``probes.py``)."""
        ...

    def list_multipart_uploads(self, bucket: str, prefix: str) -> list[tuple[str, str]]: ...

    # ---- reading objects back (restore) -------------------------------------------------
    def stat_object(
        self, bucket: str, key: str, *, part_number: int | None = None
    ) -> ObjectInfo | None:
        """HEAD with checksums, storage class, restore state and encryption; with
        ``part_number`` the size is that part's and ``parts`` the part count."""
        ...

    def list_objects_detailed(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix`` with its storage class."""
        ...

    def get_object(
        self,
        bucket: str,
        key: str,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
        version_id: str | None = None,
        checksum_mode: bool = False,
    ) -> ObjectBody:
        """GetObject (``byte_range``: first and last byte, inclusive); with ``if_match``
        a changed object fails with code ``PreconditionFailed``; with ``checksum_mode``
        the stored checksum comes back too (whole objects only)."""
        ...

    def restore_object(self, bucket: str, key: str, *, days: int, tier: str) -> str:
        """Ask for a readable copy of an archived object for ``days``: ``requested``,
        ``in-progress`` (asked before) or ``ready`` (a copy is already readable)."""
        ...
