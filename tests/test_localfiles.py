"""``localfiles.on_read_only_filesystem``: how the ledger's and restore's refusals word a
folder they cannot write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s3stow.localfiles import on_read_only_filesystem


def _read_only_mount() -> Path | None:
    """A folder mounted read-only on this machine, if /proc/mounts names one."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 3 and "ro" in fields[3].split(",") and os.path.isdir(fields[1]):
            return Path(fields[1])
    return None


def test_a_writable_folder_is_not_read_only(tmp_path: Path) -> None:
    assert on_read_only_filesystem(tmp_path) is False


def test_a_missing_path_is_not_called_read_only(tmp_path: Path) -> None:
    assert on_read_only_filesystem(tmp_path / "missing") is False


def test_a_read_only_mount_is_named() -> None:
    mount = _read_only_mount()
    if mount is None or not hasattr(os, "statvfs"):
        pytest.skip("no read-only mount on this machine")
    assert on_read_only_filesystem(mount) is True
