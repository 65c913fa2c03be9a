"""The botocore implementation of ``ObjectStore``.

Uses one thread-safe S3 client built from the settings (``client.py``), created
on first use, with the fast path (``fastpath.py``) in front of the hot operations,
and translates every exception where it leaves botocore. A ``needs-retry`` observer
tells the concurrency limiter about throttling that botocore retried silently.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from botocore.exceptions import ClientError, FlexibleChecksumError

from s3stow.checksums import Digest
from s3stow.config import Settings, environment_keys
from s3stow.logs import register_secret
from s3stow.store.base import ObjectBody, ObjectInfo, PartInfo, PutResult, WriteOptions
from s3stow.store.body import FileRange
from s3stow.store.client import (
    aws_endpoint_variant,
    make_client,
    make_session,
    warn_if_unverified,
)
from s3stow.store.sigv4 import Credentials

if TYPE_CHECKING:
    from s3stow.store.fastpath import FastPath

from s3stow.store.translate import THROTTLE_CODES, TRANSIENT_CODES, error_code, translate

log = logging.getLogger(__name__)
_CHECKSUM_FIELDS = ("CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1")


def _etag(value: str | None) -> str:
    return (value or "").strip('"')


def _checksum_of(response: dict[str, Any]) -> tuple[str | None, str | None]:
    for name in _CHECKSUM_FIELDS:
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
        self._lock = threading.RLock()  # client creation nests inside fast-path set-up
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
                    self._client = client
        return self._client

    def _attach(self, client: Any) -> None:
        client.meta.events.register("needs-retry.s3", self._observe_retry)

    @classmethod
    def from_settings(
        cls, settings: Settings, *, on_throttle: Callable[[], None] | None = None
    ) -> S3Store:
        def factory() -> Any:
            return make_client(settings, session=store._boto_session(settings))

        store = cls(factory=factory, on_throttle=on_throttle)
        if settings.fast_path and settings.max_attempts > 1:
            store._fast_settings = settings
        return store

    _session: Any = None
    _core: Any = None

    def _boto_session(self, settings: Settings) -> Any:
        """The boto3 session (credential chain, profile, region), made once."""
        with self._lock:
            if self._session is None:
                import botocore.session

                self._core = botocore.session.get_session()
                self._session = make_session(settings, core=self._core)
            return self._session

    _fast_settings: Settings | None = None
    _fast: FastPath | None = None
    _retry_client: Any = None

    def _fast_path(self) -> FastPath | None:
        """The lean path, built on first use from the main client's session/region."""
        settings = self._fast_settings
        if settings is None:
            return None
        if self._fast is None:
            with self._lock:
                if self._fast is None:
                    warn_if_unverified(settings)
                    credentials, region, bundle = self._signing_inputs(settings)
                    verify: bool | str | None = (bundle or None) if settings.verify_ssl else False
                    from s3stow.store.fastpath import FastPath

                    self._fast = FastPath(
                        credentials=credentials,
                        region=region,
                        endpoint_url=settings.endpoint_url,
                        path_style=settings.path_style,
                        verify=verify,
                        pool_size=max(settings.concurrency + 4, 10),
                        timeout=(settings.connect_timeout, settings.read_timeout),
                        expected_bucket_owner=settings.expected_bucket_owner,
                        on_throttle=self._on_throttle,
                        on_transient=self._count_transient,
                    )
        return self._fast

    def _signing_inputs(self, settings: Settings) -> tuple[Any, str, str | None]:
        """Credentials, region and CA bundle for the fast path: the environment's keys
        when botocore would use exactly those (no botocore import), else botocore's.
        No credentials (the fast path off) where botocore would use an AWS endpoint
        variant."""
        keys = environment_keys(settings)
        if keys is not None:
            credentials: Any = Credentials(keys.access_key, keys.secret_key, keys.token)
            region, bundle = keys.region, keys.ca_bundle
        else:
            session = self._boto_session(settings)
            credentials = session.get_credentials()
            region = session.region_name
            # the CA bundle botocore uses (AWS_CA_BUNDLE, ca_bundle in ~/.aws/config)
            bundle = settings.ca_bundle or self._core.get_config_variable("ca_bundle")
            if settings.endpoint_url is None and aws_endpoint_variant(self._core):
                log.debug("FIPS, dual-stack or accelerated endpoints configured: fast path off")
                return None, "", bundle
        if credentials is not None:
            frozen = credentials.get_frozen_credentials()
            register_secret(frozen.secret_key)
            register_secret(frozen.token)
        # botocore's rule: S3 without a configured region is us-east-1 with a custom
        # endpoint; for AWS itself the fast path needs one
        return credentials, region or ("us-east-1" if settings.endpoint_url else ""), bundle

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

    def _put(
        self,
        bucket: str,
        key: str,
        operation: str,
        body: bytes | FileRange,
        query: str,
        args: dict[str, Any],
    ) -> Any:
        """PutObject/UploadPart: the fast path first, botocore on anything else."""
        fast = self._fast_path()
        from s3stow.store.fastpath import put_headers

        headers = put_headers(args) if fast is not None else None
        if fast is not None and headers is not None:
            answer = fast.put(bucket, key, body, headers, query=query)
            if answer is not None:
                return _response_from_headers(answer)
            client = self._fallback_client()
        else:
            client = self.client
        function = getattr(client, operation)
        if operation == "upload_part":
            args = {**args, **_query_args(query)}
        if isinstance(body, bytes):
            return self._call(bucket, key, function, Body=body, **args)
        with body.reader() as reader:  # streamed from the file, seekable for retries
            return self._call(bucket, key, function, Body=reader, **args)

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
            raise translate(exc, bucket=bucket, key=key) from exc

    def head_bucket(self, bucket: str) -> None:
        fast = self._fast_path()
        if fast is not None and fast.head_bucket(bucket):
            return
        self._call(bucket, None, self.client.head_bucket)

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        try:
            response = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise translate(exc, bucket=bucket, key=key) from exc
        except Exception as exc:
            raise translate(exc, bucket=bucket, key=key) from exc
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
        fast = self._fast_path()
        token: str | None = None
        while True:
            size = self.list_page_size
            page = fast.list_page(bucket, prefix, token, max_keys=size) if fast else None
            if page is None:
                page = self._list_page(bucket, prefix, token)
            objects, token = page
            yield from objects
            if token is None:
                return

    def _list_page(
        self, bucket: str, prefix: str, token: str | None
    ) -> tuple[list[ObjectInfo], str | None]:
        extra: dict[str, Any] = {"ContinuationToken": token} if token is not None else {}
        if self.list_page_size is not None:
            extra["MaxKeys"] = self.list_page_size
        response = self._call(bucket, None, self.client.list_objects_v2, Prefix=prefix, **extra)
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
        response = self._put(bucket, key, "put_object", body, "", args)
        checksum, _ = _checksum_of(response)
        return PutResult(_etag(response.get("ETag")), checksum, response.get("VersionId"))

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
        response = self._put(bucket, key, "upload_part", body, query, args)
        checksum, _ = _checksum_of(response)
        return PutResult(_etag(response.get("ETag")), checksum)

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
            raise translate(exc, bucket=bucket, key=key) from exc

    def list_multipart_uploads(self, bucket: str, prefix: str) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                found.extend((u["Key"], u["UploadId"]) for u in page.get("Uploads", []))
        except Exception as exc:
            raise translate(exc, bucket=bucket) from exc
        return found

    # ---- reading objects back (restore): botocore only, never the fast path -------------
    def stat_object(
        self, bucket: str, key: str, *, part_number: int | None = None
    ) -> ObjectInfo | None:
        extra: dict[str, Any] = {"PartNumber": part_number} if part_number else {}
        try:
            response = self.client.head_object(
                Bucket=bucket, Key=key, ChecksumMode="ENABLED", **extra
            )
        except ClientError as exc:
            if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise translate(exc, bucket=bucket, key=key) from exc
        except Exception as exc:
            raise translate(exc, bucket=bucket, key=key) from exc
        return _info_of(key, response, size=int(response.get("ContentLength", 0)))

    def list_objects_detailed(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        token: str | None = None
        while True:
            extra: dict[str, Any] = {"ContinuationToken": token} if token is not None else {}
            response = self._call(bucket, None, self.client.list_objects_v2, Prefix=prefix, **extra)
            for item in response.get("Contents", []):
                algorithms = item.get("ChecksumAlgorithm") or []
                yield ObjectInfo(
                    key=item["Key"],
                    size=int(item["Size"]),
                    etag=_etag(item.get("ETag")),
                    checksum_algorithm=algorithms[0] if algorithms else None,
                    checksum_type=item.get("ChecksumType"),
                    last_modified=item["LastModified"].timestamp(),
                    storage_class=item.get("StorageClass"),
                )
            if not response.get("IsTruncated"):
                return
            token = response["NextContinuationToken"]

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
        response = self._call(bucket, key, self.client.get_object, **args)
        length = int(response.get("ContentLength", 0))
        start, size = 0, length
        content_range = response.get("ContentRange")  # "bytes 0-99/1000"
        if content_range:
            span, _, total = content_range.split(" ", 1)[-1].partition("/")
            start = int(span.split("-", 1)[0])
            size = int(total) if total.isdigit() else length
        info = _info_of(key, response, size=size)
        return _Body(response["Body"], info, start, length, bucket=bucket, key=key)

    def restore_object(self, bucket: str, key: str, *, days: int, tier: str) -> str:
        request = {"Days": days, "GlacierJobParameters": {"Tier": tier}}
        try:
            response = self.client.restore_object(Bucket=bucket, Key=key, RestoreRequest=request)
        except ClientError as exc:
            if error_code(exc) == "RestoreAlreadyInProgress":
                return "in-progress"
            raise translate(exc, bucket=bucket, key=key) from exc
        except Exception as exc:
            raise translate(exc, bucket=bucket, key=key) from exc
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 202))
        return "ready" if status == 200 else "requested"


class _Body:
    """A GetObject body read in chunks, its errors translated like the store's; botocore's
    checksum check is left to the caller's proof."""

    def __init__(
        self, stream: Any, info: ObjectInfo, start: int, length: int, *, bucket: str, key: str
    ) -> None:
        self._stream = stream
        self.info = info
        self.start = start
        self.length = length
        self._where = (bucket, key)

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
            raise translate(exc, bucket=bucket, key=key) from exc

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


def _query_args(query: str) -> dict[str, Any]:
    from urllib.parse import parse_qs

    values = parse_qs(query)
    return {"PartNumber": int(values["partNumber"][0]), "UploadId": values["uploadId"][0]}


def _response_from_headers(headers: dict[str, str]) -> dict[str, Any]:
    """The parts of a botocore-shaped PutObject/UploadPart response s3stow reads."""
    response: dict[str, Any] = {"ETag": headers.get("etag", "")}
    if "x-amz-version-id" in headers:
        response["VersionId"] = headers["x-amz-version-id"]
    for name in _CHECKSUM_FIELDS:
        value = headers.get(f"x-amz-checksum-{name.lower()}")
        if value:
            response["Checksum" + name] = value
    return response
