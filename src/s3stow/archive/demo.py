"""``s3stow archive init-demo``: a sample media database and cache to try archiving.

Creates a SQLite ``post_media`` table (the seed's schema) and a media cache with
images, videos and documents whose bytes start with real format signatures;
some rows point at files with the wrong extension (``.bin`` holding a JPEG),
some have no local path (found by md5 + mime type), one has no ``created_at``
(falls back to the file's mtime) and some have no file at all.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS post_media (
    media_id TEXT PRIMARY KEY,
    post_id TEXT NOT NULL,
    media_type TEXT NOT NULL,
    media_url TEXT NOT NULL,
    local_file_path TEXT,
    md5_sum TEXT,
    file_size INTEGER,
    mime_type TEXT,
    width INTEGER,
    height INTEGER,
    archive_url TEXT,
    created_at TIMESTAMP,
    updated_at TIMESTAMP
)
"""
SIGNATURES = {
    ("image", "image/jpeg", "jpg"): b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00",
    ("image", "image/png", "png"): b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    ("video", "video/mp4", "mp4"): b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",
    ("document", "application/pdf", "pdf"): b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n",
}
FOLDERS = {"image": "images", "video": "videos", "document": "documents"}


def init_demo(db: Path, media_root: Path, *, rows: int = 60, seed: int = 7) -> dict[str, int]:
    """Create the demo database and cache; return counts of each kind of row."""
    rng = random.Random(seed)
    db.parent.mkdir(parents=True, exist_ok=True)
    counts = {
        "rows": 0,
        "mismatched_extension": 0,
        "no_local_path": 0,
        "missing_file": 0,
        "no_created_at": 0,
    }
    start = datetime(2025, 10, 1, tzinfo=UTC)
    kinds = list(SIGNATURES.items())
    with sqlite3.connect(db) as conn:
        conn.execute(SCHEMA)
        for index in range(rows):
            (media_type, mime, ext), magic = kinds[index % len(kinds)]
            data = magic + rng.randbytes(rng.randint(2_000, 60_000))
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            folder = media_root / FOLDERS[media_type]
            folder.mkdir(parents=True, exist_ok=True)
            file_ext = ext
            local_path: str | None = str(Path(FOLDERS[media_type]) / f"{md5}.{ext}")
            if index % 10 == 3:  # the seed's .bin holding a real JPEG/PNG/...
                file_ext = "bin"
                local_path = str(Path(FOLDERS[media_type]) / f"{md5}.bin")
                counts["mismatched_extension"] += 1
            elif index % 10 == 5:
                local_path = None  # found by md5 + mime type
                counts["no_local_path"] += 1
            if index % 20 == 7:
                counts["missing_file"] += 1  # a row whose file was never cached
            else:
                (folder / f"{md5}.{file_ext}").write_bytes(data)
            created: str | None = (start + timedelta(days=index * 2)).strftime("%Y-%m-%d %H:%M:%S")
            if index == 11:
                created = None
                counts["no_created_at"] += 1
            conn.execute(
                "INSERT OR REPLACE INTO post_media (media_id, post_id, media_type, media_url, "
                "local_file_path, md5_sum, file_size, mime_type, archive_url, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)",
                (
                    f"med-{index:04d}",
                    f"post-{index // 3:04d}",
                    media_type,
                    f"https://example.invalid/media/{md5}",
                    local_path,
                    md5,
                    len(data),
                    mime,
                    created,
                    created,
                ),
            )
            counts["rows"] += 1
    return counts
