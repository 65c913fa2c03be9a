"""Which stored value proves that local bytes are an object's bytes, and computing it.

One tier order serves ``compare`` (is this file already in S3?), ``verify`` and
``restore`` (is the downloaded file the object?): S3's checksum (full-object, or
with ``composite`` the COMPOSITE form, a checksum of the part checksums, which needs
the part layout), else the ``sha256`` metadata, else a single-part ETag (the MD5,
unless the object is encrypted with KMS or a customer key), else, where a weaker
answer is acceptable (``mtime``), the ``mtime`` metadata, else the size alone.

``Proof.range_hasher`` and ``Proof.combine`` compute a value range by range where
it combines (the CRCs of a full-object CRC; the part digests of a composite
checksum), so a resumed download never re-reads the ranges it recorded;
``Proof.whole_hasher`` computes it in one sequential pass (SHA-256, MD5), and
``hash_file`` computes it from a file on disk.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from s3stow.store import checksums
from s3stow.store.base import ObjectInfo

CHECKSUM_ALGORITHMS = ("crc64nvme", "crc32c", "crc32", "sha256")
CONTENT_TIERS = frozenset({"checksum", "sha256-metadata", "etag-md5"})
_CRCS = frozenset({"crc64nvme", "crc32c", "crc32"})
_CHUNK = 8 * 1024 * 1024


class Hasher:
    """One running digest; ``value()`` is in the form the proof compares."""

    def __init__(self, kind: str) -> None:
        self.kind = kind  # a CRC name, "sha256" (base64), "sha256-hex" or "md5-hex"
        self._crc = 0
        self._function: Callable[[bytes | memoryview, int], int] | None = None
        self._hash: hashlib._Hash | None = None
        if kind in _CRCS:
            self._function = checksums.crc_function(kind)
        elif kind == "md5-hex":
            self._hash = hashlib.md5(usedforsecurity=False)
        else:
            self._hash = hashlib.sha256()

    def update(self, data: bytes | memoryview) -> None:
        if self._function is not None:
            self._crc = self._function(data, self._crc)
        else:
            assert self._hash is not None
            self._hash.update(data)

    def value(self) -> str:
        if self._function is not None:
            return checksums.digest_of_crc(self.kind, self._crc).b64
        assert self._hash is not None
        if self.kind == "sha256":
            return base64.b64encode(self._hash.digest()).decode("ascii")
        return self._hash.hexdigest()


@dataclass(frozen=True, slots=True)
class Proof:
    """The tier that decides, with the algorithm and value it compares against."""

    tier: str  # checksum | sha256-metadata | etag-md5 | mtime-metadata | size
    algorithm: str | None = None  # a checksum algorithm; sha256 / md5 for the hex tiers
    expected: str | None = None
    parts: int = 0  # COMPOSITE checksum: the object's part count; 0 for a full-object value

    @property
    def content(self) -> bool:
        """Whether the tier compares the bytes themselves."""
        return self.tier in CONTENT_TIERS

    @property
    def combinable(self) -> bool:
        """Whether per-range digests combine into the value (ranges must be the parts
        when ``parts``)."""
        return self.tier == "checksum" and (self.parts > 0 or self.algorithm in _CRCS)

    def range_hasher(self) -> Hasher | None:
        """The digest of one range (one part, for a composite value), if it combines."""
        return Hasher(str(self.algorithm)) if self.combinable else None

    def whole_hasher(self) -> Hasher | None:
        """The digest of the whole object in one pass (not for a composite value)."""
        if not self.content or self.parts:
            return None
        if self.tier == "sha256-metadata":
            return Hasher("sha256-hex")
        if self.tier == "etag-md5":
            return Hasher("md5-hex")
        return Hasher(str(self.algorithm))

    def combine(self, ranges: Sequence[tuple[int, str]]) -> str:
        """The value from ``(length, digest)`` of each range, in order."""
        algorithm = str(self.algorithm)
        if self.parts:
            return checksums.composite_of(algorithm, [digest for _, digest in ranges])
        crcs = [(int.from_bytes(base64.b64decode(d), "big"), n) for n, d in ranges]
        return checksums.combine_parts(algorithm, crcs)  # type: ignore[arg-type]

    def matches(self, value: str | None) -> bool:
        """Whether a computed value equals the expected one (a composite is compared
        without its ``-N`` suffix, which some servers leave off)."""
        if value is None or self.expected is None:
            return False
        if self.tier == "checksum":
            return value.split("-")[0] == self.expected.split("-")[0]
        return value.lower() == self.expected.lower()


def part_count(info: ObjectInfo) -> int:
    """The object's part count: from a ``-N`` checksum or ETag, or the parts header."""
    for value in (info.checksum, info.etag):
        if value and "-" in value:
            tail = value.rsplit("-", 1)[1]
            if tail.isdigit():
                return int(tail)
    return info.parts or 0


def choose_proof(
    info: ObjectInfo,
    *,
    algorithms: Collection[str] = CHECKSUM_ALGORITHMS,
    etag_is_md5: bool,
    composite: bool = False,
    mtime: bool = False,
) -> Proof:
    """The strongest proof ``info`` (from HEAD or GET) allows, in the shared order."""
    algorithm = (info.checksum_algorithm or "").lower()
    if info.checksum and algorithm in algorithms:
        full = info.checksum_type in (None, "FULL_OBJECT") and "-" not in info.checksum
        if full:
            return Proof("checksum", algorithm, info.checksum)
        parts = part_count(info)
        if composite and parts:
            return Proof("checksum", algorithm, info.checksum, parts)
    if "sha256" in info.metadata:
        return Proof("sha256-metadata", "sha256", info.metadata["sha256"])
    if etag_is_md5 and info.etag and "-" not in info.etag:
        return Proof("etag-md5", "md5", info.etag)
    if mtime and "mtime" in info.metadata:
        return Proof("mtime-metadata", None, info.metadata["mtime"])
    return Proof("size")


def hash_file(
    path: str,
    proof: Proof,
    *,
    layout: Sequence[int] = (),
    progress: checksums.Progress = None,
) -> str | None:
    """The proof's value computed from a file (``layout``: the part sizes of a
    composite value); ``None`` for a tier that reads no content. ``progress`` is told
    the size of each block read (the progress display shows a large file's hashing)."""
    if proof.parts:
        digests = []
        with open(path, "rb") as handle:
            for length in layout:
                part = Hasher(str(proof.algorithm))
                _feed(handle, part, length, progress)
                digests.append(part.value())
        return checksums.composite_of(str(proof.algorithm), digests)
    hasher = proof.whole_hasher()
    if hasher is None:
        return None
    with open(path, "rb") as handle:
        _feed(handle, hasher, None, progress)
    return hasher.value()


def _feed(
    handle: BinaryIO, hasher: Hasher, length: int | None, progress: checksums.Progress
) -> None:
    left = length
    while left is None or left > 0:
        block = handle.read(_CHUNK if left is None else min(_CHUNK, left))
        if not block:
            return
        hasher.update(block)
        if progress is not None:
            progress(len(block))
        if left is not None:
            left -= len(block)
