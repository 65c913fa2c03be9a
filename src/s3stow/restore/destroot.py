"""A restore's destination folder: ``DestRoot``.

DEST is checked (not empty, a folder or nothing, not a dangling symbolic link), created
with the parents it lacks (unless a dry run), checked writable (else every object would
fail alike) and resolved: where the paths are planned. The folders it created are
remembered, deepest first, and removed again by ``drop_unused`` if they are still empty:
a restore that failed, or found nothing, before its first file leaves no new empty
folder behind. A folder that existed before is never removed, and ``rmdir`` removes no
folder that holds anything.
"""

from __future__ import annotations

import os
from pathlib import Path

from s3stow.errors import ConfigError
from s3stow.localfiles import on_read_only_filesystem


class DestRoot:
    """The folders one ``Restorer`` created for its destinations, removed when unused."""

    def __init__(self) -> None:
        self._made: list[Path] = []  # created by ``prepare``, deepest first

    def prepare(self, dest: str | Path, *, dry_run: bool) -> Path:
        """``dest`` checked, created (unless ``dry_run``) and resolved."""
        if isinstance(dest, str) and not dest.strip():  # Path("") is "."
            raise ConfigError(
                f"the destination folder is empty ({dest!r}): nothing restored",
                hint="name the folder to restore into (. for the current folder; check the "
                "variable that should hold it)",
            )
        path = Path(dest).expanduser()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path} exists and is not a folder", hint="restore into a folder")
        if path.is_symlink() and not path.exists():  # mkdir would say "File exists"
            raise ConfigError(
                f"{path} is a symbolic link to {path.readlink()}, which does not exist",
                hint="create the folder it points to, or restore into another folder",
            )
        if not dry_run:
            whole = path.absolute()
            missing = [p for p in (whole, *whole.parents) if not os.path.lexists(p)]
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create {path}: {exc.strerror or exc}") from exc
            self._made.extend(missing)
            if not os.access(path, os.W_OK | os.X_OK):  # else every object fails alike
                self.drop_unused()
                read_only = on_read_only_filesystem(path)
                why = "a read-only file system" if read_only else "permission denied"
                raise ConfigError(
                    f"cannot write in {path}: {why}",
                    hint="restore into a folder this user can write",
                )
        return path.resolve()

    def drop_unused(self) -> None:
        """Remove the folders ``prepare`` created that are still empty, deepest first."""
        made, self._made = self._made, []
        for folder in made:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty (a file restored, a partial download kept), gone
                return
