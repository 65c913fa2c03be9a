"""A lean request path for the hot operations: PutObject, UploadPart, listing.

botocore spends about 2 ms of CPU on every request (parameter validation, event
hooks, request objects), which dominates a run of many small files. This path
sends one attempt of a PutObject, UploadPart, HeadBucket or ListObjectsV2 page
signed by ``sigv4.sign`` over a keep-alive connection per thread (``http1``: one
HTTP/1.1 exchange, a fifth cheaper per small file than ``http.client``). The
credentials come from the same botocore session, so the same chain, or are the
environment's access keys when botocore would take exactly those
(``config.environment_keys``): then botocore's session is not even imported. A
run that never falls back never builds a botocore client. This path handles only
success: any other answer or error returns ``None`` and the caller repeats the
request through botocore, which then retries, follows redirects and translates
errors as usual (with one attempt fewer, so ``max_attempts`` still bounds the
requests). Payload signing follows botocore's rule: unsigned only over https
with a checksum header that S3 validates. When botocore would use a proxy for
the endpoint (HTTP(S)_PROXY), or a FIPS, dual-stack or accelerated AWS endpoint,
this path stays off and botocore sends everything.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_plus, urlsplit
from xml.etree import ElementTree as ET

from s3stow import __version__
from s3stow.errors import SourceChanged
from s3stow.store import http1
from s3stow.store.base import ObjectInfo
from s3stow.store.body import FileRange
from s3stow.store.sigv4 import UNSIGNED_PAYLOAD, Credentials, canonical_query, sign

log = logging.getLogger(__name__)
_DNS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_USER_AGENT = f"s3stow/{__version__} fastpath"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


class FastPath:
    """One-attempt requests; ``None`` (or False) means "ask botocore"."""

    def __init__(
        self,
        *,
        credentials: Any,
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
        del pool_size  # one connection per thread: the thread pools bound them
        self._credentials = credentials  # get_frozen_credentials() at every request
        self._region = region
        if endpoint_url is None and not region:
            self._credentials = None  # no region to address AWS with: botocore only
        self._endpoint = (endpoint_url or f"https://s3.{region}.amazonaws.com").rstrip("/")
        if _environ_proxies(self._endpoint):
            log.debug("a proxy is configured for %s: fast path off", self._endpoint)
            self._credentials = None
        self._aws = endpoint_url is None
        self._path_style = path_style or not self._aws
        parts = urlsplit(self._endpoint)
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc
        self._base_path = parts.path.rstrip("/")
        self._owner = expected_bucket_owner
        self._on_throttle = on_throttle
        self._on_transient = on_transient
        self._timeout = timeout
        self._ssl: ssl.SSLContext | None = None
        if self._https:
            if verify is False:
                self._ssl = ssl._create_unverified_context()  # noqa: S323 - user asked
            else:
                cafile = verify if isinstance(verify, str) else None
                self._ssl = ssl.create_default_context(cafile=cafile)
        self._local = threading.local()
        self._addresses: dict[str, tuple[Any, Any]] = {}  # IP literal -> address
        self.sent = 0
        self.fallbacks = 0
        self._botocore_only: set[str] = set()  # buckets that answered with a redirect

    def _address(self, bucket: str, key: str | None) -> tuple[str, str] | None:
        """(host, path) for the bucket or object, or ``None`` when botocore should
        address it."""
        path = "" if key is None else "/" + quote(key, safe="/~")
        if self._path_style:
            return self._netloc, f"{self._base_path}/{bucket}{path}"
        if not _DNS_BUCKET.match(bucket):  # dotted names: leave them to botocore
            return None
        return f"{bucket}.{self._netloc}", f"{self._base_path}{path or '/'}"

    def _connection(self, host: str) -> tuple[socket.socket, bool]:
        """This thread's socket to ``host`` and whether it was used before."""
        connections: dict[str, socket.socket] = getattr(self._local, "conns", None) or {}
        self._local.conns = connections
        sock = connections.get(host)
        if sock is not None:
            return sock, True
        sock = http1.connect(
            host,
            default_port=443 if self._https else 80,
            tls=self._ssl,
            timeout=self._timeout,
            addresses=self._addresses,
        )
        connections[host] = sock
        return sock, False

    def _drop(self, host: str) -> None:
        sock = getattr(self._local, "conns", {}).pop(host, None)
        if sock is not None:
            sock.close()

    def _request(
        self,
        method: str,
        bucket: str,
        key: str | None,
        *,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | FileRange = b"",
        checked: bool = False,
    ) -> tuple[int, dict[str, str], bytes] | None:
        """One signed attempt: (status, lower-case headers, body), or ``None`` when
        this path does not apply or the exchange failed (botocore then takes over)."""
        if self._credentials is None or bucket in self._botocore_only:
            return None
        address = self._address(bucket, key)
        if address is None:
            return None
        host, path = address
        outgoing = dict(headers)
        if body or method == "PUT":
            outgoing["Content-Length"] = str(len(body))
        if self._owner:
            outgoing["x-amz-expected-bucket-owner"] = self._owner
        payload = UNSIGNED_PAYLOAD if self._https and checked else _payload_sha256(body)
        encoded = canonical_query(query)
        target = f"{path}?{encoded}" if encoded else path
        try:
            frozen = self._credentials.get_frozen_credentials()
            signed = sign(
                method,
                path,
                host=host,
                query=query,
                headers=outgoing,
                payload_hash=payload,
                credentials=frozen
                if isinstance(frozen, Credentials)
                else Credentials(frozen.access_key, frozen.secret_key, frozen.token),
                region=self._region,
            )
            signed["User-Agent"] = _USER_AGENT
            if log.isEnabledFor(logging.DEBUG):  # secrets are redacted by the log filter
                log.debug("fast path %s %s%s headers: %s", method, host, target, signed)
            answer = self._send(method, host, target, body, signed)
        except SourceChanged:
            raise  # the file, not the request: botocore would fail the same way
        except Exception as exc:  # noqa: BLE001 - any failure: botocore takes over
            log.debug("fast path %s failed for %s/%s: %s; using botocore", method, bucket, key, exc)
            self.fallbacks += 1
            return None
        self.sent += 1
        status = answer[0]
        if status in (200, 204):
            return answer
        if (status >= 500 or status == 429) and self._on_transient:
            self._on_transient()
        if status in (429, 503) and self._on_throttle is not None:
            self._on_throttle()
        if status in (301, 307, 400):  # wrong region or addressing: stop trying
            self._botocore_only.add(bucket)
        self.fallbacks += 1
        return None

    def put(
        self,
        bucket: str,
        key: str,
        body: bytes | FileRange,
        headers: Mapping[str, str],
        *,
        query: str = "",
    ) -> dict[str, str] | None:
        """Send one PUT; the response headers (lower-case) on 200, else ``None``."""
        checked = any(
            h.lower().startswith("x-amz-checksum-") or h.lower() == "content-md5" for h in headers
        )
        answer = self._request(
            "PUT",
            bucket,
            key,
            query=dict(parse_qsl(query, keep_blank_values=True)) if query else {},
            headers=headers,
            body=body,
            checked=checked,
        )
        return None if answer is None or answer[0] != 200 else answer[1]

    def head_bucket(self, bucket: str) -> bool:
        """True when the bucket answered 200; False means "ask botocore" (which
        then names the error: 403, 404, a redirect to another region)."""
        answer = self._request("HEAD", bucket, None, query={}, headers={})
        return answer is not None and answer[0] == 200

    def list_page(
        self, bucket: str, prefix: str, token: str | None, *, max_keys: int | None = None
    ) -> tuple[list[ObjectInfo], str | None] | None:
        """One ListObjectsV2 page: (objects, next continuation token), or ``None``."""
        query = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
        if token is not None:
            query["continuation-token"] = token
        if max_keys is not None:
            query["max-keys"] = str(max_keys)
        answer = self._request("GET", bucket, None, query=query, headers={})
        if answer is None or answer[0] != 200:
            return None
        try:
            return parse_list_page(answer[2])
        except (ET.ParseError, KeyError, ValueError) as exc:
            log.debug("unreadable listing from %s: %s; using botocore", bucket, exc)
            self.fallbacks += 1
            return None

    def _send(
        self,
        method: str,
        host: str,
        target: str,
        body: bytes | FileRange,
        headers: dict[str, str],
    ) -> tuple[int, dict[str, str], bytes]:
        """One exchange over this thread's connection (``http1``); a reused connection
        the server has closed meanwhile is replaced once (the request never reached S3)."""
        head = http1.request_head(method, target, headers)
        for _ in range(2):
            sock, reused = self._connection(host)
            try:
                if isinstance(body, FileRange):
                    sock.sendall(head)
                    body.send(sock)  # zero-copy from the file where possible
                else:
                    sock.sendall(head + body if body else head)
                status, answer, data, close = http1.read_response(sock, method)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop(host)
                if reused:
                    continue
                raise
            except BaseException:
                self._drop(host)
                raise
            if close:
                self._drop(host)
            return status, answer, data
        raise ConnectionError("the server closed the connection twice")  # pragma: no cover


def _payload_sha256(body: bytes | FileRange) -> str:
    if isinstance(body, FileRange):
        return body.payload_sha256()
    return hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256


def parse_list_page(document: bytes) -> tuple[list[ObjectInfo], str | None]:
    """Objects and the next continuation token of a ListObjectsV2 answer
    (``encoding-type=url``: keys arrive URL-encoded)."""
    root = ET.fromstring(document)  # noqa: S314 - the answer of the user's own endpoint
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


def _environ_proxies(url: str) -> dict[str, str]:
    """The proxies botocore would use for ``url`` (its ``get_environ_proxies``, on the
    same standard-library functions, without importing botocore)."""
    from urllib.request import getproxies, proxy_bypass

    try:
        if proxy_bypass(urlsplit(url).netloc):
            return {}
    except (TypeError, OSError):
        pass
    return getproxies()
