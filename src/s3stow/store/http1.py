"""One HTTP/1.1 exchange on a plain or TLS socket, for the fast path.

``http.client`` costs about 150 us of CPU per request of the ~700 us s3stow spends
on a small file (one ``send`` per header, and the answer's headers parsed through
the ``email`` package); this writes the request head in one piece and reads the
answer straight off the socket, which cut the client CPU per small file by about a
fifth (measured on 2,000 x 16 KiB against the local server). Its scope is what S3
answers: a status line, headers, and a body delimited by Content-Length, chunked
encoding or the end of the connection, after any interim 1xx answers. A connection
is reused only when the answer ended exactly where its framing says, so an answer is
never taken for the next request's. Anything outside that (a malformed line, a
head over 64 KiB, a truncated body) raises an ``http.client`` exception, so the
fast path drops the connection and botocore repeats the request. Header values
with CR or LF are refused like ``http.client`` refuses them.

A GetObject body is not read whole: ``read_head`` leaves it on the socket and
``Stream`` hands it out as asked (Content-Length framing only), giving the connection
back for reuse only when the body was read exactly to its end.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import Any

MAX_HEAD = 64 * 1024
_RECV = 65536


def connect(
    host: str,
    *,
    default_port: int,
    tls: ssl.SSLContext | None,
    timeout: tuple[float, float],
    addresses: dict[str, tuple[Any, Any]],
) -> socket.socket:
    """A connected socket (TLS when ``tls``) to ``host`` (``name[:port]``), with the
    read timeout set. IP literals are resolved once into ``addresses``; names are
    resolved at every connection, so DNS rotation is followed."""
    name, _, port = host.rpartition(":")
    if not name or not port.isdigit():
        name, port = host, str(default_port)
    name = name.strip("[]")
    address = addresses.get(host)
    if address is None:
        info = socket.getaddrinfo(name, int(port), 0, socket.SOCK_STREAM)[0]
        address = info[0], info[4]
        if _is_ip_literal(name):
            addresses[host] = address
    connect_timeout, read_timeout = timeout
    sock = socket.socket(address[0], socket.SOCK_STREAM)
    try:
        sock.settimeout(connect_timeout)
        sock.connect(address[1])
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=name)
        sock.settimeout(read_timeout)
    except BaseException:
        sock.close()
        raise
    return sock


def request_head(method: str, target: str, headers: Mapping[str, str]) -> bytes:
    """The request line and headers, ready to send."""
    lines = [f"{method} {target} HTTP/1.1\r\n"]
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


def read_response(sock: Any, method: str) -> tuple[int, dict[str, str], bytes, bool]:
    """(status, lower-case headers, body, close) of the next answer on ``sock``;
    ``close`` says the connection cannot carry another request.

    Interim answers (100 Continue, 102, 103) are read past, as ``http.client`` reads
    past 100: returned as the answer, they would leave the final one unread on the
    connection, to be taken as the answer to the next request sent on it. 101 (a
    protocol switch) raises. Bytes beyond the answer mark the connection ``close``."""
    status, _, headers, buffer, close = read_head(sock)
    body, extra = read_body(sock, method, status, headers, buffer)
    return status, headers, body, close or extra


def read_head(
    sock: Any,
) -> tuple[int, list[tuple[str, str]], dict[str, str], bytearray, bool]:
    """(status, headers as sent: names in the server's case, the same by lower-case name
    (``lower``), what arrived after the head, close) of the next final answer on
    ``sock``."""
    buffer = bytearray()
    while True:
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            if len(buffer) > MAX_HEAD:
                raise http.client.HTTPException("response head too long")
            chunk = sock.recv(_RECV)
            if not chunk:
                raise http.client.RemoteDisconnected("the server closed the connection")
            buffer += chunk
        lines = buffer[:end].decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        if not version.startswith("HTTP/1.") or not rest[:3].isdigit():
            raise http.client.BadStatusLine(lines[0])
        status = int(rest[:3])
        if status == 101:
            raise http.client.HTTPException("the server switched protocols (101)")
        if status >= 200:
            break
        del buffer[: end + 4]  # an interim answer: its head is all of it
    pairs: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            raise http.client.HTTPException(f"malformed header line {line!r}")
        pairs.append((name.strip(), value.strip()))
    headers = lower(pairs)
    connection = headers.get("connection", "").lower()
    close = "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection)
    return status, pairs, headers, buffer[end + 4 :], close


def lower(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Headers by lower-case name; a repeated header's values joined with ", "."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        name = name.lower()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


def content_length(headers: Mapping[str, str]) -> int | None:
    if "content-length" not in headers:
        return None
    if not headers["content-length"].isdigit():
        raise http.client.HTTPException("invalid Content-Length")
    return int(headers["content-length"])


def read_body(
    sock: Any, method: str, status: int, headers: Mapping[str, str], body: bytearray
) -> tuple[bytes, bool]:
    """The whole body of an answer whose head was read (``body``: what arrived after
    it), and whether the connection cannot be reused."""
    if method == "HEAD" or status in (204, 304):
        length = 0
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        return _read_chunked(sock, body)
    elif (found := content_length(headers)) is not None:
        length = found
    else:  # delimited by the end of the connection
        while chunk := sock.recv(_RECV):
            body += chunk
        return bytes(body), True
    while len(body) < length:
        chunk = sock.recv(max(_RECV, length - len(body)))
        if not chunk:
            raise http.client.IncompleteRead(bytes(body), length - len(body))
        body += chunk
    if len(body) != length:  # bytes beyond the answer: do not reuse this connection
        return bytes(body[:length]), True
    return bytes(body), False


class Stream:
    """A Content-Length body read as the caller asks for it, straight off the socket.

    ``done(reusable)`` is called once: with True when the body was read exactly to its
    end and the connection may carry the next request, with False when it was closed
    early, broke, or more bytes than announced arrived (the socket is then dropped)."""

    def __init__(
        self, sock: Any, first: bytearray, length: int, done: Callable[[bool], None]
    ) -> None:
        self._sock = sock
        self._buffer = first
        self.length = length
        self.left = length
        self._done: Callable[[bool], None] | None = done
        if len(first) > length:  # bytes beyond the answer
            self._buffer = first[:length]
            self._finish(False)
        elif length == 0:
            self._finish(True)

    def _finish(self, reusable: bool) -> None:
        done, self._done = self._done, None
        if done is not None:
            done(reusable)

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes, fewer only at the end (b"" there);
        ``http.client.IncompleteRead`` when the connection ends early."""
        want = min(size, self.left)
        if want <= 0:
            return b""
        block = bytearray(want)
        with memoryview(block) as view:
            self.readinto(view)
        return block  # type: ignore[return-value]  # bytes-like, not copied

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` with the body's next bytes (fewer only at the end, 0 there),
        so a caller can read a large body through one buffer it reuses;
        ``http.client.IncompleteRead`` when the connection ends early."""
        want = min(len(buffer), self.left)
        if want <= 0:
            return 0
        view = buffer[:want]
        got = min(want, len(self._buffer))
        if got:
            view[:got] = self._buffer[:got]
            del self._buffer[:got]
        try:
            while got < want:
                n = self._sock.recv_into(view[got:])
                if not n:
                    raise http.client.IncompleteRead(bytes(view[:got]), self.left - got)
                got += n
        except BaseException:
            self.left -= got
            self._finish(False)
            raise
        self.left -= got
        if self.left == 0:
            self._finish(True)
        return got

    def close(self) -> None:
        """Drop the connection unless the body was read to its end."""
        self._finish(self.left == 0)


def _read_chunked(sock: Any, data: bytearray) -> tuple[bytes, bool]:
    """A chunked body, ``data`` being what already arrived after the head, and whether
    bytes arrived beyond its end; trailers (S3 sends none) are read and discarded."""
    out = bytearray()
    while True:
        while (eol := data.find(b"\r\n")) < 0:
            data += _more(sock, out)
        size_field = bytes(data[:eol]).split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise http.client.HTTPException("invalid chunk size") from None
        if size == 0:
            rest = data[eol:]  # from the size line's CRLF: "\r\n[trailers]\r\n"
            while (stop := rest.find(b"\r\n\r\n")) < 0:
                rest += _more(sock, out)
            return bytes(out), len(rest) > stop + 4
        need = eol + 2 + size + 2
        while len(data) < need:
            data += _more(sock, out)
        out += data[eol + 2 : eol + 2 + size]
        del data[:need]


def _more(sock: Any, received: bytearray) -> bytes:
    chunk: bytes = sock.recv(_RECV)
    if not chunk:
        raise http.client.IncompleteRead(bytes(received))
    return chunk


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
