"""Local-file helpers every stage may use: a text file replaced atomically (status
heartbeats, snapshots) and a path shown as valid text (names that are not UTF-8)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and an atomic replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def display_path(path: Path) -> str:
    """``path`` as valid text for messages and the ledger (not-UTF-8 bytes as ``\\xNN``)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
