"""``DryRunStore``: passes reads through and refuses every write.

A dry run plans with real listings and HEADs but provably sends no write
request: any write reaching this wrapper is a bug and raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from s3stow.store.base import ObjectBody, ObjectInfo, ObjectStore, PartInfo


class DryRunWriteError(RuntimeError):
    """A write was attempted during a dry run."""


class DryRunStore:
    """Read-only view of another ``ObjectStore``."""

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner

    @property
    def transient_errors(self) -> int:
        return int(getattr(self.inner, "transient_errors", 0))

    def custom_endpoint(self) -> bool:
        return self.inner.custom_endpoint()

    def store_id(self) -> str:
        return self.inner.store_id()

    def signs_payload(self, bucket: str) -> bool:
        return self.inner.signs_payload(bucket)

    def head_bucket(self, bucket: str) -> None:
        self.inner.head_bucket(bucket)

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        return self.inner.head_object(bucket, key)

    def list_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list_objects(bucket, prefix)

    def list_parts(self, bucket: str, key: str, *, upload_id: str) -> list[PartInfo]:
        return self.inner.list_parts(bucket, key, upload_id=upload_id)

    def list_multipart_uploads(self, bucket: str, prefix: str) -> list[tuple[str, str]]:
        return self.inner.list_multipart_uploads(bucket, prefix)

    def _refuse(self, *_: Any, **__: Any) -> Any:
        raise DryRunWriteError("a write request was attempted during --dry-run")

    put_object = _refuse
    create_multipart = _refuse
    upload_part = _refuse
    complete_multipart = _refuse
    abort_multipart = _refuse
    delete_object = _refuse
    restore_object = _refuse  # a restore request is a write: it creates a readable copy

    def stat_object(
        self, bucket: str, key: str, *, part_number: int | None = None
    ) -> ObjectInfo | None:
        return self.inner.stat_object(bucket, key, part_number=part_number)

    def list_objects_detailed(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list_objects_detailed(bucket, prefix)

    def get_object(self, bucket: str, key: str, **kw: Any) -> ObjectBody:
        return self.inner.get_object(bucket, key, **kw)
