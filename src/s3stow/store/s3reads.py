"""Reading through ``S3Routing``: listings, HEADs, GETs and Glacier restore requests.

Listings go page by page through the fast path when it can, else through botocore
(from the same continuation token; while the fast path learns ListObjectsV2, the first
page is kept short, ``LEARNING_PAGE``). Restore's GetObject and HeadObject take the fast
path once it has learned their shape (``_read``): one request of an unknown shape
teaches it while the others wait, and a missing key's answer on the fast path is read
by botocore (``Replay``), not sent again. A GetObject body is read in chunks: botocore's
(``_Body``, its errors translated, its checksum check left to the caller's proof) or the
fast path's (``_FastBody``, one buffer, a broken connection a transient error).
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError, FlexibleChecksumError

from s3stow.errors import S3StowError, TransferError
from s3stow.store import http1
from s3stow.store.base import ObjectBody, ObjectInfo
from s3stow.store.replay import Answered
from s3stow.store.s3routing import S3Routing, checksum_of, etag_of
from s3stow.store.translate import error_code
from s3stow.store.wire import get_headers

if TYPE_CHECKING:
    from s3stow.store.fastlearn import Outgoing
    from s3stow.store.fastpath import FastPath

log = logging.getLogger(__name__)
_R = TypeVar("_R")
# The keys of a listing's first page while the fast path learns ListObjectsV2 from
# botocore's request: botocore parses a page at about 70 us a key (a 1,000-key page
# 70 ms of CPU, more than a remote round trip), the fast path's parser at a tenth of it.
LEARNING_PAGE = 100


class S3Reads(S3Routing):
    """The reading operations of ``S3Store``: listings, object HEADs and GETs, and
    requests to restore archived objects."""

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            response = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self.translate(exc, bucket, key) from exc
        except Exception as exc:
            raise self.translate(exc, bucket, key) from exc
        return _info_of(key, response, size=int(response.get("ContentLength", 0)))

    def list_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """Every object under ``prefix``, page by page: each page through the fast
        path when it can, else through botocore (from the same continuation token)."""
        return self._listing(bucket, prefix, detailed=False)

    def list_objects_detailed(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        """``list_objects`` with each object's storage class (restore)."""
        return self._listing(bucket, prefix, detailed=True)

    def _listing(self, bucket: str, prefix: str, *, detailed: bool) -> Iterator[ObjectInfo]:
        token: str | None = None
        _ = self.client  # made before the first page: its fast path decides that page's size
        while True:
            size = self.list_page_size
            fast = self._fast
            page = None
            if fast is not None and fast.knows(bucket, "ListObjectsV2", {}):
                page = fast.list_page(bucket, prefix, token, max_keys=size, storage_class=detailed)
            if page is None:
                learning = token is None and fast is not None and fast.off_reason(bucket) is None
                first = min(size or 1000, LEARNING_PAGE) if learning else size
                page = self._list_page(bucket, prefix, token, detailed=detailed, max_keys=first)
            objects, token = page
            yield from objects
            if token is None:
                return

    def _list_page(
        self,
        bucket: str,
        prefix: str,
        token: str | None,
        *,
        detailed: bool = False,
        max_keys: int | None = None,
    ) -> tuple[list[ObjectInfo], str | None]:
        extra: dict[str, Any] = {"ContinuationToken": token} if token is not None else {}
        if max_keys is not None:
            extra["MaxKeys"] = max_keys
        try:
            response = self.through_botocore(
                bucket,
                None,
                "ListObjectsV2",
                {},
                lambda client: client.list_objects_v2(Bucket=bucket, Prefix=prefix, **extra),
            )
        except Exception as exc:
            raise self.translate(exc, bucket, None) from exc
        objects = []
        for item in response.get("Contents", []):
            algorithms = item.get("ChecksumAlgorithm") or []
            objects.append(
                ObjectInfo(
                    key=item["Key"],
                    size=int(item["Size"]),
                    etag=etag_of(item.get("ETag")),
                    checksum_algorithm=algorithms[0] if algorithms else None,
                    checksum_type=item.get("ChecksumType"),
                    last_modified=item["LastModified"].timestamp(),
                    storage_class=item.get("StorageClass") if detailed else None,
                )
            )
        truncated = bool(response.get("IsTruncated"))
        return objects, response.get("NextContinuationToken") if truncated else None

    # ---- reading objects back (restore): the fast path once it has learned the shape --
    def _read_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """``args`` with ``ChecksumMode`` when botocore adds it to every read anyway
        (``response_checksum_validation = when_supported``), so the fast path's headers
        are the ones botocore sends."""
        config = getattr(getattr(self.client, "meta", None), "config", None)
        if getattr(config, "response_checksum_validation", None) == "when_supported":
            return {**args, "ChecksumMode": "ENABLED"}
        return args

    def stat_object(
        self, bucket: str, key: str, *, part_number: int | None = None
    ) -> ObjectInfo | None:
        args: dict[str, Any] = {"ChecksumMode": "ENABLED"}
        headers = get_headers(args) if self._fast_settings is not None else None
        extra: dict[str, Any] = {"PartNumber": part_number} if part_number else {}

        def fast(path: FastPath, prepared: Outgoing) -> ObjectInfo | None:
            return path.head(bucket, key, part_number=part_number, prepared=prepared)

        def botocore(*, attempted: bool) -> ObjectInfo | None:
            try:
                response = self.through_botocore(
                    bucket,
                    key,
                    "HeadObject",
                    headers,
                    lambda client: client.head_object(Bucket=bucket, Key=key, **args, **extra),
                    attempted=attempted,
                )
            except ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise self.translate(exc, bucket, key) from exc
            except Exception as exc:
                raise self.translate(exc, bucket, key) from exc
            return _info_of(key, response, size=int(response.get("ContentLength", 0)))

        return self._read(bucket, "HeadObject", headers, fast, botocore)

    def _read(
        self,
        bucket: str,
        operation: str,
        headers: Mapping[str, str] | None,
        fast: Callable[[FastPath, Outgoing], _R | None],
        botocore: Callable[..., _R],
    ) -> _R:
        """A GetObject/HeadObject: the fast path once it knows the shape (one request of
        an unknown shape teaches it while the others wait, ``LearningGate``), else
        botocore (with one attempt fewer after a fast attempt). A missing key's answer
        on the fast path is read by botocore (``Replay``), not sent again."""
        path = self._fast
        if path is None or headers is None:
            return botocore(attempted=False)
        with self._route(path, bucket, operation, headers) as prepared:
            if prepared is None:
                return botocore(attempted=False)
        try:
            answer = fast(path, prepared)
        except Answered as answered:
            with self._replay.answering(answered.received):
                return botocore(attempted=False)
        return answer if answer is not None else botocore(attempted=True)

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
        args: dict[str, Any] = {}
        if byte_range is not None:
            args["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        if if_match:
            args["IfMatch"] = f'"{if_match}"'
        if version_id:
            args["VersionId"] = version_id
        if checksum_mode:
            args["ChecksumMode"] = "ENABLED"
        headers = None
        if self._fast_settings is not None:
            args = self._read_args(args)
            headers = get_headers(args)

        def fast(path: FastPath, prepared: Outgoing) -> ObjectBody | None:
            got = path.get(bucket, key, prepared=prepared)
            if got is None:
                return None
            info, start, length, stream = got
            where = (bucket, key)
            return _FastBody(
                stream, info, start, length, where=where, on_broken=self._count_transient
            )

        def botocore(*, attempted: bool) -> ObjectBody:
            try:
                response = self.through_botocore(
                    bucket,
                    key,
                    "GetObject",
                    headers,
                    lambda client: client.get_object(Bucket=bucket, Key=key, **args),
                    attempted=attempted,
                )
            except Exception as exc:
                raise self.translate(exc, bucket, key) from exc
            length = int(response.get("ContentLength", 0))
            start, size = 0, length
            content_range = response.get("ContentRange")  # "bytes 0-99/1000"
            if content_range:
                span, _, total = content_range.split(" ", 1)[-1].partition("/")
                start = int(span.split("-", 1)[0])
                size = int(total) if total.isdigit() else length
            info = _info_of(key, response, size=size)
            return _Body(
                response["Body"], info, start, length, where=(bucket, key), translate=self.translate
            )

        return self._read(bucket, "GetObject", headers, fast, botocore)

    def restore_object(self, bucket: str, key: str, *, days: int, tier: str) -> str:
        request = {"Days": days, "GlacierJobParameters": {"Tier": tier}}
        try:
            response = self.client.restore_object(Bucket=bucket, Key=key, RestoreRequest=request)
        except ClientError as exc:
            if error_code(exc) == "RestoreAlreadyInProgress":
                return "in-progress"
            raise self.translate(exc, bucket, key) from exc
        except Exception as exc:
            raise self.translate(exc, bucket, key) from exc
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 202))
        return "ready" if status == 200 else "requested"


class _Body:
    """A GetObject body read in chunks, its errors translated like the store's; botocore's
    checksum check is left to the caller's proof."""

    def __init__(
        self,
        stream: Any,
        info: ObjectInfo,
        start: int,
        length: int,
        *,
        where: tuple[str, str],
        translate: Callable[[Exception, str, str | None], S3StowError],
    ) -> None:
        self._stream = stream
        self.info = info
        self.start = start
        self.length = length
        self._where = where
        self._translate = translate

    def chunks(self, size: int) -> Iterator[bytes]:
        bucket, key = self._where
        try:
            while block := self._stream.read(size):
                yield block
        except FlexibleChecksumError as exc:
            # botocore's own check of a whole object raises at the end, after the last
            # byte; the caller's proof (which also covers ranges and COMPOSITE values,
            # where a server's header can mislead botocore) decides and reports it
            log.debug("s3://%s/%s: botocore's checksum check failed: %s", bucket, key, exc)
        except Exception as exc:
            raise self._translate(exc, bucket, key) from exc

    def close(self) -> None:
        self._stream.close()


class _FastBody:
    """A GetObject body the fast path streams off its connection. A connection that
    breaks after bytes were handed out is a transient ``TransferError`` (as botocore's
    truncated body is), so the retry layer repeats the whole attempt; the connection is
    kept for the next request only when the body was read to its end."""

    def __init__(
        self,
        stream: http1.Stream,
        info: ObjectInfo,
        start: int,
        length: int,
        *,
        where: tuple[str, str],
        on_broken: Callable[[], None],
    ) -> None:
        self._stream = stream
        self.info = info
        self.start = start
        self.length = length
        self._where = where
        self._on_broken = on_broken

    def chunks(self, size: int) -> Iterator[bytes | memoryview]:
        """The body through one buffer (``ObjectBody.chunks``): a new zeroed block per
        chunk cost a ``memset`` of every byte, 40% of a large GET's instructions."""
        buffer = memoryview(bytearray(min(size, self.length) or 1))
        try:
            while got := self._stream.readinto(buffer):
                yield buffer[:got]
        except (OSError, http.client.HTTPException) as exc:
            self._on_broken()
            bucket, key = self._where
            raise TransferError(
                f"{type(exc).__name__} on s3://{bucket}/{key} while its body arrived: {exc}",
                code="ResponseStreamingError",
                transient=True,
            ) from exc

    def close(self) -> None:
        self._stream.close()


def _info_of(key: str, response: dict[str, Any], *, size: int) -> ObjectInfo:
    """An ``ObjectInfo`` from a HeadObject or GetObject response."""
    checksum, algorithm = checksum_of(response)
    modified = response.get("LastModified")
    sse = response.get("ServerSideEncryption")
    if response.get("SSECustomerAlgorithm"):
        sse = "SSE-C"
    return ObjectInfo(
        key=key,
        size=size,
        etag=etag_of(response.get("ETag")),
        checksum=checksum,
        checksum_algorithm=algorithm,
        checksum_type=response.get("ChecksumType"),
        metadata=dict(response.get("Metadata") or {}),
        last_modified=modified.timestamp() if modified else None,
        storage_class=response.get("StorageClass"),
        restore=response.get("Restore"),
        sse=sse,
        version_id=response.get("VersionId"),
        parts=response.get("PartsCount"),
    )
