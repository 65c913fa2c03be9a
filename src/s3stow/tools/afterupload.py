"""What a watch does with a file once its object is verified: ``--after-upload``.

``keep`` leaves it, ``delete`` removes it, ``move:DIR`` moves it to the same path below
``DIR`` (the folder made when the watch starts). Only a file whose own upload the watch
saw verified is acted on, and only while it still has the size and mtime it was
uploaded with: one written to since is kept (those bytes are not in S3) and, changed,
goes up again. Files moved away are done: a folder for them inside the watched one is
never watched (``holds``; else each moved file went up again, into sent/sent/...). A
delete or move that fails is a warning, said once per kind with a count.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from s3stow.errors import ConfigError
from s3stow.logs import warn_each

log = logging.getLogger(__name__)


def _rewritten(path: Path, uploaded: tuple[int, int]) -> bool:
    """Whether ``path`` no longer has the size and mtime it was uploaded with."""
    try:
        info = path.stat()
    except OSError:
        return False  # gone: nothing to lose
    return (info.st_size, info.st_mtime_ns) != uploaded


class AfterUpload:
    """The ``--after-upload`` action (``keep``, ``delete`` or ``move:DIR``) of a watch of
    ``directory``."""

    def __init__(self, action: str, directory: Path) -> None:
        self.action = action
        self.directory = directory
        self._moved_to: str | None = None
        if action.startswith("move:"):
            folder = Path(action[5:])
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a file there, a folder this user cannot write in
                why = "it is a file" if folder.is_file() else exc.strerror or str(exc)
                raise ConfigError(
                    f"--after-upload {action}: cannot make the folder {folder}: {why}",
                    hint="give move: a folder this user can write (it is made when missing)",
                ) from None
            self._moved_to = os.path.realpath(action[5:])

    def holds(self, path: Path) -> bool:
        """Whether ``path`` is in the folder files are moved to (never uploaded)."""
        if self._moved_to is None:
            return False
        folder = os.path.realpath(os.path.dirname(os.path.abspath(path)))
        return folder == self._moved_to or folder.startswith(self._moved_to + os.sep)

    def act(self, path: Path, uploaded: tuple[int, int] | None = None) -> bool:
        """Act on ``path``, verified in S3 with the size and mtime ``uploaded``; True
        when the watch is to forget it was done: changed since (it goes up again),
        deleted or moved."""
        if self.action != "keep" and uploaded is not None and _rewritten(path, uploaded):
            # Written to since the upload was verified: those bytes are not in S3. The
            # file is kept and, changed, goes up again (then deleted or moved).
            log.warning(
                "not acting on %s (--after-upload %s): it changed after its upload",
                path,
                self.action,
            )
            return True
        try:
            if self.action == "delete":
                path.unlink(missing_ok=True)
                return True
            if self.action.startswith("move:"):
                destination = Path(self.action[5:]) / path.relative_to(self.directory)
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(path), destination)
                return True
        except OSError as exc:
            warn_each(
                log,
                "after-upload-failed",
                "after-upload %s failed for %s: %s",
                self.action,
                path,
                exc,
                example=str(path),
                many=f"files were uploaded but --after-upload {self.action} failed",
            )
        return False
