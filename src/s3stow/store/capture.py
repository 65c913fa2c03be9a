"""What botocore sent: the request shape the fast path copies, and its proof.

botocore resolves every request from the whole AWS configuration (the endpoint,
addressing, signing region and service, credentials, payload signing, TLS trust,
proxies). The fast path never works these out itself. ``Recorder`` is a
``before-send`` hook that keeps the final request botocore prepared, and once that
request succeeded ``learn`` turns it into a ``Template`` for the same bucket and
operation, only after proving the fast path reproduces it:

- the URL splits into the endpoint part and the key quoted as the fast path quotes it;
- the Authorization header is a SigV4 ``AWS4-HMAC-SHA256`` one with the access key of
  the credentials the fast path signs with, and the session token sent is theirs;
- ``sigv4.sign`` computes botocore's very signature for botocore's request (same Host,
  canonical path and query, headers, scope and keys);
- the payload hash is a SHA-256 or ``UNSIGNED-PAYLOAD`` (never a streaming form);
- the headers mean the same: botocore sends none the fast path would not, and the
  reverse;
- no proxy botocore would use for that URL, and for https a TLS context trusting
  exactly what botocore's HTTP session trusts (``connection_of``).

Anything else is a reason (a string) and the fast path stays off for that bucket.
"""

from __future__ import annotations

import os
import re
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from s3stow.store.sigv4 import UNSIGNED_PAYLOAD, Credentials, sign

_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256 Credential=(?P<key>[^/]+)/(?P<day>\d{8})/(?P<region>[^/]+)/"
    r"(?P<service>[^/]+)/aws4_request, SignedHeaders=(?P<signed>[a-z0-9;-]+), "
    r"Signature=[0-9a-f]{64}$"
)
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
# Headers about the transport, the signature or the SDK, not about the request's
# meaning: the fast path writes its own (or none) of these.
_TRANSPORT = frozenset(
    {
        "authorization",
        "host",
        "x-amz-date",
        "x-amz-content-sha256",
        "x-amz-security-token",
        "content-length",
        "expect",
        "user-agent",
        "amz-sdk-invocation-id",
        "amz-sdk-request",
        "x-amzn-trace-id",
    }
)
OTHER_CREDENTIALS = "botocore signed with other credentials than the fast path would"
OTHER_SESSION = "botocore sent another session token than the fast path would"
METHODS = {
    "PutObject": "PUT",
    "UploadPart": "PUT",
    "HeadBucket": "HEAD",
    "ListObjectsV2": "GET",
    "GetObject": "GET",
    "HeadObject": "HEAD",
}


@dataclass(frozen=True, slots=True)
class Sent:
    """One request botocore prepared: method, URL and headers (names as sent)."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        lower = name.lower()
        return next((v for k, v in self.headers if k.lower() == lower), None)


@dataclass(frozen=True, slots=True)
class Template:
    """How botocore addressed and signed one operation on one bucket."""

    scheme: str
    netloc: str  # as in botocore's URL
    address: str  # where to connect: HOST:PORT (IPv6 in brackets)
    host: str  # the Host header botocore signs (no default port)
    prefix: str  # the path before the quoted key; the whole path for bucket operations
    region: str  # the signing region
    service: str  # the signing name
    unsigned: bool  # UNSIGNED-PAYLOAD; else the body's SHA-256 is signed
    url: str  # botocore's URL, for --debug and doctor

    def path(self, key: str | None) -> str:
        return self.prefix if key is None else self.prefix + quote_key(key)


class Connection:
    """botocore's HTTP session for one client: its TLS trust and its proxies.

    The TLS context is built when first asked for (``load``): loading a CA bundle
    costs a start-up about 0.04 s of CPU, which a run over plain http never needs."""

    def __init__(
        self,
        tls: ssl.SSLContext | None,
        ca_bundle: str | None,
        proxy_for: Callable[[str], str | None],
        reason: str = "",
        known: bool = True,
        *,
        load: Callable[[], tuple[ssl.SSLContext | None, str]] | None = None,
    ) -> None:
        self.ca_bundle = ca_bundle  # the file botocore verifies certificates with; None: off
        self.proxy_for = proxy_for
        self.known = known  # False: botocore's session could not be read; nothing is proved
        self._tls = tls
        self._reason = reason
        self._load = load
        self._lock = threading.Lock()

    def _loaded(self) -> None:
        if self._load is not None:
            with self._lock:
                if self._load is not None:
                    self._tls, self._reason = self._load()
                    self._load = None

    @property
    def tls(self) -> ssl.SSLContext | None:
        """The context trusting what botocore trusts; None: none equal to botocore's
        (see ``reason``)."""
        self._loaded()
        return self._tls

    @property
    def reason(self) -> str:
        self._loaded()
        return self._reason


class Recorder:
    """A ``before-send`` hook keeping, per thread, what botocore sends while
    ``recording()`` is active."""

    def __init__(self) -> None:
        self._local = threading.local()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send.s3", self._seen)

    def _seen(self, request: Any = None, **_: Any) -> None:
        slot: list[Sent] | None = getattr(self._local, "slot", None)
        if slot is not None and request is not None:
            headers = tuple(
                (str(k), v.decode("utf-8") if isinstance(v, bytes) else str(v))
                for k, v in request.headers.items()
            )
            slot.append(Sent(str(request.method), str(request.url), headers))

    @contextmanager
    def recording(self) -> Iterator[list[Sent]]:
        previous = getattr(self._local, "slot", None)
        slot: list[Sent] = []
        self._local.slot = slot
        try:
            yield slot
        finally:
            self._local.slot = previous


def quote_key(key: str) -> str:
    """A key as botocore writes it into the URL (a greedy label: ``/`` and ``~`` kept)."""
    return quote(key, safe="/~")


def host_header(url: str) -> str:
    """The Host a request to ``url`` carries: lower-case name, IPv6 in brackets, the
    port unless it is the scheme's default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != {"http": 80, "https": 443}.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def learn(
    sent: Sequence[Sent],
    *,
    operation: str,
    key: str | None,
    headers: Mapping[str, str],
    credentials: Credentials,
    connection: Connection,
) -> Template | str:
    """The template of botocore's last request in ``sent`` (the one that succeeded),
    or the reason the fast path cannot reproduce it. ``headers`` are the fast path's
    own for the same request."""
    method = METHODS[operation]
    request = next((s for s in reversed(sent) if s.method == method), None)
    if request is None:
        return f"botocore sent no {method} request to learn from"
    parts = urlsplit(request.url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return f"botocore's URL {request.url} is not a plain http(s) URL"
    authorization = request.header("Authorization") or ""
    match = _AUTHORIZATION.match(authorization)
    if match is None:
        scheme = authorization.split(" ", 1)[0] or "no Authorization header"
        return f"botocore signs {operation} with {scheme}, not plain SigV4"
    if match["key"] != credentials.access_key:
        return OTHER_CREDENTIALS
    if (request.header("X-Amz-Security-Token") or None) != credentials.token:
        return OTHER_SESSION
    payload = request.header("X-Amz-Content-SHA256") or ""
    if payload != UNSIGNED_PAYLOAD and not _SHA256.match(payload):
        return f"botocore signs the payload as {payload or 'nothing'}"
    theirs = {k.lower() for k, _ in request.headers} - _TRANSPORT
    ours = {k.lower() for k in headers} - _TRANSPORT
    if theirs != ours:
        differ = sorted(theirs ^ ours)
        return f"botocore and the fast path send different headers ({', '.join(differ)})"
    prefix = parts.path
    if key is not None:
        quoted = quote_key(key)
        if not key or not parts.path.endswith(quoted):
            return f"botocore's path {parts.path} does not end in the key"
        prefix = parts.path[: len(parts.path) - len(quoted)]
    host = host_header(request.url)
    if _resign(request, match, host=host, payload=payload, credentials=credentials) != (
        authorization
    ):
        return "the fast path's signature for botocore's request differs from botocore's"
    if not connection.known:
        return connection.reason
    if connection.proxy_for(request.url):
        return f"botocore sends requests for {parts.hostname} through a proxy"
    if parts.scheme == "https" and connection.tls is None:
        return connection.reason
    port = parts.port or (443 if parts.scheme == "https" else 80)
    name = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return Template(
        scheme=parts.scheme,
        netloc=parts.netloc,
        address=f"{name}:{port}",
        host=host,
        prefix=prefix,
        region=match["region"],
        service=match["service"],
        unsigned=payload == UNSIGNED_PAYLOAD,
        url=f"{parts.scheme}://{parts.netloc}{parts.path}",
    )


def _resign(
    request: Sent,
    match: re.Match[str],
    *,
    host: str,
    payload: str,
    credentials: Credentials,
) -> str:
    """The Authorization ``sigv4.sign`` gives botocore's request, at botocore's time."""
    signed = set(match["signed"].split(";"))
    own = {"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}
    headers = {k: v for k, v in request.headers if k.lower() in signed - own}
    stamp = request.header("X-Amz-Date") or ""
    try:
        now = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    except ValueError:
        return ""
    parts = urlsplit(request.url)
    out = sign(
        request.method,
        parts.path,
        host=host,
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        payload_hash=payload,
        credentials=credentials,
        region=match["region"],
        service=match["service"],
        now=now,
    )
    return out["Authorization"]


def connection_of(client: Any) -> Connection:
    """The TLS trust and proxies of ``client``'s HTTP session, as botocore resolved
    them: its ``verify`` value (``--ca-bundle``, ``AWS_CA_BUNDLE``, ``ca_bundle`` in the
    AWS config or credentials file, ``REQUESTS_CA_BUNDLE``, else certifi's bundle, never
    the system store or ``SSL_CERT_FILE``) loaded into botocore's own kind of SSL
    context, and its proxy configuration (``HTTP(S)_PROXY``/``NO_PROXY``)."""
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    verify = getattr(session, "_verify", None)
    proxies = getattr(session, "_proxy_config", None)
    if session is None or verify is None or proxies is None or not hasattr(session, "_cert_file"):
        reason = "botocore's HTTP session does not show its TLS and proxy settings"
        return Connection(None, None, lambda _url: None, reason, known=False)

    def proxy_for(url: str) -> str | None:
        found = proxies.proxy_url_for(url)
        return str(found) if found else None

    if session._cert_file is not None:
        return Connection(None, None, proxy_for, "botocore presents a client certificate")
    from botocore.httpsession import get_cert_path

    if verify is False:
        return Connection(None, None, proxy_for, load=_unverified)
    bundle = str(get_cert_path(verify))
    return Connection(None, bundle, proxy_for, load=lambda: _trusting(bundle))


def _unverified() -> tuple[ssl.SSLContext | None, str]:
    from botocore.httpsession import create_urllib3_context

    context = create_urllib3_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context, ""


def _trusting(bundle: str) -> tuple[ssl.SSLContext | None, str]:
    """botocore's kind of SSL context trusting exactly ``bundle``, or why there is none."""
    from botocore.httpsession import create_urllib3_context

    if not os.path.isfile(bundle):
        return None, f"the CA bundle {bundle} is not a file"
    context = create_urllib3_context()
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    try:
        context.load_verify_locations(cafile=bundle)
    except (OSError, ssl.SSLError) as exc:
        return None, f"the CA bundle {bundle} is unusable: {exc}"
    return context, ""
