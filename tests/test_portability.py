"""What differs on Windows and macOS, tested on Linux: the OS behaviour imitated where the
code meets it (``os.scandir``'s entries, ``os.replace``, a name's Unicode form)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3stow.models import SourceFile
from s3stow.plan.discover import discover

JUNCTION = 0xA0000003  # IO_REPARSE_TAG_MOUNT_POINT


class _WindowsEntry:
    """A ``DirEntry`` as Windows gives it: ``stat()`` of an entry that is not a symlink
    comes from the directory listing, with ``st_ino``, ``st_dev`` (and ``st_nlink``)
    zero, and the reparse tag of a junction kept (``is_symlink`` is False for it)."""

    def __init__(self, entry: os.DirEntry[str], junctions: frozenset[str]) -> None:
        self._entry = entry
        self.name = entry.name
        self.path = entry.path
        self._junction = entry.path in junctions

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()

    def stat(self, *, follow_symlinks: bool = True) -> Any:
        info = self._entry.stat(follow_symlinks=follow_symlinks)
        if self._entry.is_symlink() and follow_symlinks:
            return info  # os.stat of the target: a real identity
        fields = list(info[:10])
        fields[stat.ST_INO] = fields[stat.ST_DEV] = fields[stat.ST_NLINK] = 0
        windows = os.stat_result(fields)
        if not self._junction:
            return windows

        class Junction:
            def __getattr__(self, name: str) -> Any:
                return getattr(windows, name)

            st_reparse_tag = JUNCTION

        return Junction()


def _windows_scandir(
    monkeypatch: pytest.MonkeyPatch, junctions: frozenset[str] = frozenset()
) -> None:
    real = os.scandir

    class Listing:
        def __init__(self, path: Any) -> None:
            self._it = real(path)

        def __enter__(self) -> Iterator[_WindowsEntry]:
            return (_WindowsEntry(e, junctions) for e in self._it.__enter__())

        def __exit__(self, *exc: object) -> None:
            self._it.__exit__(*exc)

    monkeypatch.setattr(os, "scandir", Listing)


def _tree(root: Path) -> None:
    for rel in ("a/1.txt", "b/2.txt", "b/c/3.txt", "b/d/4.txt", "e/5.txt", "top.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)


@pytest.mark.parametrize("follow", [False, True])
def test_every_folder_is_walked_where_scandir_gives_no_inode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, follow: bool
) -> None:
    # Windows: DirEntry.stat() has st_ino == st_dev == 0, so every folder looked like
    # the first one and all but "a" were skipped as a symlink loop.
    _tree(tmp_path)
    _windows_scandir(monkeypatch)
    found = list(discover([tmp_path], follow_symlinks=follow))
    assert sorted(f.rel_path for f in found if isinstance(f, SourceFile)) == [
        "a/1.txt", "b/2.txt", "b/c/3.txt", "b/d/4.txt", "e/5.txt", "top.txt",
    ]  # fmt: skip
    assert [f for f in found if not isinstance(f, SourceFile)] == []


def test_a_symlink_loop_is_still_caught_where_scandir_gives_no_inode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path)
    (tmp_path / "b" / "up").symlink_to(tmp_path / "b", target_is_directory=True)
    _windows_scandir(monkeypatch)
    found = list(discover([tmp_path], follow_symlinks=True))
    skipped = {f.path.name: f.reason for f in found if not isinstance(f, SourceFile)}
    assert skipped == {"up": "symlink loop (directory already visited)"}


def test_a_windows_junction_is_followed_only_as_a_symlink_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DirEntry.is_symlink() is False for a junction: it was walked without
    # --follow-symlinks (and wherever it pointed).
    _tree(tmp_path)
    _windows_scandir(monkeypatch, junctions=frozenset({str(tmp_path / "b")}))
    found = list(discover([tmp_path]))
    skipped = {f.path.name: f.reason for f in found if not isinstance(f, SourceFile)}
    assert skipped == {"b": "junction not followed (use --follow-symlinks)"}
    followed = list(discover([tmp_path], follow_symlinks=True))
    assert "b/c/3.txt" in {f.rel_path for f in followed if isinstance(f, SourceFile)}
