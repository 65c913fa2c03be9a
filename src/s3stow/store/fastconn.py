"""The fast path's connections: one keep-alive connection per thread and server.

A request goes out over this thread's connection to its template's address (``http1``:
one HTTP/1.1 exchange, a fifth cheaper per small file than ``http.client``), opened
with the TLS trust and proxies of botocore's HTTP session (``capture.connection_of``);
a reused connection the server closed meanwhile is replaced once. A GetObject body is
streamed off the connection (``http1.Stream``, framed by Content-Length; another
framing goes to botocore), never read whole: the socket is lent to the body until it
is read to its end (then kept) or closed early (then dropped). ``preconnect`` opens a
connection ahead, while a request waits for the learning gate.

``Connections`` is the second layer of ``FastPath`` (``fastpath.py``), which sets its
state.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any, NamedTuple

from s3stow.store import http1
from s3stow.store.body import FileRange
from s3stow.store.capture import Template
from s3stow.store.fastlearn import Learned

log = logging.getLogger(__name__)
GOT = frozenset({200, 206})  # a GetObject's (and HeadObject's) success


class Answer(NamedTuple):
    """One answer: status, headers by lower-case name, the body (read whole), the
    headers as sent, and the body left on the connection (a streamed GetObject)."""

    status: int
    headers: dict[str, str]
    body: bytes
    pairs: list[tuple[str, str]]
    stream: http1.Stream | None = None


class Connections(Learned):
    """This thread's sockets to the learned addresses, and one exchange over them."""

    _local: threading.local  # .conns: (scheme, address) -> this thread's socket
    _timeout: tuple[float, float]  # connect, read
    _addresses: dict[str, tuple[Any, Any]]  # IP literal -> address

    def preconnect(self, bucket: str) -> None:
        """Open this thread's connection to ``bucket``'s server now, when a request of
        another operation has taught its address (HeadBucket, a listing), so that the
        handshake (TCP, TLS) overlaps a wait (the learning gate's) instead of the first
        request. A failure is left for that request (it connects again)."""
        template = next((t for k, t in list(self._templates.items()) if k[0] == bucket), None)
        if template is None:
            return
        conns = getattr(self._local, "conns", None)
        if conns and (template.scheme, template.address) in conns:
            return
        try:
            self._connection_to(template)
        except OSError as exc:
            log.debug("no connection opened ahead to %s: %s", template.address, exc)

    def _connection_to(self, template: Template) -> tuple[socket.socket, bool]:
        """This thread's socket to the template's address and whether it was used before."""
        connections: dict[tuple[str, str], socket.socket] = (
            getattr(self._local, "conns", None) or {}
        )
        self._local.conns = connections
        where = (template.scheme, template.address)
        sock = connections.get(where)
        if sock is not None:
            return sock, True
        sock = http1.connect(
            template.address,
            default_port=443 if template.scheme == "https" else 80,
            tls=self._connection.tls if template.scheme == "https" else None,
            timeout=self._timeout,
            addresses=self._addresses,
        )
        connections[where] = sock
        return sock, False

    def _drop(self, template: Template) -> None:
        conns = getattr(self._local, "conns", {})
        sock = conns.pop((template.scheme, template.address), None)
        if sock is not None:
            sock.close()

    def _send(
        self,
        template: Template,
        method: str,
        target: str,
        body: bytes | FileRange,
        headers: dict[str, str],
        *,
        stream: bool = False,
    ) -> Answer:
        """One exchange over this thread's connection (``http1``); a reused connection
        the server has closed meanwhile is replaced once (the request never reached S3).
        With ``stream``, a 200/206 body framed by Content-Length stays on the socket,
        which is lent to the ``Answer.stream`` until it is read to its end (then kept
        for the next request) or closed early (then dropped); another framing raises."""
        head = http1.request_head(method, target, headers)
        for _ in range(2):
            sock, reused = self._connection_to(template)
            try:
                if isinstance(body, FileRange):
                    sock.sendall(head)
                    body.send(sock)  # zero-copy from the file where possible
                else:
                    sock.sendall(head + body if body else head)
                status, pairs, answer, rest, close = http1.read_head(sock)
                if stream and status in GOT and method != "HEAD":
                    length = http1.content_length(answer)
                    if length is None or "transfer-encoding" in answer:
                        raise http.client.HTTPException(
                            "a GetObject body not framed by Content-Length"
                        )
                    lent = self._lend(template, sock, keep=not close)
                    body_stream = http1.Stream(sock, rest, length, lent)
                    return Answer(status, answer, b"", pairs, body_stream)
                data, extra = http1.read_body(sock, method, status, answer, rest)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop(template)
                if reused:
                    continue
                raise
            except BaseException:
                self._drop(template)
                raise
            if close or extra:
                self._drop(template)
            return Answer(status, answer, data, pairs)
        raise ConnectionError("the server closed the connection twice")  # pragma: no cover

    def _lend(
        self, template: Template, sock: socket.socket, *, keep: bool
    ) -> Callable[[bool], None]:
        """Take ``sock`` out of this thread's connections while a body streams from it;
        the callback gives it back when the body ended exactly (and ``keep``), else
        closes it."""
        conns: dict[tuple[str, str], socket.socket] = self._local.conns
        where = (template.scheme, template.address)
        conns.pop(where, None)

        def done(reusable: bool) -> None:
            if reusable and keep and where not in conns:
                conns[where] = sock
            else:
                sock.close()

        return done
