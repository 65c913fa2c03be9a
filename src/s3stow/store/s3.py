"""The botocore implementation of ``ObjectStore``.

Uses one thread-safe S3 client built from the settings (``client.py``), created
on first use, with the fast path (``fastpath.py``) in front of the hot operations
(the writes, listings, and restore's GetObject and HeadObject), and translates every
exception where it leaves botocore. botocore sends the first
request of each hot operation on each bucket, recorded (``capture.Recorder``), and
the fast path learns from it; a ``needs-retry`` observer tells the concurrency
limiter about throttling that botocore retried silently.
"""

from __future__ import annotations

import http.client
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from botocore.exceptions import ClientError, FlexibleChecksumError

from s3stow.config import Settings
from s3stow.errors import S3StowError, TransferError
from s3stow.logs import redact
from s3stow.store import http1
from s3stow.store.base import ObjectBody, ObjectInfo, PartInfo, PutResult, WriteOptions
from s3stow.store.body import FileRange
from s3stow.store.capture import Recorder, connection_of
from s3stow.store.checksums import Digest
from s3stow.store.client import make_client, make_session
from s3stow.store.learngate import LearningGate
from s3stow.store.replay import Answered, Replay
from s3stow.store.wire import (
    CHECKSUM_FIELDS,
    get_headers,
    put_headers,
    put_result,
    query_args,
)

if TYPE_CHECKING:
    from s3stow.store.fastpath import FastPath, Outgoing

from s3stow.store.translate import (
    THROTTLE_CODES,
    TRANSIENT_CODES,
    error_code,
    not_s3_answer,
    translate,
    translate_preflight,
)

log = logging.getLogger(__name__)
_R = TypeVar("_R")
# The keys of a listing's first page while the fast path learns ListObjectsV2 from
# botocore's request: botocore parses a page at about 70 us a key (a 1,000-key page
# 70 ms of CPU, more than a remote round trip), the fast path's parser at a tenth of it.
LEARNING_PAGE = 100
_OPERATIONS = {"put_object": "PutObject", "upload_part": "UploadPart"}


def _etag(value: str | None) -> str:
    return (value or "").strip('"')


def _checksum_of(response: dict[str, Any]) -> tuple[str | None, str | None]:
    for name in CHECKSUM_FIELDS:
        value = response.get("Checksum" + name)
        if value:
            return value, name
    return None, None


class S3Store:
    """``ObjectStore`` over one botocore client (thread-safe, shared by workers).

    The client is created on first use, so a run that needs no request (a no-op
    re-run that the ledger settles) never pays for it.
    """

    def __init__(
        self,
        client: Any = None,
        *,
        factory: Callable[[], Any] | None = None,
        on_throttle: Callable[[], None] | None = None,
    ) -> None:
        self._client = client
        self._factory = factory
        self._on_throttle = on_throttle
        self._lock = threading.RLock()
        self._recorder = Recorder()
        self._replay = Replay()
        self._gate = LearningGate()
        self.transient_errors = 0  # responses/exceptions botocore may retry
        self.list_page_size: int | None = None  # ListObjectsV2 max-keys; None: 1,000
        if client is not None:
            self._attach(client)

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    assert self._factory is not None
                    client = self._factory()
                    self._attach(client)
                    if self._fast_settings is not None:
                        self._fast = self._make_fast_path(client, self._fast_settings)
                    self._client = client
        return self._client

    def _attach(self, client: Any) -> None:
        client.meta.events.register("needs-retry.s3", self._observe_retry)
        self._recorder.attach(client)
        self._replay.attach(client)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, on_throttle: Callable[[], None] | None = None
    ) -> S3Store:
        def factory() -> Any:
            return make_client(settings, session=store.session(settings))

        store = cls(factory=factory, on_throttle=on_throttle)
        if settings.endpoint_url is not None:  # botocore uses an explicit one as given
            store._store_id = redact(settings.endpoint_url)
        if settings.fast_path and settings.max_attempts > 1:
            store._fast_settings = settings
        return store

    _session: Any = None

    def session(self, settings: Settings) -> Any:
        """The botocore session (credential chain, profile, region), made once."""
        with self._lock:
            if self._session is None:
                self._session = make_session(settings)
            return self._session

    _fast_settings: Settings | None = None
    _fast: FastPath | None = None
    _retry_client: Any = None

    def _make_fast_path(self, client: Any, settings: Settings) -> FastPath | None:
        """The lean path over ``client``'s credentials, TLS trust and proxies; it sends
        nothing until it has learned from botocore's own requests."""
        credentials = self.session(settings).get_credentials()
        if credentials is None:
            log.debug("no credentials: the fast path is off, botocore reports the error")
            return None
        from s3stow.store.fastpath import FastPath

        return FastPath(
            credentials=credentials,
            connection=connection_of(client),
            timeout=(settings.connect_timeout, settings.read_timeout),
            expected_bucket_owner=settings.expected_bucket_owner,
            on_throttle=self._on_throttle,
            on_transient=self._count_transient,
        )

    @property
    def fast_path(self) -> FastPath | None:
        """The fast path (after the client exists), or ``None`` when it is off."""
        return self._fast

    def custom_endpoint(self) -> bool:
        """Whether botocore addresses a configured endpoint (``--endpoint-url``,
        ``AWS_ENDPOINT_URL*``, ``endpoint_url`` in the AWS config) rather than AWS's own."""
        resolver = getattr(self.client, "_ruleset_resolver", None)
        builtins = getattr(resolver, "_builtins", None)
        if not isinstance(builtins, dict):
            return True  # cannot tell: the ETag check on is the safe side
        return builtins.get("SDK::Endpoint") is not None

    _store_id: str | None = None

    def store_id(self) -> str:
        """The endpoint botocore resolved when it is a configured one (one server, one
        namespace of buckets; credentials in it redacted), else ``aws:<partition>``:
        AWS's bucket names are one namespace per partition, whatever the region.

        An endpoint given in the settings is botocore's ``endpoint_url`` verbatim, so a
        re-run the ledger settles need not make a client to know it (the test compares
        the two)."""
        if self._store_id is None:
            meta = self.client.meta
            if self.custom_endpoint():
                self._store_id = redact(str(meta.endpoint_url))
            else:
                self._store_id = f"aws:{meta.partition}"
        return self._store_id

    def signs_payload(self, bucket: str) -> bool:
        """Whether writes to ``bucket`` sign the payload's SHA-256 (so the body's hashing
        pass computes it too)."""
        fast = self._fast
        return fast is not None and fast.signs_payload(bucket)

    def _count_transient(self) -> None:
        self.transient_errors += 1

    def _fallback_client(self) -> Any:
        """botocore with one attempt fewer: the fast path spent the first."""
        if self._retry_client is None:
            with self._lock:
                if self._retry_client is None:
                    assert self._fast_settings is not None
                    client = make_client(
                        self._fast_settings,
                        session=self._session,
                        max_attempts=self._fast_settings.max_attempts - 1,
                    )
                    self._attach(client)
                    self._retry_client = client
        return self._retry_client

    def through_botocore(
        self,
        bucket: str,
        key: str | None,
        operation: str,
        headers: Mapping[str, str] | None,
        call: Callable[[Any], Any],
        *,
        attempted: bool = False,
    ) -> Any:
        """``call`` one botocore client (the one with an attempt fewer when the fast path
        spent one); while the fast path has no template for this request, record what
        botocore sends and let it learn from a success. Not translated."""
        client = self._fallback_client() if attempted else self.client
        fast = self._fast
        if (
            fast is None
            or headers is None
            or fast.off_reason(bucket) is not None
            or fast.knows(bucket, operation, headers)
        ):
            return call(client)
        with self._recorder.recording() as sent:
            result = call(client)
        fast.learn(bucket, operation, key=key, headers=headers, sent=sent)
        return result

    def _put(
        self,
        bucket: str,
        key: str,
        operation: str,
        body: bytes | FileRange,
        query: str,
        args: dict[str, Any],
        *,
        versioned: bool,
    ) -> PutResult:
        """PutObject/UploadPart: the fast path when it has learned this request, else
        botocore (recorded, to learn from). A learned shape goes straight to the fast
        path; only an unknown one passes the learning gate (``_route``)."""
        name = _OPERATIONS[operation]
        headers = put_headers(args) if self._fast_settings is not None else None
        if operation == "upload_part":
            args = {**args, **query_args(query)}

        def call(client: Any) -> Any:
            function = getattr(client, operation)
            if isinstance(body, bytes):
                return function(Bucket=bucket, Key=key, Body=body, **args)
            with body.reader() as reader:  # streamed from the file, seekable for retries
                return function(Bucket=bucket, Key=key, Body=reader, **args)

        def botocore(*, attempted: bool) -> PutResult:
            try:
                response = self.through_botocore(
                    bucket, key, name, headers, call, attempted=attempted
                )
            except Exception as exc:
                raise self.translate(exc, bucket, key) from exc
            checksum, _ = _checksum_of(response)
            version = response.get("VersionId") if versioned else None
            return PutResult(_etag(response.get("ETag")), checksum, version)

        fast = self._fast
        if fast is None or headers is None:
            return botocore(attempted=False)
        prepared = fast.outgoing(bucket, name, headers)
        if not fast.knows_shape(prepared.shape):
            with self._route(fast, bucket, name, headers, prepared=prepared) as routed:
                if routed is None:
                    return botocore(attempted=False)
            prepared = routed
        answer = fast.put(name, bucket, key, body, headers, query=query, prepared=prepared)
        if answer is not None:
            return put_result(answer, versioned=versioned)
        return botocore(attempted=True)

    def _observe_retry(self, response: Any = None, caught_exception: Any = None, **_: Any) -> None:
        """Count what botocore sees and may retry; tell the limiter about throttling."""
        if response is None:
            if caught_exception is not None:
                self.transient_errors += 1
            return None
        http, parsed = response
        status = getattr(http, "status_code", 0)
        code = (parsed or {}).get("Error", {}).get("Code", "")
        throttled = status in (429, 503) or code in THROTTLE_CODES
        if throttled or status >= 500 or code in TRANSIENT_CODES:
            self.transient_errors += 1
        if throttled and self._on_throttle is not None:
            self._on_throttle()
        return None

    def _call(self, bucket: str, key: str | None, function: Callable[..., Any], **kw: Any) -> Any:
        try:
            return function(Bucket=bucket, **({"Key": key} if key is not None else {}), **kw)
        except Exception as exc:
            raise self.translate(exc, bucket, key) from exc

    def translate(self, exc: Exception, bucket: str, key: str | None) -> S3StowError:
        """The s3stow error for ``exc``, naming botocore's endpoint where it matters."""
        return translate(exc, bucket=bucket, key=key, endpoint=self.endpoint_url)

    @property
    def endpoint_url(self) -> str | None:
        """botocore's endpoint (once the client exists), for messages."""
        client = self._client
        return str(client.meta.endpoint_url) if client is not None else None

    def head_bucket(self, bucket: str) -> None:
        """HEAD the bucket: the run's first contact with the endpoint, so an endpoint
        that cannot be reached or does not answer like S3 is fatal here (exit 3)."""
        fast = self._fast
        if fast is not None and fast.knows(bucket, "HeadBucket", {}) and fast.head_bucket(bucket):
            return
        try:
            response = self.through_botocore(
                bucket, None, "HeadBucket", {}, lambda client: client.head_bucket(Bucket=bucket)
            )
        except Exception as exc:
            raise translate_preflight(exc, bucket=bucket, endpoint=self.endpoint_url) from exc
        problem = not_s3_answer(response, endpoint=self.endpoint_url)
        if problem is not None:
            raise problem

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            response = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise self.translate(exc, bucket, key) from exc
        except Exception as exc:
            raise self.translate(exc, bucket, key) from exc
        checksum, algorithm = _checksum_of(response)
        return ObjectInfo(
            key=key,
            size=int(response.get("ContentLength", 0)),
            etag=_etag(response.get("ETag")),
            checksum=checksum,
            checksum_algorithm=algorithm,
            checksum_type=response.get("ChecksumType"),
            metadata=dict(response.get("Metadata") or {}),
            last_modified=response["LastModified"].timestamp()
            if response.get("LastModified")
            else None,
        )

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
                    etag=_etag(item.get("ETag")),
                    checksum_algorithm=algorithms[0] if algorithms else None,
                    checksum_type=item.get("ChecksumType"),
                    last_modified=item["LastModified"].timestamp(),
                    storage_class=item.get("StorageClass") if detailed else None,
                )
            )
        truncated = bool(response.get("IsTruncated"))
        return objects, response.get("NextContinuationToken") if truncated else None

    @staticmethod
    def _write_args(options: WriteOptions) -> dict[str, Any]:
        args: dict[str, Any] = {"Metadata": options.metadata}
        if options.content_type:
            args["ContentType"] = options.content_type
        if options.sse:
            args["ServerSideEncryption"] = options.sse
        if options.sse_kms_key_id:
            args["SSEKMSKeyId"] = options.sse_kms_key_id
        if options.storage_class:
            args["StorageClass"] = options.storage_class
        return args

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
        args = self._write_args(options)
        if digest is not None:
            args["ChecksumAlgorithm"] = digest.algorithm.upper()
            args["Checksum" + digest.algorithm.upper()] = digest.b64
        if content_md5:
            args["ContentMD5"] = content_md5
        if options.if_none_match:
            args["IfNoneMatch"] = "*"
        return self._put(bucket, key, "put_object", body, "", args, versioned=True)

    def create_multipart(
        self, bucket: str, key: str, *, algorithm: str | None, options: WriteOptions
    ) -> str:
        args = self._write_args(options)
        if algorithm is not None:
            args["ChecksumAlgorithm"] = algorithm.upper()
            args["ChecksumType"] = "COMPOSITE" if algorithm == "sha256" else "FULL_OBJECT"
        response = self._call(bucket, key, self.client.create_multipart_upload, **args)
        return str(response["UploadId"])

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
        args: dict[str, Any] = {}
        if digest is not None:
            args["ChecksumAlgorithm"] = digest.algorithm.upper()
            args["Checksum" + digest.algorithm.upper()] = digest.b64
        if content_md5:
            args["ContentMD5"] = content_md5
        query = f"uploadId={quote(upload_id, safe='')}&partNumber={number}"
        return self._put(bucket, key, "upload_part", body, query, args, versioned=False)

    def list_parts(self, bucket: str, key: str, *, upload_id: str) -> list[PartInfo]:
        parts: list[PartInfo] = []
        marker = 0
        while True:
            response = self._call(
                bucket, key, self.client.list_parts, UploadId=upload_id, PartNumberMarker=marker
            )
            for part in response.get("Parts", []):
                checksum, _ = _checksum_of(part)
                parts.append(
                    PartInfo(
                        int(part["PartNumber"]), _etag(part["ETag"]), int(part["Size"]), checksum
                    )
                )
            if not response.get("IsTruncated"):
                return parts
            marker = int(response["NextPartNumberMarker"])

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
        field = "Checksum" + algorithm.upper() if algorithm else None
        listed = []
        for number, etag, checksum in parts:
            entry: dict[str, Any] = {"PartNumber": number, "ETag": f'"{etag}"'}
            if field and checksum:
                entry[field] = checksum
            listed.append(entry)
        args: dict[str, Any] = {"MultipartUpload": {"Parts": listed}, "UploadId": upload_id}
        if field and full_checksum and algorithm != "sha256":
            args[field] = full_checksum
            args["ChecksumType"] = "FULL_OBJECT"
        if if_none_match:
            args["IfNoneMatch"] = "*"
        response = self._call(bucket, key, self.client.complete_multipart_upload, **args)
        checksum, _ = _checksum_of(response)
        return PutResult(_etag(response.get("ETag")), checksum, response.get("VersionId"))

    def abort_multipart(self, bucket: str, key: str, *, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if error_code(exc) == "NoSuchUpload":
                return
            raise self.translate(exc, bucket, key) from exc

    def delete_object(self, bucket: str, key: str) -> None:
        self._call(bucket, key, self.client.delete_object)

    def list_multipart_uploads(self, bucket: str, prefix: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                found.extend((u["Key"], u["UploadId"]) for u in page.get("Uploads", []))
        except Exception as exc:
            raise self.translate(exc, bucket, None) from exc
        return found

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

    @contextmanager
    def _route(
        self,
        fast: FastPath,
        bucket: str,
        operation: str,
        headers: Mapping[str, str],
        *,
        prepared: Outgoing | None = None,
    ) -> Iterator[Outgoing | None]:
        """This request as the fast path sends it (its shape computed once), or ``None``
        when botocore sends it: the first request of a shape teaches the fast path
        inside this block while the others of that shape wait (``LearningGate``), and a
        shape that cannot be learned stays botocore's. A learned shape takes no lock."""
        if prepared is None:
            prepared = fast.outgoing(bucket, operation, headers)
        known = prepared.shape
        if fast.knows_shape(known):
            yield prepared
            return

        def settled() -> bool:
            return fast.knows_shape(known) or fast.off_reason(bucket) is not None

        def connect() -> None:  # a waiter's connection, opened while the learner's is out
            fast.preconnect(bucket)

        with self._gate.first(known, settled, before_wait=connect) as learner:
            if learner:  # botocore sends it, and the fast path learns from it, in here
                yield None
                return
        yield prepared if fast.knows_shape(known) else None

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
    checksum, algorithm = _checksum_of(response)
    modified = response.get("LastModified")
    sse = response.get("ServerSideEncryption")
    if response.get("SSECustomerAlgorithm"):
        sse = "SSE-C"
    return ObjectInfo(
        key=key,
        size=size,
        etag=_etag(response.get("ETag")),
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
