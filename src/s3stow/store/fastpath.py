"""A lean request path for the hot operations: PutObject, UploadPart, listing, and
restore's GetObject and HeadObject.

botocore spends about 2 ms of CPU on every request (parameter validation, event
hooks, request objects), which dominates a run of many small files. This path
sends one attempt of a PutObject, UploadPart, HeadBucket, ListObjectsV2 page,
GetObject or HeadObject signed by ``sigv4.sign`` over a keep-alive connection per
thread (``fastconn.py``). A GetObject body is streamed off the connection, and is not
checked against a response checksum here: restore's proof (``restore/check``)
hashes the bytes once, where botocore would hash them a second time. The object's
headers become an ``ObjectInfo`` as ``s3reads._info_of`` builds it from botocore's parsed
answer (``wire.info_from_headers``). A GetObject with a version id or a customer key
(SSE-C) is not translated and stays with botocore.

It decides nothing about where and how to send: it copies what it learned from
botocore's own requests (``fastlearn.py``). Credentials come from botocore's credential
object at every request (``get_frozen_credentials``, so SSO, roles and
``credential_process`` refresh).

Fail closed: only success is handled here (200 or 204; 200 or 206 for GetObject and
HeadObject). A key that does not exist (404 NoSuchKey to a GetObject, 404 to a
HeadObject: an object deleted after the listing) is a normal answer: it raises
``replay.Answered``, and the store has botocore read that same answer (``Replay``), so
it is raised exactly as botocore raises it, without a second request, and the path
stays on. Any other answer returns ``None`` and the caller repeats the request
through botocore (with one attempt fewer, so ``max_attempts`` still bounds the
requests), which retries, follows redirects and translates errors as usual. An answer
that says the configuration is wrong for this path (a redirect, 400, 401, 403, another
404, any status but those below) or a TLS, DNS or refused-connection error sends the
bucket to botocore for the rest of the run. Answers about load or about this one
request leave the path on: 429 and 5xx (throttling reaches the limiter), 412
(``If-None-Match``: the object exists; ``If-Match``: it changed), 416 (a range
beyond the object), 400 ``BadDigest`` (bytes damaged on the way), timeouts and
connections dropped midway. A GetObject body that breaks after bytes were handed out
cannot be repeated by botocore: the store raises a transient error for the whole
attempt (``s3reads._FastBody``).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import ssl
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl
from xml.etree import ElementTree as ET

from s3stow import __version__
from s3stow.errors import SourceChanged
from s3stow.store import http1
from s3stow.store.base import ObjectInfo
from s3stow.store.body import FileRange
from s3stow.store.capture import METHODS, Connection
from s3stow.store.fastconn import GOT, Answer, Connections
from s3stow.store.fastlearn import Outgoing
from s3stow.store.replay import Answered, Received
from s3stow.store.sigv4 import UNSIGNED_PAYLOAD, Credentials, canonical_query, sign
from s3stow.store.wire import info_from_headers, parse_list_page, span_of

log = logging.getLogger(__name__)
_USER_AGENT = f"s3stow/{__version__} fastpath"
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_TRANSIENT_STATUS = frozenset({429, 500, 502, 503, 504})
# Exceptions that say nothing about the configuration: the network or the server
# dropped this exchange.
_TRANSIENT_ERRORS = (
    TimeoutError,
    ConnectionResetError,
    ConnectionAbortedError,
    BrokenPipeError,
    http.client.RemoteDisconnected,
    http.client.IncompleteRead,
    ssl.SSLEOFError,
    ssl.SSLZeroReturnError,
)
_OK = frozenset({200, 204})


class FastPath(Connections):
    """One-attempt requests; ``None`` (or False) means "ask botocore"."""

    def __init__(
        self,
        *,
        credentials: Any,
        connection: Connection,
        timeout: tuple[float, float],
        expected_bucket_owner: str | None = None,
        on_throttle: Callable[[], None] | None = None,
        on_transient: Callable[[], None] | None = None,
    ) -> None:
        self._credentials = credentials  # botocore's: get_frozen_credentials() per request
        self._connection = connection
        self._owner = expected_bucket_owner
        self._on_throttle = on_throttle
        self._on_transient = on_transient
        self._timeout = timeout
        self._local = threading.local()
        self._lock = threading.Lock()
        self._addresses = {}  # IP literal -> address
        self._templates = {}
        self._off = {}  # bucket -> why botocore sends everything
        self._misses = {}  # bucket -> credentials that changed while learning
        self.sent = 0
        self.fallbacks = 0

    def _request(
        self,
        operation: str,
        bucket: str,
        key: str | None,
        *,
        query: Mapping[str, str],
        headers: Mapping[str, str],
        body: bytes | FileRange = b"",
        ok: frozenset[int] = _OK,
        stream: bool = False,
        prepared: Outgoing | None = None,
    ) -> Answer | None:
        """One signed attempt answered with a status in ``ok``, or ``None`` when this
        path does not apply, the exchange failed or the answer was another (botocore
        then takes over). With ``stream`` a successful answer's body is left on the
        connection (``Answer.stream``) for the caller to read. ``prepared``: this
        request's ``outgoing(bucket, operation, headers)``, when the caller made it."""
        if prepared is None:
            prepared = self.outgoing(bucket, operation, headers)
        elif prepared.shape[:2] != (bucket, operation):
            raise ValueError(f"{prepared.shape[:2]} prepared for {bucket}, {operation}")
        outgoing = prepared.headers
        template = self._templates.get(prepared.shape)
        if template is None:
            return None
        method = METHODS[operation]
        path = template.path(key)
        if body or method == "PUT":
            outgoing["Content-Length"] = str(len(body))
        payload = UNSIGNED_PAYLOAD if template.unsigned else _payload_sha256(body)
        encoded = canonical_query(query)
        target = f"{path}?{encoded}" if encoded else path
        try:
            frozen = self._credentials.get_frozen_credentials()
            signed = sign(
                method,
                path,
                host=template.host,
                query=query,
                headers=outgoing,
                payload_hash=payload,
                credentials=Credentials(frozen.access_key, frozen.secret_key, frozen.token),
                region=template.region,
                service=template.service,
            )
            signed["User-Agent"] = _USER_AGENT
            if log.isEnabledFor(logging.DEBUG):  # secrets are redacted by the log filter
                log.debug("fast path %s %s%s headers: %s", method, template.host, target, signed)
            answer = self._send(template, method, target, body, signed, stream=stream)
        except SourceChanged:
            raise  # the file, not the request: botocore would fail the same way
        except _TRANSIENT_ERRORS as exc:
            log.debug("fast path %s %s/%s: %r; botocore repeats it", method, bucket, key, exc)
            self.fallbacks += 1
            if self._on_transient:
                self._on_transient()
            return None
        except Exception as exc:  # noqa: BLE001 - TLS, DNS, refused, malformed: fail closed
            self.fallbacks += 1
            self.turn_off(bucket, f"{method} failed: {exc!r}")
            return None
        self.sent += 1
        status = answer.status
        if status in ok:
            return answer
        if _missing_key(operation, answer):
            url = f"{template.scheme}://{template.netloc}{target}"
            raise Answered(Received(method, url, status, answer.pairs, answer.body))
        self.fallbacks += 1
        if status in _TRANSIENT_STATUS:
            if self._on_transient:
                self._on_transient()
            if status in (429, 503) and self._on_throttle is not None:
                self._on_throttle()
        elif not (
            status in (412, 416) or (status == 400 and b"<Code>BadDigest</Code>" in answer.body)
        ):
            self.turn_off(bucket, f"{method} answered {status}")
        return None

    def put(
        self,
        operation: str,
        bucket: str,
        key: str,
        body: bytes | FileRange,
        headers: Mapping[str, str],
        *,
        query: str = "",
        prepared: Outgoing | None = None,
    ) -> dict[str, str] | None:
        """Send one PutObject or UploadPart; the response headers (lower-case) on 200,
        else ``None``. ``prepared``: this request's ``outgoing`` (its shape computed
        once), used for this request only."""
        answer = self._request(
            operation,
            bucket,
            key,
            query=dict(parse_qsl(query, keep_blank_values=True)) if query else {},
            headers=headers,
            body=body,
            prepared=prepared,
        )
        return None if answer is None or answer.status != 200 else answer.headers

    def head_bucket(self, bucket: str) -> bool:
        """True when the bucket answered 200; False means "ask botocore" (which
        then names the error: 403, 404, a redirect to another region)."""
        answer = self._request("HeadBucket", bucket, None, query={}, headers={})
        return answer is not None and answer.status == 200

    def list_page(
        self,
        bucket: str,
        prefix: str,
        token: str | None,
        *,
        max_keys: int | None = None,
        storage_class: bool,
    ) -> tuple[list[ObjectInfo], str | None] | None:
        """One ListObjectsV2 page: (objects, next continuation token), or ``None``;
        with ``storage_class`` each object's class too."""
        query = {"list-type": "2", "prefix": prefix, "encoding-type": "url"}
        if token is not None:
            query["continuation-token"] = token
        if max_keys is not None:
            query["max-keys"] = str(max_keys)
        answer = self._request("ListObjectsV2", bucket, None, query=query, headers={})
        if answer is None or answer.status != 200:
            return None
        try:
            return parse_list_page(answer.body, storage_class=storage_class)
        except (ET.ParseError, KeyError, ValueError) as exc:
            self.fallbacks += 1
            self.turn_off(bucket, f"an unreadable listing ({exc})")
            return None

    def get(
        self, bucket: str, key: str, *, prepared: Outgoing
    ) -> tuple[ObjectInfo, int, int, http1.Stream] | None:
        """One GetObject answered 200 or 206: (its ObjectInfo, the first byte's offset,
        the body's length, the body to stream), else ``None``. ``prepared``: its
        ``outgoing(bucket, "GetObject", headers)``."""
        answer = self._request(
            "GetObject",
            bucket,
            key,
            query={},
            headers=prepared.headers,
            ok=GOT,
            stream=True,
            prepared=prepared,
        )
        if answer is None:
            return None
        assert answer.stream is not None
        try:
            length = answer.stream.length
            start, size = span_of(answer.headers, length)
            info = info_from_headers(key, answer.headers, answer.pairs, size=size)
        except (ValueError, TypeError, IndexError) as exc:
            answer.stream.close()
            self.fallbacks += 1
            self.turn_off(bucket, f"an unreadable GetObject answer ({exc})")
            return None
        return info, start, length, answer.stream

    def head(
        self, bucket: str, key: str, *, part_number: int | None, prepared: Outgoing
    ) -> ObjectInfo | None:
        """One HeadObject answered 200 (or 206, as S3 answers a part number): its
        ObjectInfo, else ``None``. ``prepared``: its ``outgoing(bucket, "HeadObject",
        headers)``."""
        query = {"partNumber": str(part_number)} if part_number else {}
        answer = self._request(
            "HeadObject",
            bucket,
            key,
            query=query,
            headers=prepared.headers,
            ok=GOT,
            prepared=prepared,
        )
        if answer is None:
            return None
        try:
            size = http1.content_length(answer.headers) or 0
            return info_from_headers(key, answer.headers, answer.pairs, size=size)
        except (ValueError, TypeError, http.client.HTTPException) as exc:
            self.fallbacks += 1
            self.turn_off(bucket, f"an unreadable HeadObject answer ({exc})")
            return None


def _missing_key(operation: str, answer: Answer) -> bool:
    """A 404 that says the key does not exist: S3's NoSuchKey to a GetObject, or any
    404 to a HeadObject (a HEAD answer has no body; botocore reads it as "404")."""
    if answer.status != 404 or operation not in ("GetObject", "HeadObject"):
        return False
    return operation == "HeadObject" or b"<Code>NoSuchKey</Code>" in answer.body


def _payload_sha256(body: bytes | FileRange) -> str:
    if isinstance(body, FileRange):
        return body.payload_sha256()
    return hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA256
