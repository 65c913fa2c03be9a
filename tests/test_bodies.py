"""Streamed request bodies: one hashing pass, then the same bytes from the file."""

from __future__ import annotations

import base64
import hashlib
import io
import socket
import threading
from pathlib import Path

import pytest
from awscrt import checksums as crt
from hypothesis import given, settings
from hypothesis import strategies as st

from s3stow.errors import SourceChanged, TransferError
from s3stow.store import body
from s3stow.store.body import CHUNK, FileRange, hash_range

DATA = bytes(range(256)) * (3 * CHUNK // 256) + b"tail"  # three chunks and a bit


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("body") / "data.bin"
    path.write_bytes(DATA)
    return path


@settings(max_examples=40, deadline=None)
@given(offset=st.integers(0, len(DATA)), length=st.integers(0, len(DATA)))
def test_hash_range_equals_hashing_the_bytes_at_once(
    data_file: Path, offset: int, length: int
) -> None:
    length = min(length, len(DATA) - offset)
    expected = DATA[offset : offset + length]
    got = hash_range(data_file, offset, length, crc="crc64nvme", sha256=True, md5=True)
    assert got.crc == crt.crc64nvme(expected, 0)
    assert got.sha256 == hashlib.sha256(expected).digest()
    assert got.md5_hex == hashlib.md5(expected, usedforsecurity=False).hexdigest()
    only_crc = hash_range(data_file, offset, length, crc="crc32c", sha256=False, md5=False)
    assert only_crc.crc == crt.crc32c(expected, 0)
    assert (only_crc.sha256, only_crc.md5_hex) == (None, None)


def test_a_range_past_the_end_is_source_changed(data_file: Path) -> None:
    with pytest.raises(SourceChanged):
        hash_range(data_file, len(DATA) - 10, 11, crc=None, sha256=True, md5=False)
    with pytest.raises(SourceChanged):
        FileRange(data_file.parent / "gone.bin", 0, 1).reader()


def test_reader_is_a_seekable_window(data_file: Path) -> None:
    body = FileRange(data_file, CHUNK - 7, CHUNK + 20)
    assert len(body) == CHUNK + 20
    with body.reader() as reader:
        assert len(reader) == CHUNK + 20
        assert reader.read(10) == DATA[CHUNK - 7 : CHUNK + 3]
        assert reader.tell() == 10
        assert reader.seek(0, io.SEEK_END) == CHUNK + 20
        assert reader.read() == b""
        reader.seek(0)
        assert reader.read() == DATA[CHUNK - 7 : 2 * CHUNK + 13]
    payload = hashlib.sha256(DATA[CHUNK - 7 : 2 * CHUNK + 13]).hexdigest()
    assert body.payload_sha256() == payload


def test_reader_of_a_truncated_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    with FileRange(path, 0, 100).reader() as reader:
        path.write_bytes(b"x" * 10)
        with pytest.raises(SourceChanged):
            reader.read()


def _received(send: object, expected: int) -> bytes:
    left, right = socket.socketpair()
    chunks: list[bytes] = []

    def drain() -> None:
        total = 0
        while total < expected:
            chunk = right.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        send(left)  # type: ignore[operator]
    finally:
        left.close()
        reader.join(timeout=10)
        right.close()
    return b"".join(chunks)


@pytest.mark.parametrize("zero_copy", [True, False])
def test_send_writes_exactly_the_range(data_file: Path, zero_copy: bool) -> None:
    body = FileRange(data_file, 5, 2 * CHUNK + 1)
    got = _received(lambda sock: body.send(sock, zero_copy=zero_copy), body.length)
    assert got == DATA[5 : 5 + 2 * CHUNK + 1]


@pytest.mark.parametrize("zero_copy", [True, False])
def test_send_of_a_shrunken_file_raises(tmp_path: Path, zero_copy: bool) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"y" * 1000)
    body = FileRange(path, 0, 2000)
    with pytest.raises(SourceChanged):
        _received(lambda sock: body.send(sock, zero_copy=zero_copy), 1000)


def test_content_md5_is_the_base64_of_the_md5(data_file: Path) -> None:
    from s3stow.transfer.bodies import Body

    md5 = hashlib.md5(DATA, usedforsecurity=False)
    body = Body(FileRange(data_file, 0, len(DATA)), None, md5.hexdigest(), None)
    assert body.content_md5 == base64.b64encode(md5.digest()).decode()


@settings(max_examples=40, deadline=None)
@given(offset=st.integers(0, len(DATA)), length=st.integers(0, len(DATA)))
def test_read_range_reads_the_bytes_at_the_offset(
    data_file: Path, offset: int, length: int
) -> None:
    length = min(length, len(DATA) - offset)
    assert body.read_range(data_file, offset, length) == DATA[offset : offset + length]


def test_read_range_without_pread_seeks_and_reads(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(body, "_pread", body._seek_read)  # as on Windows
    assert body.read_range(data_file, 5, 300) == DATA[5:305]
    with pytest.raises(SourceChanged, match="shorter"):
        body.read_range(data_file, len(DATA) - 2, 3)


def test_read_range_past_the_end_is_source_changed(data_file: Path) -> None:
    with pytest.raises(SourceChanged, match="shorter"):
        body.read_range(data_file, len(DATA) - 2, 3)


@pytest.mark.parametrize("make", ["missing", "folder"])
def test_read_range_fails_as_opening_the_file_does(tmp_path: Path, make: str) -> None:
    """The same error (class, code, message) as ``open_source``, which the streamed
    bodies use: a vanished file is SourceChanged, a folder cannot be read."""
    path = tmp_path / "x"
    if make == "folder":
        path.mkdir()
    errors = []
    for read in (lambda: body.read_range(path, 0, 1), lambda: body.open_source(path)):
        with pytest.raises((SourceChanged, TransferError)) as caught:
            read()
        errors.append((type(caught.value), getattr(caught.value, "code", None), str(caught.value)))
    assert errors[0] == errors[1]
    assert errors[0][0] is (SourceChanged if make == "missing" else TransferError)
