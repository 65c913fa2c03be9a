"""What a restore of small objects costs per object, observed as what the code does
(calls made, and in which thread), never as a time: the main thread plans, hands out
and records every file, so what it does per file is the run's serial part."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest


def test_the_main_thread_does_not_stat_the_restored_files(
    server: Any,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ledger's row of a restored file (its size and mtime as the file system keeps
    them) is read in the file's thread: a ``stat`` in the main thread gives up the GIL,
    which it then waits to take back from the busy file threads, once per file."""
    from s3stow.config import load_settings
    from s3stow.ledger import open_ledger
    from s3stow.restore.engine import Restorer

    for n in range(6):
        s3.put_object(Bucket=bucket, Key=f"p/d/{n}.txt", Body=b"x" * n)
    out = tmp_path / "out"
    main: list[str] = []
    real = os.stat

    def watched(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if threading.current_thread() is threading.main_thread() and str(path).endswith(".txt"):
            main.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", watched)
    settings = load_settings(env={}, flags={"endpoint_url": server.endpoint_url})
    ledger = open_ledger(str(tmp_path / "l.db"))
    summary = Restorer(settings, ledger=ledger).restore_tree(f"s3://{bucket}/p", out)
    assert summary.uploaded == 6
    assert main == []
    again = Restorer(settings, ledger=open_ledger(str(tmp_path / "l.db"))).restore_tree(
        f"s3://{bucket}/p", out
    )
    assert (again.uploaded, again.skipped) == (0, 6)  # the rows hold the files' size and mtime
