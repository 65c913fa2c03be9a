"""Finished files handed to a restore's main thread in batches (restore/handout.py):
the consumer is woken once as many as it asked for have finished, not per file."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from s3stow.restore.handout import Finished


def finished(value: int) -> Future[int]:
    future: Future[int] = Future()
    future.set_result(value)
    return future


def test_take_waits_for_as_many_as_asked_then_takes_all() -> None:
    done: Finished[int] = Finished()
    for n in range(3):
        done.put(finished(n))
    started, got = threading.Event(), []

    def consumer() -> None:
        started.set()
        got.append(done.take(5, timeout=60))

    thread = threading.Thread(target=consumer)
    thread.start()
    started.wait()
    done.put(finished(3))
    thread.join(0.2)
    assert thread.is_alive()  # four of five: still waiting
    done.put(finished(4))
    done.put(finished(5))
    thread.join(60)
    assert not thread.is_alive()
    assert [f.result() for f in got[0]][:5] == [0, 1, 2, 3, 4]


def test_take_gives_what_there_is_when_the_time_is_up() -> None:
    done: Finished[int] = Finished()
    done.put(finished(7))
    assert [f.result() for f in done.take(3, timeout=0.01)] == [7]
    assert done.take(1, timeout=0) == []
    done.put(finished(8))
    assert [f.result() for f in done.take(0, timeout=0)] == [8]


def test_a_restore_that_waits_for_half_the_queue_restores_every_file(
    server: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """Concurrency 2 over 40 objects: the file pool's queue fills, and the main thread
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
