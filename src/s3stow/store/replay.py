"""botocore's reading of an answer the fast path received: ``Replay``.

A GetObject or HeadObject of a key that does not exist (deleted after the listing)
is answered 404 on the fast path. That is a normal answer, not a sign the path is
wrong, and it must reach the caller exactly as botocore raises it (the same
``ClientError`` subclass, code, message and metadata), with no second request. So
the same call is made through botocore with the answer handed to it at
``before-send`` (the hook botocore asks for a response before it sends): botocore
builds and signs its request, takes the answer instead of sending, and parses,
retries (it does not retry a 404) and raises as for its own. When the request
botocore built is not the one the fast path sent (method, path or query), the hook
hands nothing and botocore sends its own request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Received:
    """An answer as it came off the wire, and the request it answered."""

    method: str
    url: str
    status: int
    pairs: list[tuple[str, str]]  # headers as sent, names in the server's case
    body: bytes


class Answered(Exception):
    """A final answer botocore is to read (``Replay``), raised by the fast path."""

    def __init__(self, received: Received) -> None:
        super().__init__(f"{received.method} {received.url} answered {received.status}")
        self.received = received


class _Raw:
    """What ``AWSResponse.content`` reads an error body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _same(url: str, other: str) -> bool:
    ours, theirs = urlsplit(url), urlsplit(other)
    return (ours.netloc, unquote(ours.path), sorted(parse_qsl(ours.query))) == (
        theirs.netloc,
        unquote(theirs.path),
        sorted(parse_qsl(theirs.query)),
    )


class Replay:
    """Per thread, one answer for botocore's next request instead of sending it."""

    def __init__(self) -> None:
        self._local = threading.local()

    def attach(self, client: Any) -> None:
        client.meta.events.register("before-send.s3", self._answer)

    @contextmanager
    def answering(self, received: Received) -> Iterator[None]:
        """Within: this thread's next botocore request is answered with ``received``."""
        self._local.pending = received
        try:
            yield
        finally:
            self._local.pending = None

    def _answer(self, request: Any = None, **_: Any) -> Any:
        received: Received | None = getattr(self._local, "pending", None)
        if received is None or request is None:
            return None
        self._local.pending = None  # once: a retry botocore decides on is really sent
        if request.method != received.method or not _same(request.url, received.url):
            log.debug(
                "botocore's %s %s is not the fast path's %s %s: botocore sends it",
                request.method,
                request.url,
                received.method,
                received.url,
            )
            return None
        from botocore.awsrequest import AWSResponse
        from urllib3 import HTTPHeaderDict

        # urllib3's headers, as botocore gets them from the wire (repeats joined)
        return AWSResponse(
            request.url, received.status, HTTPHeaderDict(received.pairs), _Raw(received.body)
        )
