"""``S3Store``: the botocore implementation of ``ObjectStore``.

The store is built from the settings (``from_settings``) in three layers of one
class: ``S3Routing`` (``s3routing.py``: the client, created on first use, the fast
path in front of the hot operations, each request's route, error translation),
``S3Reads`` (``s3reads.py``: listings, HEADs, GETs) and here the bucket check and the
writes: PutObject and UploadPart through the fast path once it has learned their
shape (``_put``), the other multipart requests and deletes through botocore.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote

from botocore.exceptions import ClientError

from s3stow.config import Settings
from s3stow.logs import redact
from s3stow.store.base import PartInfo, PutResult, WriteOptions
from s3stow.store.body import FileRange
from s3stow.store.checksums import Digest
from s3stow.store.client import make_client
from s3stow.store.s3reads import S3Reads
from s3stow.store.s3routing import checksum_of, etag_of
from s3stow.store.translate import error_code, not_s3_answer, translate_preflight
from s3stow.store.wire import put_headers, put_result, query_args

_OPERATIONS = {"put_object": "PutObject", "upload_part": "UploadPart"}


class S3Store(S3Reads):
    """``ObjectStore`` over one botocore client (thread-safe, shared by workers)."""

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
            checksum, _ = checksum_of(response)
            version = response.get("VersionId") if versioned else None
            return PutResult(etag_of(response.get("ETag")), checksum, version)

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
                checksum, _ = checksum_of(part)
                parts.append(
                    PartInfo(
                        int(part["PartNumber"]), etag_of(part["ETag"]), int(part["Size"]), checksum
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
        checksum, _ = checksum_of(response)
        return PutResult(etag_of(response.get("ETag")), checksum, response.get("VersionId"))

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
