"""s3stow's own working files, which discovery leaves out even inside a source tree.

With ``--ledger ./l.db`` in the directory being uploaded, the live database and its
``-wal``/``-shm`` files would otherwise be sent (and a later run would find them
changed, every time). ``working_files`` names them for a run: the SQLite ledger, its
``-wal``, ``-shm`` and ``-journal`` files and its run locks (``ledger/lock.py``); the
``--status-json`` file and the temporary files it is replaced through; the
``--failures-file``. Each is matched by name, then by its directory's real path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from s3stow.config import Settings
    from s3stow.ledger import Ledger


class OwnFiles:
    """Files s3stow itself writes while it runs, never to be uploaded: each is a name
    (or a name prefix and suffix) in one directory, with what it is."""

    def __init__(self) -> None:
        self._names: dict[str, list[tuple[str, str]]] = {}  # name -> [(real dir, what)]
        self._patterns: list[tuple[str, str, str, str]] = []  # (prefix, suffix, dir, what)
        self._prefixes: tuple[str, ...] = ()

    def add(self, path: Path, what: str) -> None:
        """Leave out the file ``path``."""
        self._names.setdefault(path.name, []).append((_real_dir(path), what))

    def add_pattern(self, directory: Path, prefix: str, suffix: str, what: str) -> None:
        """Leave out every file of ``directory`` named ``prefix...suffix``."""
        self._patterns.append((prefix, suffix, os.path.realpath(directory), what))
        self._prefixes += (prefix,)

    def may_be(self, name: str) -> bool:
        """Whether a file called ``name`` may be one (nearly every file: no, at once)."""
        return name in self._names or name.startswith(self._prefixes)

    def what(self, path: Path) -> str | None:
        """What ``path`` is, when it is one of s3stow's own files (else ``None``)."""
        name = path.name
        if not self.may_be(name):
            return None
        candidates = list(self._names.get(name, ()))
        candidates += [
            (directory, what)
            for prefix, suffix, directory, what in self._patterns
            if name.startswith(prefix) and name.endswith(suffix)
        ]
        if not candidates:
            return None
        here = _real_dir(path)
        return next((what for directory, what in candidates if directory == here), None)


def _real_dir(path: Path) -> str:
    return os.path.realpath(os.path.dirname(os.path.abspath(path)))


def working_files(settings: Settings, ledger: Ledger | None) -> OwnFiles:
    """The files a run with ``settings`` and ``ledger`` writes."""
    from s3stow.ledger.sqlite_backend import SqliteDatabase

    own = OwnFiles()
    database = ledger.database if ledger is not None else None
    if isinstance(database, SqliteDatabase):
        path = database.path
        own.add(path, "the ledger (--ledger)")
        for suffix in ("-wal", "-shm", "-journal"):
            own.add(path.with_name(path.name + suffix), f"the ledger's {suffix[1:]} file")
        own.add_pattern(path.parent, f"{path.name}-", ".lock", "a run lock of the ledger")
    if settings.status_json is not None:
        status = settings.status_json
        own.add(status, "the --status-json file")
        own.add_pattern(status.parent, f".{status.name}.", "", "a --status-json temporary file")
    if settings.failures_file is not None:
        own.add(settings.failures_file, "the --failures-file")
    return own
