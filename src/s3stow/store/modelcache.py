"""botocore's JSON data files (service models, endpoint rules) kept parsed between runs.

Every botocore client reads and parses its service model, endpoint rule set,
partitions and defaults from JSON (S3's model alone is 1.4 MB of gzipped JSON): about
a third of the CPU of creating the client, paid by every start. ``cache_models``
puts ``ModelCache`` in front of a session's data loader: a file botocore loads is
parsed by botocore as always the first time and kept as compact, uncompressed JSON
(data only, never code: the cache is as safe to read as botocore's own files); later
runs parse that with plain ``dict``s, about three times faster than botocore's
gunzip and ``OrderedDict`` parse.

An entry serves only the very file it was made from: it is keyed by the file's path
and checked against its size, modification time and inode, in a directory per
botocore version and Python version; botocore decides which file to load (search
paths, API versions, extensions) and merges its extras as always. Any problem (an
unreadable, stale or corrupt entry, a read-only directory) means botocore's own
loading, never an error. The data is botocore's, in the same order; JSON objects come
back as ``dict`` where botocore builds ``OrderedDict`` (the same items in the same
order, which is all botocore relies on since Python 3.7).

The cache is off unless the process asks for it (``use_directory``): the command
line turns it on (a directory of its own in the user's cache directory); a library
host keeps botocore's loading unless it chooses otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MAGIC = b"s3stow-models-1\n"
STALE = 30 * 86400  # the entries of another botocore version are removed after this
_DIRECTORY: dict[str, Path | Callable[[], Path] | None] = {"path": None}


def use_directory(path: Path | Callable[[], Path] | None) -> None:
    """Keep parsed models under ``path`` from now on (``None``: off); a callable is
    asked for the path when the first session is made."""
    _DIRECTORY["path"] = path


def cache_models(session: Any) -> None:
    """Put the model cache in front of ``session``'s data loader, when it is on and
    botocore's loader has the shape it is written for."""
    root = _DIRECTORY["path"]
    if root is None:
        return
    if callable(root):
        root = _DIRECTORY["path"] = root()
    import botocore
    from botocore import loaders

    extensions = tuple(getattr(loaders, "_JSON_OPEN_METHODS", {}))
    loader = session.get_component("data_loader")
    inner = getattr(loader, "file_loader", None)
    if not extensions or inner is None or isinstance(inner, ModelCache):
        return
    version = f"botocore-{botocore.__version__}-py{sys.version_info[0]}{sys.version_info[1]}"
    cache = ModelCache(inner, root, version=version, extensions=extensions)
    loader.file_loader = cache
    builtin = getattr(loader, "BUILTIN_DATA_PATH", None)
    if isinstance(builtin, str) and isinstance(getattr(loader, "search_paths", None), list):
        found: dict[str, list[str]] = {}

        def list_available_services(type_name: str) -> list[str]:
            if type_name not in found:
                found[type_name] = cache.services(
                    loaders.Loader, loader.search_paths, builtin, type_name
                )
            return found[type_name]

        # botocore's own listing, per search path: the one over its data folder is kept
        loader.list_available_services = list_available_services


class ModelCache:
    """A botocore file loader (``exists``, ``load_file``) keeping what ``inner``
    parsed under ``root/version``."""

    def __init__(
        self, inner: Any, root: Path, *, version: str, extensions: tuple[str, ...]
    ) -> None:
        self._inner = inner
        self._root = root
        self._directory = root / version
        self._extensions = extensions
        self._pruned = False

    def exists(self, file_path: str) -> bool:
        return bool(self._inner.exists(file_path))

    def load_file(self, file_path: str) -> Any:
        """What botocore's loader gives for ``file_path`` (a path without extension)."""
        for extension in self._extensions:  # botocore's order: .json, then .json.gz
            full = file_path + extension
            try:
                found = os.stat(full)
            except OSError:
                continue
            if not stat.S_ISREG(found.st_mode):
                continue
            signature = f"{full}\n{found.st_size}\n{found.st_mtime_ns}\n{found.st_ino}\n"
            entry = self._directory / (hashlib.sha256(full.encode()).hexdigest()[:32] + ".json")
            cached = self._read(entry, signature)
            if cached is not None:
                return cached
            data = self._inner.load_file(file_path)
            if data is not None:
                self._write(entry, signature, data)
            return data
        return self._inner.load_file(file_path)

    def services(
        self, loader_class: Any, paths: list[str], builtin: str, type_name: str
    ) -> list[str]:
        """What ``Loader.list_available_services(type_name)`` answers over ``paths``:
        botocore's own listing of each, the union sorted as botocore sorts it. The
        listing of botocore's data folder (``builtin``: some 450 folders and 1,000 file
        checks, fixed for a botocore version) is kept; any other path is listed live."""

        def listing(where: list[str]) -> list[str]:
            one = loader_class(
                extra_search_paths=where, file_loader=self, include_default_search_paths=False
            )
            return list(one.list_available_services(type_name))

        others = [path for path in paths if path != builtin]
        found = set(listing(others)) if others else set()
        if builtin in paths:
            kept: Any = None
            try:
                folder = os.stat(builtin)
            except OSError:
                folder = None
            if folder is not None:
                signature = f"{builtin}\n{type_name}\n{folder.st_mtime_ns}\n{folder.st_ino}\n"
                entry = self._directory / (
                    hashlib.sha256(f"services {builtin} {type_name}".encode()).hexdigest()[:32]
                    + ".json"
                )
                kept = self._read(entry, signature)
                if not isinstance(kept, list):
                    kept = listing([builtin])
                    self._write(entry, signature, kept)
            found.update(kept if kept is not None else listing([builtin]))
        return sorted(found)

    def _read(self, entry: Path, signature: str) -> Any:
        try:
            raw = entry.read_bytes()
        except OSError:
            return None
        head = _MAGIC + signature.encode()
        if not raw.startswith(head):
            return None
        try:
            return json.loads(raw[len(head) :])
        except ValueError:
            log.debug("model cache entry %s is unreadable; botocore loads the file", entry)
            return None

    def _write(self, entry: Path, signature: str, data: Any) -> None:
        try:
            payload = json.dumps(data, separators=(",", ":")).encode()
        except (TypeError, ValueError):  # not plain data: botocore's loading each time
            return
        try:
            self._prune()
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self._directory, suffix=".tmp")
            with os.fdopen(handle, "wb") as out:
                out.write(_MAGIC + signature.encode() + payload)
            os.replace(temporary, entry)
        except OSError as exc:
            log.debug("model cache not written (%s); botocore loads the file each time", exc)
            with contextlib.suppress(OSError, UnboundLocalError):
                os.unlink(temporary)

    def _prune(self) -> None:
        """Remove the entries of botocore or Python versions no run has written to for
        ``STALE`` seconds (once per loader: two installations side by side, a pipx one
        and a project's, each keep theirs)."""
        if self._pruned:
            return
        self._pruned = True
        now = time.time()
        with contextlib.suppress(OSError):
            for other in self._root.iterdir():
                if other == self._directory or not other.name.startswith("botocore-"):
                    continue
                with contextlib.suppress(OSError):
                    if now - other.stat().st_mtime > STALE:
                        shutil.rmtree(other, ignore_errors=True)
