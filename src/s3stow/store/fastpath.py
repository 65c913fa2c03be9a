"""A lean request path for the two hot operations: PutObject and UploadPart.

botocore spends about 2 ms of CPU on every request (parameter validation, event
hooks, header preparation), which dominates a run of many small files. This path
sends one attempt of a PutObject or UploadPart with the same SigV4 signature
(botocore's own ``S3SigV4Auth``, credentials from the same session) over a urllib3
pool. It handles only success: any other answer or error returns ``None`` and the
caller repeats the request through botocore, which then retries, follows
redirects and translates errors as usual (with one attempt fewer, so
``max_attempts`` still bounds the requests). Payload signing follows botocore's
rule: unsigned only over https with a checksum header that S3 validates.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

from s3stow import __version__

log = logging.getLogger(__name__)
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")


class FastPath:
    """One-attempt PutObject/UploadPart; ``None`` means "ask botocore"."""

    def __init__(
        self,
        *,
        session: Any,
        region: str,
        endpoint_url: str | None,
        path_style: bool,
        verify: bool | str | None,
        pool_size: int,
        timeout: tuple[float, float],
        expected_bucket_owner: str | None = None,
        on_throttle: Callable[[], None] | None = None,
        on_transient: Callable[[], None] | None = None,
    ) -> None:
        self._credentials = session.get_credentials()
        self._region = region
        if endpoint_url is None and not region:
            self._credentials = None  # no region to address AWS with: botocore only
        self._endpoint = (endpoint_url or f"https://s3.{region}.amazonaws.com").rstrip("/")
        self._aws = endpoint_url is None
        self._path_style = path_style or not self._aws
        self._owner = expected_bucket_owner
        self._on_throttle = on_throttle
        self._on_transient = on_transient
        kwargs: dict[str, Any] = {
            "maxsize": pool_size,
            "block": True,
            "retries": False,
            "timeout": urllib3.Timeout(connect=timeout[0], read=timeout[1]),
        }
        if self._endpoint.startswith("https"):
            if verify is False:
                kwargs["cert_reqs"] = "CERT_NONE"
            elif isinstance(verify, str):
                kwargs["ca_certs"] = verify
        self._http = urllib3.PoolManager(**kwargs)
        self.sent = 0
        self.fallbacks = 0
        self._botocore_only: set[str] = set()  # buckets that answered with a redirect

    def _url(self, bucket: str, key: str, query: str) -> str | None:
        path = quote(key, safe="/~")
        suffix = f"?{query}" if query else ""
        if self._path_style:
            return f"{self._endpoint}/{bucket}/{path}{suffix}"
        if not _DNS_BUCKET.match(bucket):  # dotted names: leave them to botocore
            return None
        parts = urlsplit(self._endpoint)
        return f"{parts.scheme}://{bucket}.{parts.netloc}/{path}{suffix}"

    def put(
        self, bucket: str, key: str, body: bytes, headers: Mapping[str, str], *, query: str = ""
    ) -> dict[str, str] | None:
        """Send one PUT; the response headers (lower-case) on 200, else ``None``."""
        if self._credentials is None or bucket in self._botocore_only:
            return None
        url = self._url(bucket, key, query)
        if url is None:
            return None
        request = AWSRequest(method="PUT", url=url, data=body, headers=dict(headers))
        request.headers["Content-Length"] = str(len(body))
        request.headers["User-Agent"] = f"s3stow/{__version__} fastpath"
        if self._owner:
            request.headers["x-amz-expected-bucket-owner"] = self._owner
        checksum = next((h for h in headers if h.lower().startswith("x-amz-checksum-")), None)
        if checksum:
            request.context["checksum"] = {"request_algorithm": {"in": "header", "name": checksum}}
        try:
            frozen = self._credentials.get_frozen_credentials()
            S3SigV4Auth(frozen, "s3", self._region).add_auth(request)
            prepared = request.prepare()
            response = self._http.urlopen(
                "PUT",
                prepared.url,
                body=body,
                headers=dict(prepared.headers),
                redirect=False,
                preload_content=True,
            )
        except Exception as exc:  # noqa: BLE001 - any failure: botocore takes over
            log.debug("fast path failed for %s/%s: %s; using botocore", bucket, key, exc)
            self.fallbacks += 1
            return None
        self.sent += 1
        if response.status == 200:
            return {k.lower(): v for k, v in response.headers.items()}
        if (response.status >= 500 or response.status == 429) and self._on_transient:
            self._on_transient()
        if response.status in (429, 503) and self._on_throttle is not None:
            self._on_throttle()
        if response.status in (301, 307, 400):  # wrong region or addressing: stop trying
            self._botocore_only.add(bucket)
        self.fallbacks += 1
        return None


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
