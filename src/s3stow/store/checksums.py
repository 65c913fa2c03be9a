"""Checksums computed while reading, in the forms S3 expects.

CRC64NVME, CRC32C and CRC32 come from awscrt (native speed, and it can combine
per-part CRCs into the full-object value, so parts are hashed independently and
resumed parts need no re-read). SHA-256 uses hashlib; for multipart it is
COMPOSITE (a hash of the part digests), as S3 defines it.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache

from s3stow.config import ChecksumName

_CRC_BYTES = {"crc64nvme": 8, "crc32c": 4, "crc32": 4}


@dataclass(frozen=True, slots=True)
class Digest:
    """A computed checksum: integer CRC (when a CRC) and the base64 S3 form."""

    algorithm: str
    b64: str
    crc: int | None = None


def s3_name(algorithm: ChecksumName) -> str:
    """Return the S3 API spelling: ``CRC64NVME``, ``CRC32C``, ``CRC32``, ``SHA256``."""
    return algorithm.upper()


def param_name(algorithm: ChecksumName) -> str:
    """Return the request/response field: ``ChecksumCRC64NVME`` etc."""
    return "Checksum" + s3_name(algorithm)


def _crc_b64(value: int, width: int) -> str:
    return base64.b64encode(value.to_bytes(width, "big")).decode("ascii")


def compute(algorithm: ChecksumName, data: bytes | memoryview) -> Digest | None:
    """Checksum one buffer; ``None`` for ``none``."""
    if algorithm == "none":
        return None
    if algorithm == "sha256":
        return Digest("sha256", base64.b64encode(hashlib.sha256(data).digest()).decode("ascii"))
    value = crc_function(algorithm)(data, 0)
    return Digest(algorithm, _crc_b64(value, _CRC_BYTES[algorithm]), value)


def digest_of_crc(algorithm: str, value: int) -> Digest:
    """The ``Digest`` of a CRC computed elsewhere (e.g. chunk by chunk)."""
    return Digest(algorithm, _crc_b64(value, _CRC_BYTES[algorithm]), value)


def digest_of_sha256(raw: bytes) -> Digest:
    """The ``Digest`` of a SHA-256 computed elsewhere (raw 32 bytes)."""
    return Digest("sha256", base64.b64encode(raw).decode("ascii"))


@cache
def crc_function(algorithm: str) -> Callable[[bytes | memoryview, int], int]:
    """awscrt's CRC function for ``algorithm``: ``f(data, previous) -> crc``."""
    from awscrt import checksums as crt  # native: loaded on the first checksum, not at start

    functions: dict[str, Callable[[bytes | memoryview, int], int]] = {
        "crc64nvme": crt.crc64nvme,
        "crc32c": crt.crc32c,
        "crc32": crt.crc32,
    }
    return functions[algorithm]


def combine_parts(algorithm: ChecksumName, parts: Sequence[tuple[int, int]]) -> str:
    """Full-object CRC from ``(crc, length)`` of each part, in part order."""
    from awscrt import checksums as crt

    combine = {
        "crc64nvme": crt.combine_crc64nvme,
        "crc32c": crt.combine_crc32c,
        "crc32": crt.combine_crc32,
    }[algorithm]
    total = 0
    for index, (crc, length) in enumerate(parts):
        total = crc if index == 0 else combine(total, crc, length)
    return _crc_b64(total, _CRC_BYTES[algorithm])


def composite_sha256(part_digests_b64: Sequence[str]) -> str:
    """COMPOSITE SHA-256 of a multipart object: ``<b64 of sha256(concat digests)>-N``."""
    return composite_of("sha256", part_digests_b64)


def composite_of(algorithm: str, part_digests_b64: Sequence[str]) -> str:
    """COMPOSITE checksum of a multipart object: the checksum of the concatenated part
    checksums, then ``-N`` (S3's form for SHA-256 and for CRCs uploaded as COMPOSITE)."""
    joined = b"".join(base64.b64decode(d) for d in part_digests_b64)
    if algorithm == "sha256":
        value = base64.b64encode(hashlib.sha256(joined).digest()).decode("ascii")
    else:
        value = _crc_b64(crc_function(algorithm)(joined, 0), _CRC_BYTES[algorithm])
    return f"{value}-{len(part_digests_b64)}"


def is_full_object(algorithm: ChecksumName) -> bool:
    """CRCs have a whole-file (FULL_OBJECT) form for multipart; SHA-256 does not."""
    return algorithm in _CRC_BYTES


Progress = Callable[[int], None] | None  # told the size of each block read


def read_blocks(
    path: str, *, chunk: int = 8 * 1024 * 1024, progress: Progress = None
) -> Iterator[bytes]:
    """A file's bytes in blocks, telling ``progress`` of each."""
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            if progress is not None:
                progress(len(block))
            yield block


def file_digest(path: str, algorithm: ChecksumName, *, chunk: int = 8 * 1024 * 1024) -> str | None:
    """Read a whole file and return its single-part checksum (base64)."""
    if algorithm == "none":
        return None
    if algorithm == "sha256":
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(chunk):
                sha.update(block)
        return base64.b64encode(sha.digest()).decode("ascii")
    function = crc_function(algorithm)
    value = 0
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            value = function(block, value)
    return _crc_b64(value, _CRC_BYTES[algorithm])


def sha256_hex(path: str, *, progress: Progress = None) -> str:
    """Hex SHA-256 of a file (for the ``sha256`` metadata)."""
    sha = hashlib.sha256()
    for block in read_blocks(path, progress=progress):
        sha.update(block)
    return sha.hexdigest()
