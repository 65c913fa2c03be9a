"""Request bodies streamed from a file: a byte range that is never held in memory.

A large PutObject or UploadPart is sent in two passes over its byte range: the
transfer layer hashes it chunk by chunk (``hash_range``: the checksum, the MD5 for
the ETag check, the SHA-256 when the payload is signed), then the store sends the
same range straight from the file (``FileRange.send``: ``sendfile`` where the OS and
the socket allow it, otherwise 1 MiB reads into one reused buffer). Memory stays at
one chunk per thread whatever the part size, and the bytes are never copied into
Python objects. ``FileRange.reader`` gives botocore a seekable, length-limited file
object for the fallback path. A file that turns out shorter than the range raises
``SourceChanged`` instead of sending a short body.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NoReturn

from s3stow.errors import SourceChanged, TransferError
from s3stow.store.checksums import crc_function

CHUNK = 1024 * 1024
UNREADABLE = ("PermissionDenied", "ReadError")  # codes of a file that cannot be read
_buffers = threading.local()


def _buffer() -> bytearray:
    """This thread's reusable chunk buffer."""
    buffer: bytearray | None = getattr(_buffers, "chunk", None)
    if buffer is None:
        buffer = _buffers.chunk = bytearray(CHUNK)
    return buffer


def _raise_open_error(path: Path, exc: OSError) -> NoReturn:
    """The error of a file that cannot be opened: a vanished file is ``SourceChanged``,
    other errors name the file (a code of ``UNREADABLE``)."""
    if isinstance(exc, FileNotFoundError):
        raise SourceChanged(f"{path} vanished during upload") from None
    code = UNREADABLE[0] if isinstance(exc, PermissionError) else UNREADABLE[1]
    raise TransferError(f"cannot read {path}: {exc.strerror}", code=code) from exc


def open_source(path: Path) -> BinaryIO:
    """Open ``path`` for reading; a vanished file is ``SourceChanged``, other errors name
    the file."""
    try:
        return open(path, "rb", buffering=0)
    except OSError as exc:
        _raise_open_error(path, exc)


def read_range(path: Path, offset: int, length: int) -> bytes:
    """Read exactly ``length`` bytes at ``offset`` into memory (small bodies), or raise
    ``SourceChanged``.

    Three system calls (open, pread, close) where a file object costs six or more
    (open, fstat, ioctl, lseek, read, close): a small file's upload is mostly these.
    Where ``os.pread`` is missing (Windows) the descriptor is sought and read. A
    folder opens on POSIX and fails at the read: it fails as ``open_source``'s does."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except OSError as exc:
        _raise_open_error(path, exc)
    try:
        try:
            data = _pread(fd, length, offset)
        except IsADirectoryError as exc:  # open() refuses a folder when it opens it
            _raise_open_error(path, exc)
        while 0 < len(data) < length:  # a short read before the end (rare): the rest
            more = _pread(fd, length - len(data), offset + len(data))
            if not more:
                break
            data += more
    finally:
        os.close(fd)
    if len(data) != length:
        raise SourceChanged(f"{path} is shorter than when it was discovered")
    return data


def _seek_read(fd: int, length: int, offset: int) -> bytes:
    """``os.pread`` where the platform has none: seek, then read."""
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, length)


_pread: Callable[[int, int, int], bytes] = getattr(os, "pread", _seek_read)
_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0)  # no newline translation on Windows


@dataclass(frozen=True, slots=True)
class RangeHashes:
    """What one pass over a byte range computed (``None`` where not asked for)."""

    crc: int | None
    sha256: bytes | None
    md5_hex: str | None


def hash_range(
    path: Path, offset: int, length: int, *, crc: str | None, sha256: bool, md5: bool
) -> RangeHashes:
    """Read ``length`` bytes at ``offset`` in chunks and hash them: the CRC named by
    ``crc`` (crc64nvme, crc32c, crc32), SHA-256 and MD5 as asked. A file shorter than
    the range raises ``SourceChanged``."""
    function = crc_function(crc) if crc is not None else None
    value = 0
    sha = hashlib.sha256() if sha256 else None
    digest_md5 = hashlib.md5(usedforsecurity=False) if md5 else None
    buffer = _buffer()
    view = memoryview(buffer)
    with open_source(path) as handle:
        handle.seek(offset)
        left = length
        while left > 0:
            got = handle.readinto(view[: min(left, CHUNK)])  # type: ignore[attr-defined]
            if not got:
                raise SourceChanged(f"{path} is shorter than when it was discovered")
            chunk = view[:got]
            if function is not None:
                value = function(chunk, value)
            if sha is not None:
                sha.update(chunk)
            if digest_md5 is not None:
                digest_md5.update(chunk)
            left -= got
    return RangeHashes(
        value if function is not None else None,
        sha.digest() if sha is not None else None,
        digest_md5.hexdigest() if digest_md5 is not None else None,
    )


@dataclass(frozen=True, slots=True)
class FileRange:
    """``length`` bytes of ``path`` from ``offset``, sent as a request body.

    ``sha256_hex`` is the payload hash when the caller computed it (stores that sign
    the payload use it instead of reading the range again)."""

    path: Path
    offset: int
    length: int
    sha256_hex: str | None = None

    def __len__(self) -> int:
        return self.length

    def payload_sha256(self) -> str:
        """Hex SHA-256 of the range (computed by reading it unless already known)."""
        if self.sha256_hex is not None:
            return self.sha256_hex
        hashes = hash_range(self.path, self.offset, self.length, crc=None, sha256=True, md5=False)
        assert hashes.sha256 is not None
        return hashes.sha256.hex()

    def reader(self) -> RangeReader:
        """A seekable file object over the range (for botocore)."""
        return RangeReader(self)

    def send(self, sock: socket.socket, *, zero_copy: bool | None = None) -> None:
        """Write the range to a connected socket: zero-copy ``sendfile`` on a plain
        socket where the OS has it (``zero_copy=None``), else chunked reads and
        ``sendall``."""
        if zero_copy is None:
            zero_copy = not isinstance(sock, ssl.SSLSocket) and hasattr(os, "sendfile")
        with open_source(self.path) as handle:
            if zero_copy:
                sent = sock.sendfile(handle, self.offset, self.length)
                if sent != self.length:
                    raise SourceChanged(f"{self.path} is shorter than when it was discovered")
                return
            view = memoryview(_buffer())
            handle.seek(self.offset)
            left = self.length
            while left > 0:
                got = handle.readinto(view[: min(left, CHUNK)])  # type: ignore[attr-defined]
                if not got:
                    raise SourceChanged(f"{self.path} is shorter than when it was discovered")
                sock.sendall(view[:got])
                left -= got


class RangeReader(io.RawIOBase):
    """A read-only, seekable view of a ``FileRange`` (positions relative to its start)."""

    def __init__(self, body: FileRange) -> None:
        super().__init__()
        self._body = body
        self._handle = open_source(body.path)
        self._position = 0

    def __len__(self) -> int:
        return self._body.length - self._position

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._body.length}
        self._position = max(0, min(self._body.length, base[whence] + offset))
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self._body.length - self._position)
        if wanted <= 0:
            return 0
        self._handle.seek(self._body.offset + self._position)
        got = self._handle.readinto(memoryview(buffer)[:wanted])  # type: ignore[attr-defined]
        if not got:
            raise SourceChanged(f"{self._body.path} is shorter than when it was discovered")
        self._position += got
        return int(got)

    def close(self) -> None:
        self._handle.close()
        super().close()
