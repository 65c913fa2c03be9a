"""``ObservedStore``: times every request of another ``ObjectStore`` for a watcher.

The one place where request latency and requests in flight are seen: the engine
wraps its store in this when it is given a ``RequestObserver`` (``--metrics-port``),
and nothing else in the engine knows about metrics. Each call is reported by its S3
operation name (``PutObject``, ``UploadPart``, ``CompleteMultipartUpload``...) when
it starts and when it ends, with its duration and, if it raised, the error's class.
A call's duration includes botocore's retries of that request. Listings are passed
through untimed: their pages are fetched lazily while the caller iterates, so no
single call is a request. A ``GetObject`` is timed until its answer's headers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from s3stow.store.base import (
    ObjectBody,
    ObjectInfo,
    ObjectStore,
    PartInfo,
    PutResult,
    WriteOptions,
)
from s3stow.store.body import FileRange
from s3stow.store.checksums import Digest

T = TypeVar("T")


class RequestObserver(Protocol):
    """Told about each request; called from the transfer threads (thread-safe)."""

    def request_started(self, operation: str) -> None: ...

    def request_finished(self, operation: str, seconds: float, error: str | None) -> None: ...


class ObservedStore:
    """An ``ObjectStore`` reporting each request of ``inner`` to ``observer``."""

    def __init__(self, inner: ObjectStore, observer: RequestObserver) -> None:
        self.inner = inner
        self.observer = observer

    @property
    def transient_errors(self) -> int:
        return int(getattr(self.inner, "transient_errors", 0))

    def _timed(self, operation: str, call: Callable[[], T]) -> T:
        self.observer.request_started(operation)
        started = time.perf_counter()
        error: str | None = None
        try:
            return call()
        except BaseException as exc:
            error = getattr(exc, "code", None) or type(exc).__name__
            raise
        finally:
            self.observer.request_finished(operation, time.perf_counter() - started, error)

    def custom_endpoint(self) -> bool:
        return self.inner.custom_endpoint()

    def store_id(self) -> str:
        return self.inner.store_id()

    def signs_payload(self, bucket: str) -> bool:
        return self.inner.signs_payload(bucket)

    def head_bucket(self, bucket: str) -> None:
        self._timed("HeadBucket", lambda: self.inner.head_bucket(bucket))

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        return self._timed("HeadObject", lambda: self.inner.head_object(bucket, key))

    def list_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list_objects(bucket, prefix)

    def put_object(
        self,
        bucket: str,
        key: str,
        body: bytes | FileRange,
        *,
        digest: Digest | None,
        options: WriteOptions,
        content_md5: str | None = None,
    ) -> PutResult:
        return self._timed(
            "PutObject",
            lambda: self.inner.put_object(
                bucket, key, body, digest=digest, options=options, content_md5=content_md5
            ),
        )

    def create_multipart(
        self, bucket: str, key: str, *, algorithm: str | None, options: WriteOptions
    ) -> str:
        return self._timed(
            "CreateMultipartUpload",
            lambda: self.inner.create_multipart(bucket, key, algorithm=algorithm, options=options),
        )

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
    ) -> PutResult:
        return self._timed(
            "UploadPart",
            lambda: self.inner.upload_part(
                bucket,
                key,
                upload_id=upload_id,
                number=number,
                body=body,
                digest=digest,
                content_md5=content_md5,
            ),
        )

    def list_parts(self, bucket: str, key: str, *, upload_id: str) -> list[PartInfo]:
        return self._timed(
            "ListParts", lambda: self.inner.list_parts(bucket, key, upload_id=upload_id)
        )

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
    ) -> PutResult:
        return self._timed(
            "CompleteMultipartUpload",
            lambda: self.inner.complete_multipart(
                bucket,
                key,
                upload_id=upload_id,
                parts=parts,
                algorithm=algorithm,
                full_checksum=full_checksum,
                if_none_match=if_none_match,
            ),
        )

    def abort_multipart(self, bucket: str, key: str, *, upload_id: str) -> None:
        self._timed(
            "AbortMultipartUpload",
            lambda: self.inner.abort_multipart(bucket, key, upload_id=upload_id),
        )

    def delete_object(self, bucket: str, key: str) -> None:
        self._timed("DeleteObject", lambda: self.inner.delete_object(bucket, key))

    def list_multipart_uploads(self, bucket: str, prefix: str) -> list[tuple[str, str]]:
        return self._timed(
            "ListMultipartUploads", lambda: self.inner.list_multipart_uploads(bucket, prefix)
        )

    def stat_object(
        self, bucket: str, key: str, *, part_number: int | None = None
    ) -> ObjectInfo | None:
        return self._timed(
            "HeadObject", lambda: self.inner.stat_object(bucket, key, part_number=part_number)
        )

    def list_objects_detailed(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        return self.inner.list_objects_detailed(bucket, prefix)

    def get_object(self, bucket: str, key: str, **kw: Any) -> ObjectBody:
        return self._timed("GetObject", lambda: self.inner.get_object(bucket, key, **kw))

    def restore_object(self, bucket: str, key: str, *, days: int, tier: str) -> str:
        return self._timed(
            "RestoreObject", lambda: self.inner.restore_object(bucket, key, days=days, tier=tier)
        )
