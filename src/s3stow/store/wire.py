"""S3's wire format where the fast path meets botocore's parameters.

``put_headers`` turns PutObject/UploadPart parameters into the HTTP headers botocore
would send for them (``None`` for a parameter it does not translate: botocore sends
that request); ``parse_list_page`` reads a ListObjectsV2 answer (``encoding-type=url``);
``response_from_headers`` and ``query_args`` turn a PUT's answer and an UploadPart
query back into botocore's shapes, so the store handles both paths' results alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote_plus
from xml.etree import ElementTree as ET

from s3stow.store.base import ObjectInfo

CHECKSUM_FIELDS = ("CRC64NVME", "CRC32C", "CRC32", "SHA256", "SHA1")


def parse_list_page(document: bytes) -> tuple[list[ObjectInfo], str | None]:
    """Objects and the next continuation token of a ListObjectsV2 answer
    (``encoding-type=url``: keys arrive URL-encoded)."""
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


def response_from_headers(headers: dict[str, str]) -> dict[str, Any]:
    """The parts of a botocore-shaped PutObject/UploadPart response s3stow reads."""
    response: dict[str, Any] = {"ETag": headers.get("etag", "")}
    if "x-amz-version-id" in headers:
        response["VersionId"] = headers["x-amz-version-id"]
    for name in CHECKSUM_FIELDS:
        value = headers.get(f"x-amz-checksum-{name.lower()}")
        if value:
            response["Checksum" + name] = value
    return response
