"""The botocore client behind ``S3Store``, and the route each request takes.

Uses one thread-safe S3 client built from the settings (``client.py``), created
on first use, with the fast path (``fastpath.py``) in front of the hot operations
(the writes, listings, and restore's GetObject and HeadObject), and translates every
exception where it leaves botocore. botocore sends the first
request of each hot operation on each bucket, recorded (``capture.Recorder``), and
the fast path learns from it; a ``needs-retry`` observer tells the concurrency
limiter about throttling that botocore retried silently. After a fast attempt,
botocore repeats the request with one attempt fewer (``_fallback_client``). The
requests themselves are ``S3Reads``' (``s3reads.py``) and ``S3Store``'s (``s3.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from s3stow.config import Settings
from s3stow.errors import S3StowError
from s3stow.logs import redact
from s3stow.store.capture import Recorder, connection_of
from s3stow.store.client import make_client, make_session
from s3stow.store.learngate import LearningGate
from s3stow.store.replay import Replay
from s3stow.store.translate import THROTTLE_CODES, TRANSIENT_CODES, translate
from s3stow.store.wire import CHECKSUM_FIELDS

if TYPE_CHECKING:
    from s3stow.store.fastlearn import Outgoing
    from s3stow.store.fastpath import FastPath

log = logging.getLogger(__name__)


def etag_of(value: str | None) -> str:
    """An ETag as the store reports it: without its quotes."""
    return (value or "").strip('"')


def checksum_of(response: dict[str, Any]) -> tuple[str | None, str | None]:
    """The first checksum of ``CHECKSUM_FIELDS`` in a botocore response, and its name."""
    for name in CHECKSUM_FIELDS:
        value = response.get("Checksum" + name)
        if value:
            return value, name
    return None, None


class S3Routing:
    """One botocore client (thread-safe, shared by workers) and the fast path over it.

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
