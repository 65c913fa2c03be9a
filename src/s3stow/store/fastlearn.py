"""What the fast path has learned: a ``Template`` per bucket, operation and header names.

The fast path decides nothing about where and how to send: botocore sends the first
request of each operation on each bucket, and ``capture.learn`` turns that request
into a ``Template`` (URL, Host, signing region and service, payload signing) once it
has proved the fast path reproduces it; later requests of that kind copy it. A
template is learned for a ``Shape`` (bucket, operation, header names: botocore's
choices, e.g. payload signing, follow the headers present), computed once per request
(``Outgoing``). A bucket whose request cannot be proved equal stays with botocore (the
reason is logged under ``--debug``), and so does a bucket turned off later
(``turn_off``: every template of it forgotten).

``Learned`` is the first layer of ``FastPath`` (``fastpath.py``), which sets its state.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from s3stow.store.capture import OTHER_CREDENTIALS, OTHER_SESSION, Connection, Sent, Template, learn
from s3stow.store.sigv4 import UNSIGNED_PAYLOAD, Credentials

log = logging.getLogger(__name__)
Shape = tuple[str, str, frozenset[str]]  # bucket, operation, header names


class Outgoing(NamedTuple):
    """One request as this path would send it: its shape and its headers (the caller's
    with the expected bucket owner). Made once per request (``FastPath.outgoing``), so
    the shape is computed once; good for that one request (its headers are sent)."""

    shape: Shape
    headers: dict[str, str]


def shape(bucket: str, operation: str, headers: Mapping[str, str]) -> Shape:
    """What a template is learned for: the same bucket, operation and header names
    (botocore's choices, e.g. payload signing, follow the headers present)."""
    return bucket, operation, frozenset(h.lower() for h in headers)


class Learned:
    """The templates learned per ``Shape`` and the buckets botocore keeps, behind a
    lock for the writers (a learned template is read without one)."""

    _credentials: Any  # botocore's: get_frozen_credentials() per request
    _connection: Connection
    _owner: str | None  # the expected bucket owner, sent with every request
    _lock: threading.Lock
    _templates: dict[Shape, Template]
    _off: dict[str, str]  # bucket -> why botocore sends everything
    _misses: dict[str, int]  # bucket -> credentials that changed while learning

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The headers this path sends for a request with ``headers``."""
        if self._owner:
            return {**headers, "x-amz-expected-bucket-owner": self._owner}
        return dict(headers)

    def outgoing(self, bucket: str, operation: str, headers: Mapping[str, str]) -> Outgoing:
        """One request's shape and headers, for ``knows_shape`` and ``put``."""
        sent = self.headers(headers)
        return Outgoing(shape(bucket, operation, sent), sent)

    def knows(self, bucket: str, operation: str, headers: Mapping[str, str]) -> bool:
        """Whether a request of this shape goes through this path."""
        return shape(bucket, operation, self.headers(headers)) in self._templates

    def knows_shape(self, known: Shape) -> bool:
        """``knows`` for a shape already computed (``outgoing``)."""
        return known in self._templates

    def learn(
        self,
        bucket: str,
        operation: str,
        *,
        key: str | None,
        headers: Mapping[str, str],
        sent: Sequence[Sent],
    ) -> None:
        """Adopt what botocore sent in a call that succeeded, once proved equal;
        otherwise botocore keeps the bucket (the reason under --debug)."""
        outgoing = self.headers(headers)
        wanted = shape(bucket, operation, outgoing)
        if wanted in self._templates or bucket in self._off:
            return
        frozen = self._credentials.get_frozen_credentials()
        found = learn(
            sent,
            operation=operation,
            key=key,
            headers=outgoing,
            credentials=Credentials(frozen.access_key, frozen.secret_key, frozen.token),
            connection=self._connection,
        )
        if isinstance(found, str):
            if found in (OTHER_CREDENTIALS, OTHER_SESSION) and self._misses.get(bucket, 0) < 2:
                # credentials refreshed between botocore's signature and this check:
                # learn from a later request (a third time means they really differ)
                self._misses[bucket] = self._misses.get(bucket, 0) + 1
                log.debug("fast path not yet on for %s: %s", bucket, found)
                return
            self.turn_off(bucket, found)
            return
        with self._lock:
            if bucket in self._off:  # turned off meanwhile
                return
            self._templates[wanted] = found
        log.debug(
            "fast path on for %s on %s: %s, signing region %s, %s payload",
            operation,
            bucket,
            found.url,
            found.region,
            "unsigned" if found.unsigned else "signed",
        )

    def turn_off(self, bucket: str, reason: str) -> None:
        with self._lock:
            if bucket in self._off:
                return
            self._off[bucket] = reason
            for known in [k for k in self._templates if k[0] == bucket]:
                del self._templates[known]
        log.debug("fast path off for bucket %s: %s; botocore sends its requests", bucket, reason)

    def off_reason(self, bucket: str) -> str | None:
        return self._off.get(bucket)

    def template(self, bucket: str, operation: str) -> Template | None:
        """A learned template for ``operation`` on ``bucket`` (for doctor)."""
        return next(
            (t for k, t in list(self._templates.items()) if k[:2] == (bucket, operation)), None
        )

    def describe(
        self, operation: str, bucket: str, key: str | None, headers: Mapping[str, str]
    ) -> dict[str, str] | None:
        """Where and how this path would send a request, without sending it: URL, Host,
        signing region and service, payload form (``None`` when botocore would send it)."""
        template = self._templates.get(shape(bucket, operation, self.headers(headers)))
        if template is None:
            return None
        return {
            "url": f"{template.scheme}://{template.netloc}{template.path(key)}",
            "host": template.host,
            "region": template.region,
            "service": template.service,
            "payload": UNSIGNED_PAYLOAD if template.unsigned else "sha256",
        }

    def signs_payload(self, bucket: str) -> bool:
        """Whether the learned writes to ``bucket`` sign the payload's SHA-256."""
        return any(
            not t.unsigned
            for k, t in list(self._templates.items())
            if k[0] == bucket and k[1] in ("PutObject", "UploadPart")
        )
