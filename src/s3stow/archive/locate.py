"""Finding a media row's local file, and the extension its content deserves.

The seed's order: the row's ``local_file_path`` (absolute, or relative to the
media root); then ``<md5>`` plus the extension of the row's ``mime_type`` under
the media-type folder (``images/``, ``videos/``, ``documents/``); then any
``<md5>.*`` in that folder. The extension comes from the content (puremagic)
when it can be detected, else from the row's mime type, else the file's own.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

import puremagic

from s3stow.archive.table import MediaRow

FOLDERS = {"image": "images", "video": "videos", "document": "documents"}
_CANONICAL = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/webm": "webm",
    "video/quicktime": "mov",
    "application/pdf": "pdf",
    "image/heic": "heic",
    "audio/mpeg": "mp3",
}


@dataclass(frozen=True, slots=True)
class Located:
    path: Path
    ext: str  # without the dot
    how: str  # which rule found it


def media_folder(root: Path, row: MediaRow) -> Path:
    """The row's media-type folder under the media root (``images/``, ...)."""
    kind = (row.media_type or "").lower()
    return root / FOLDERS.get(kind, kind + "s" if kind else "misc")


def _ext_for_mime(mime: str | None) -> str | None:
    if not mime:
        return None
    mime = mime.split(";")[0].strip().lower()
    if mime in _CANONICAL:
        return _CANONICAL[mime]
    guessed = mimetypes.guess_extension(mime)
    return guessed.lstrip(".") if guessed else None


def locate(row: MediaRow, *, media_root: Path) -> Located | None:
    """The row's file, or ``None`` when no rule finds one."""
    if row.local_file_path:
        path = Path(row.local_file_path)
        path = path if path.is_absolute() else media_root / path
        if path.is_file():
            return Located(path, true_extension(path, row), "local_file_path")
    if row.md5_sum:
        folder = media_folder(media_root, row)
        ext = _ext_for_mime(row.mime_type)
        if ext and (folder / f"{row.md5_sum}.{ext}").is_file():
            path = folder / f"{row.md5_sum}.{ext}"
            return Located(path, true_extension(path, row), "md5+mime")
        if folder.is_dir():
            for path in sorted(folder.glob(f"{row.md5_sum}.*")):
                if path.is_file():
                    return Located(path, true_extension(path, row), "md5 glob")
    return None


def true_extension(path: Path, row: MediaRow) -> str:
    """Extension from the content, else the row's mime type, else the file name."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8192)
        mime = puremagic.from_string(head, mime=True) if head else ""
    except (puremagic.PureError, OSError, ValueError):
        mime = ""
    return (
        _ext_for_mime(mime)
        or _ext_for_mime(row.mime_type)
        or path.suffix.lstrip(".").lower()
        or "bin"
    )
