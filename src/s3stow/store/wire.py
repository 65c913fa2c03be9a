"""S3's wire format where the fast path meets botocore's parameters.

``put_headers`` turns PutObject/UploadPart parameters into the HTTP headers botocore
would send for them (``None`` for a parameter it does not translate: botocore sends
that request); ``parse_list_page`` reads a ListObjectsV2 answer (``encoding-type=url``);
``put_result`` and ``query_args`` turn a PUT's answer and an UploadPart
query back into botocore's shapes, so the store handles both paths' results alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qs, unquote_plus
from xml.etree import ElementTree as ET

from s3stow.store.base import ObjectInfo, PutResult

CHECKSUM_FIELDS = ("CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1")


def parse_list_page(
    document: bytes, *, storage_class: bool = False
) -> tuple[list[ObjectInfo], str | None]:
    """Objects and the next continuation token of a ListObjectsV2 answer
    (``encoding-type=url``: keys arrive URL-encoded); with ``storage_class`` each
    object's class too."""
    root = ET.fromstring(document)  # noqa: S314 - the answer of the user's own endpoint
    if root.tag.rpartition("}")[2] != "ListBucketResult":  # a gateway's page, not a listing
        raise ValueError(f"a <{root.tag}> document where a listing was due")
    objects: list[ObjectInfo] = []
    token: str | None = None
    truncated = False
    for element in root:
        tag = element.tag.rpartition("}")[2]
        if tag == "Contents":
            fields = {child.tag.rpartition("}")[2]: child.text or "" for child in element}
            modified = fields.get("LastModified")
            objects.append(
                ObjectInfo(
                    key=unquote_plus(fields["Key"]),
                    size=int(fields["Size"]),
                    etag=fields.get("ETag", "").strip('"'),
                    checksum_algorithm=fields.get("ChecksumAlgorithm") or None,
                    checksum_type=fields.get("ChecksumType") or None,
                    last_modified=(
                        datetime.fromisoformat(modified).timestamp() if modified else None
                    ),
                    storage_class=(fields.get("StorageClass") or None) if storage_class else None,
                )
            )
        elif tag == "IsTruncated":
            truncated = (element.text or "").strip() == "true"
        elif tag == "NextContinuationToken":
            token = element.text
    if truncated and not token:
        raise ValueError("a truncated listing without a continuation token")
    return objects, token if truncated else None


def put_headers(args: Mapping[str, Any]) -> dict[str, str] | None:
    """HTTP headers for PutObject/UploadPart parameters, or ``None`` when a parameter
    is one this path does not translate (botocore then sends the request)."""
    names = {
        "ContentType": "Content-Type",
        "ContentMD5": "Content-MD5",
        "ServerSideEncryption": "x-amz-server-side-encryption",
        "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
        "StorageClass": "x-amz-storage-class",
        "IfNoneMatch": "If-None-Match",
        "ChecksumAlgorithm": "x-amz-sdk-checksum-algorithm",
    }
    headers: dict[str, str] = {}
    for name, value in args.items():
        if name == "Metadata":
            for meta_key, meta_value in value.items():
                if not (str(meta_key) + str(meta_value)).isascii():
                    return None
                headers[f"x-amz-meta-{meta_key}"] = str(meta_value)
        elif name.startswith("Checksum") and name != "ChecksumAlgorithm":
            headers[f"x-amz-checksum-{name[len('Checksum') :].lower()}"] = str(value)
        elif name in names:
            headers[names[name]] = str(value)
        else:
            return None
    return headers


def query_args(query: str) -> dict[str, Any]:
    values = parse_qs(query)
    return {"PartNumber": int(values["partNumber"][0]), "UploadId": values["uploadId"][0]}


def put_result(headers: Mapping[str, str], *, versioned: bool = True) -> PutResult:
    """What a PutObject/UploadPart answered (response headers, lower-case), as the
    store returns it: the ETag without quotes, the first checksum of
    ``CHECKSUM_FIELDS`` the server sent, the version id (``versioned``: PutObject)."""
    checksum = None
    for header, _name in _CHECKSUM_HEADERS:
        value = headers.get(header)
        if value:
            checksum = value
            break
    version = headers.get("x-amz-version-id") if versioned else None
    return PutResult(headers.get("etag", "").strip('"'), checksum, version)


def get_headers(args: Mapping[str, Any]) -> dict[str, str] | None:
    """HTTP headers for GetObject/HeadObject parameters (``None``: a parameter this path
    does not translate, e.g. a version id or a customer key; botocore sends it)."""
    names = {"Range": "Range", "IfMatch": "If-Match", "ChecksumMode": "x-amz-checksum-mode"}
    headers: dict[str, str] = {}
    for name, value in args.items():
        if name not in names:
            return None
        headers[names[name]] = str(value)
    return headers


_META = "x-amz-meta-"
_CHECKSUM_HEADERS = tuple((f"x-amz-checksum-{name.lower()}", name) for name in CHECKSUM_FIELDS)


def info_from_headers(
    key: str, headers: Mapping[str, str], pairs: Sequence[tuple[str, str]], *, size: int
) -> ObjectInfo:
    """An ``ObjectInfo`` from a GetObject/HeadObject answer's headers, as ``s3reads._info_of``
    builds it from botocore's parsed response: ``headers`` by lower-case name, ``pairs``
    as sent (botocore's ``Metadata`` keeps the server's case of each name)."""
    checksum = algorithm = None
    for header, name in _CHECKSUM_HEADERS:
        value = headers.get(header)
        if value:
            checksum, algorithm = value, name
            break
    metadata: dict[str, str] = {}
    first: dict[str, str] = {}  # lower-case name -> as first sent (one header, like urllib3's)
    for name, value in pairs:
        low = name.lower()
        if low.startswith(_META):
            meta = first.setdefault(low, name)[len(_META) :]
            metadata[meta] = f"{metadata[meta]}, {value}" if meta in metadata else value
    modified = headers.get("last-modified")
    sse = headers.get("x-amz-server-side-encryption")
    if headers.get("x-amz-server-side-encryption-customer-algorithm"):
        sse = "SSE-C"
    parts = headers.get("x-amz-mp-parts-count")
    return ObjectInfo(
        key=key,
        size=size,
        etag=headers.get("etag", "").strip('"'),
        checksum=checksum,
        checksum_algorithm=algorithm,
        checksum_type=headers.get("x-amz-checksum-type"),
        metadata=metadata,
        last_modified=parsedate_to_datetime(modified).timestamp() if modified else None,
        storage_class=headers.get("x-amz-storage-class"),
        restore=headers.get("x-amz-restore"),
        sse=sse,
        version_id=headers.get("x-amz-version-id"),
        parts=int(parts) if parts else None,
    )


def span_of(headers: Mapping[str, str], length: int) -> tuple[int, int]:
    """(first byte, whole object's size) of a GetObject answer of ``length`` bytes, from
    its Content-Range (``bytes 0-99/1000``) when it has one."""
    content_range = headers.get("content-range")
    if not content_range:
        return 0, length
    span, _, total = content_range.split(" ", 1)[-1].partition("/")
    return int(span.split("-", 1)[0]), int(total) if total.isdigit() else length
