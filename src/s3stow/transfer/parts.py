"""Part sizes for multipart uploads, within S3's limits.

Size-adaptive default: under 512 MiB -> 8 MiB parts; up to 8 GiB -> 64 MiB;
above -> 128 MiB. Any size (default or ``--part-size``) is raised when needed
to stay within 10,000 parts; parts are at least 5 MiB and at most 5 GiB, and
objects at most 5 TiB.
"""

from __future__ import annotations

from s3stow.errors import TransferError
from s3stow.units import GiB, MiB

MIN_PART = 5 * MiB
MAX_PART = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT = 5 * 1024 * GiB


def adaptive_part_size(size: int) -> int:
    if size < 512 * MiB:
        return 8 * MiB
    if size <= 8 * GiB:
        return 64 * MiB
    return 128 * MiB


def choose_part_size(size: int, requested: int | None = None) -> int:
    """The part size to use for a file of ``size`` bytes."""
    if size > MAX_OBJECT:
        raise TransferError(f"file is {size} bytes; S3 objects are at most 5 TiB", code="TooLarge")
    part = requested or adaptive_part_size(size)
    minimum = -(-size // MAX_PARTS)
    if part < minimum:
        part = -(-minimum // MiB) * MiB
    return max(MIN_PART, min(part, MAX_PART))


def part_ranges(size: int, part_size: int) -> list[tuple[int, int, int]]:
    """``(number, offset, length)`` of each part, numbers from 1."""
    count = max(1, -(-size // part_size))
    return [
        (index + 1, index * part_size, min(part_size, size - index * part_size))
        for index in range(count)
    ]
