"""A restore's files on the run's file threads (``FileThreads``, restore/engine.py): no
future per file; while the queue is full the main thread waits for half of the files
queued ahead (one wake-up per that many), every outcome recorded in the main thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest


def test_a_restore_that_waits_for_half_the_queue_restores_every_file(
    server: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """Concurrency 2 over 40 objects: the file threads' queue fills, and the main thread
    waits for one queued file of two before it hands out more, every file restored."""
    from s3stow.config import load_settings
    from s3stow.restore.engine import Restorer

    for n in range(40):
        s3.put_object(Bucket=bucket, Key=f"p/{n:02d}.txt", Body=str(n).encode())
    settings = load_settings(
        env={},
        flags={"endpoint_url": server.endpoint_url, "concurrency": 2, "max_concurrency": 2},
    )
    out = tmp_path / "out"
    summary = Restorer(settings).restore_tree(f"s3://{bucket}/p", out)
    assert summary.uploaded == 40
    assert sorted(p.read_text() for p in out.iterdir()) == sorted(str(n) for n in range(40))


def test_the_main_thread_waits_for_half_the_files_queued_ahead_and_records_them(
    server: Any, s3: Any, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrency 8 without growth, each file's work slowed so the queue fills: the
    main thread's waits ask for half of the 8 files queued ahead (4), not for one; no
    file goes through a ``ThreadPoolExecutor`` (a ``Future`` each); every outcome is
    recorded in the main thread."""
    from s3stow.config import load_settings
    from s3stow.ledger import open_ledger
    from s3stow.ledger.restores import RestoreLedger
    from s3stow.restore.engine import Restorer
    from s3stow.restore.worker import RestoreWorker
    from s3stow.transfer.filethreads import FileThreads

    for n in range(60):
        s3.put_object(Bucket=bucket, Key=f"p/{n:02d}.txt", Body=str(n).encode())
    wants: list[int] = []
    collect = FileThreads.collect

    def watched(self: Any, *, block: bool, want: int = 1) -> Any:
        if block:
            wants.append(want)
        return collect(self, block=block, want=want)

    process = RestoreWorker.process

    def slowed(self: Any, *args: Any) -> Any:
        time.sleep(0.01)  # the main thread plans faster than the files finish
        return process(self, *args)

    recorded: list[str] = []
    record = RestoreLedger.record

    def recording(self: Any, *args: Any, **kwargs: Any) -> None:
        recorded.append(threading.current_thread().name)
        record(self, *args, **kwargs)

    from concurrent.futures import ThreadPoolExecutor

    pooled: list[str] = []
    pool_submit = ThreadPoolExecutor.submit

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        pooled.append(threading.current_thread().name)
        return pool_submit(self, *args, **kwargs)

    monkeypatch.setattr(FileThreads, "collect", watched)
    monkeypatch.setattr(RestoreWorker, "process", slowed)
    monkeypatch.setattr(RestoreLedger, "record", recording)
    monkeypatch.setattr(ThreadPoolExecutor, "submit", counted)
    settings = load_settings(
        env={},
        flags={"endpoint_url": server.endpoint_url, "concurrency": 8, "max_concurrency": 8},
    )
    out = tmp_path / "out"
    ledger = open_ledger(str(tmp_path / "l.db"))
    summary = Restorer(settings, ledger=ledger).restore_tree(f"s3://{bucket}/p", out)
    ledger.close()
    assert summary.uploaded == 60
    assert 4 in wants  # full: half of the 8 queued ahead
    assert recorded == ["MainThread"] * 60
    assert pooled == []  # no pool's future per file (small objects: no part pool work)
