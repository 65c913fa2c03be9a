"""The fast path's HTTP/1.1 exchange: answers split anywhere across reads, every body
framing S3 uses, and everything else refused (so botocore repeats the request)."""

from __future__ import annotations

import http.client
import itertools
import mimetypes
import socket
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3stow.store.http1 import Stream, lower, read_head, read_response, request_head
from s3stow.transfer.context import _guess_type


class Feed:
    """A socket stand-in that returns ``data`` in the given pieces, then EOF."""

    def __init__(self, data: bytes, cuts: list[int] | None = None) -> None:
        points = sorted({c for c in cuts or [] if 0 < c < len(data)})
        edges = [0, *points, len(data)]
        self.pieces = [data[a:b] for a, b in itertools.pairwise(edges)]

    def recv(self, _size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    def recv_into(self, view: memoryview) -> int:
        if not self.pieces:
            return 0
        piece = self.pieces.pop(0)
        n = min(len(view), len(piece))
        view[:n] = piece[:n]
        if n < len(piece):
            self.pieces.insert(0, piece[n:])
        return n


OK = b'HTTP/1.1 200 OK\r\nETag: "abc"\r\nx-amz-checksum-crc64nvme: AAAA\r\n'


@given(st.lists(st.integers(min_value=1, max_value=200), max_size=12))
def test_content_length_answer_split_anywhere(cuts: list[int]) -> None:
    wire = OK + b"Content-Length: 11\r\n\r\nhello world"
    status, headers, body, close = read_response(Feed(wire, cuts), "PUT")
    assert (status, body, close) == (200, b"hello world", False)
    assert headers["etag"] == '"abc"'
    assert headers["x-amz-checksum-crc64nvme"] == "AAAA"


@given(st.lists(st.integers(min_value=1, max_value=200), max_size=12))
def test_chunked_answer_split_anywhere(cuts: list[int]) -> None:
    wire = OK + b"Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    status, _, body, close = read_response(Feed(wire, cuts), "GET")
    assert (status, body, close) == (200, b"hello world", False)


def test_chunked_answer_with_trailers() -> None:
    wire = OK + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-trailer: 1\r\n\r\n"
    assert read_response(Feed(wire), "GET")[2] == b"abc"


def test_close_delimited_head_and_no_content_answers() -> None:
    close_delimited = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n<a/>more"
    assert read_response(Feed(close_delimited, [30]), "GET")[2:] == (b"<a/>more", True)
    head = OK + b"Content-Length: 1000\r\n\r\n"  # HEAD: the length describes no body here
    assert read_response(Feed(head), "HEAD")[2:] == (b"", False)
    assert read_response(Feed(b"HTTP/1.1 204 No Content\r\n\r\n"), "DELETE")[0] == 204
    old = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert read_response(Feed(old), "PUT")[3] is True  # HTTP/1.0 without keep-alive
    extra = OK + b"Content-Length: 2\r\n\r\nokSURPRISE"
    assert read_response(Feed(extra), "PUT")[2:] == (b"ok", True)  # never reused


def test_repeated_headers_are_joined() -> None:
    wire = b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n"
    assert read_response(Feed(wire), "PUT")[1]["x-a"] == "1, 2"


CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (b"", http.client.RemoteDisconnected),  # a kept-alive connection the server closed
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", http.client.IncompleteRead),
        (b"SSH-2.0-OpenSSH\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", http.client.BadStatusLine),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", http.client.HTTPException),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", http.client.HTTPException),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            http.client.IncompleteRead,
        ),
        (b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"a" * 70_000, http.client.HTTPException),
    ],
)
def test_anything_else_raises(wire: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        read_response(Feed(wire, [7, 40]), "PUT")


def test_request_head_refuses_header_injection() -> None:
    head = request_head("PUT", "/b/k%20x", {"Host": "h", "x-amz-meta-a": "1"})
    assert head == b"PUT /b/k%20x HTTP/1.1\r\nHost: h\r\nx-amz-meta-a: 1\r\n\r\n"
    for headers in ({"x-amz-meta-a": "1\r\nX-Evil: 1"}, {"X-Evil\r\nA": "1"}, {"a:b": "1"}):
        with pytest.raises(ValueError, match="invalid header"):
            request_head("PUT", "/", headers)


def test_a_real_socket_exchange() -> None:
    server, client = socket.socketpair()
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nyes"

    def serve() -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += server.recv(1024)
        server.sendall(answer[:20])
        server.sendall(answer[20:])

    thread = threading.Thread(target=serve)
    thread.start()
    client.sendall(request_head("GET", "/", {"Host": "x"}))
    assert read_response(client, "GET") == (200, {"content-length": "3"}, b"yes", False)
    thread.join()
    server.close()
    client.close()


NAMES = st.from_regex(r"[A-Za-z0-9_\-]{1,12}(\.[A-Za-z0-9]{1,5}){0,3}", fullmatch=True)


@given(NAMES)
def test_content_type_by_suffix_agrees_with_mimetypes(name: str) -> None:
    assert _guess_type(name) == mimetypes.guess_type(name)[0]


@given(st.lists(st.integers(min_value=1, max_value=200), max_size=12))
def test_interim_answers_are_read_past(cuts: list[int]) -> None:
    # Returned as the answer, a 100 would leave the final answer on the connection,
    # where the next request sent on it would read it as its own.
    interim = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"
    wire = interim + OK + b"Content-Length: 2\r\n\r\nok"
    status, headers, body, close = read_response(Feed(wire, cuts), "PUT")
    assert (status, body, close) == (200, b"ok", False)
    assert headers["etag"] == '"abc"'
    assert "link" not in headers
    with pytest.raises(http.client.HTTPException, match="switched protocols"):
        read_response(Feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"), "GET")


def test_bytes_beyond_a_chunked_answer_end_the_connection() -> None:
    ended = CHUNKED + b"2\r\nok\r\n0\r\n\r\n"
    assert read_response(Feed(ended, [30]), "GET")[2:] == (b"ok", False)
    trailers = CHUNKED + b"2\r\nok\r\n0\r\nx-t: 1\r\n\r\n"
    assert read_response(Feed(trailers, [50]), "GET")[2:] == (b"ok", False)
    stray = CHUNKED + b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n"
    assert read_response(Feed(stray), "GET")[2:] == (b"ok", True)  # never reused


def _streamed(wire: bytes, cuts: list[int]) -> tuple[Stream, list[bool]]:
    feed = Feed(wire, cuts)
    status, pairs, headers, rest, close = read_head(feed)
    assert (status, close) == (200, False)
    assert headers == lower(pairs)
    length = int(headers["content-length"])
    ends: list[bool] = []
    return Stream(feed, rest, length, ends.append), ends


@given(
    st.lists(st.integers(min_value=1, max_value=200), max_size=12),
    st.integers(min_value=1, max_value=20),
)
def test_a_streamed_body_read_to_its_end_keeps_the_connection(cuts: list[int], size: int) -> None:
    stream, ends = _streamed(OK + b"Content-Length: 11\r\n\r\nhello world", cuts)
    got = b""
    while block := stream.read(size):
        assert len(block) == min(size, 11 - len(got))  # full blocks but the last
        got += bytes(block)
    stream.close()
    assert (got, ends) == (b"hello world", [True])


def test_a_streamed_body_closed_early_or_cut_drops_the_connection() -> None:
    stream, ends = _streamed(OK + b"Content-Length: 11\r\n\r\nhello world", [60])
    assert stream.read(5) == b"hello"
    stream.close()
    assert ends == [False]
    stream, ends = _streamed(OK + b"Content-Length: 20\r\n\r\nhello world", [])
    with pytest.raises(http.client.IncompleteRead):
        stream.read(20)
    assert ends == [False]
    stream.close()
    assert ends == [False]  # once


def test_bytes_beyond_a_streamed_body_end_the_connection() -> None:
    stream, ends = _streamed(OK + b"Content-Length: 5\r\n\r\nhelloHTTP/1.1 200 OK", [])
    assert ends == [False]
    assert stream.read(100) == b"hello"
    assert stream.read(100) == b""
