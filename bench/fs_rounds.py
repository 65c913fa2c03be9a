"""Create and delete the small dataset's files in rounds: the system CPU of each round.

    python bench/fs_rounds.py DIR [ROUNDS]

Writes 2,000 files of 16 KiB in 140 folders (bench/latency_bench.py's layout) under a
new folder in DIR, deletes them, and again, ROUNDS times (8 by default), printing the
system CPU and wall seconds of each round's creation. On this machine's ``/`` (ext4
without a journal) the system CPU grows round by round; on /dev/shm (tmpfs) it does
not: a benchmark that deletes and restores in rounds should write to a tmpfs
(``bench/profile_run.py --dest-root /dev/shm``; docs/performance.md, 2026-12-03).
"""

from __future__ import annotations

import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    base = Path(sys.argv[1])
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    data = os.urandom(16 * 1024)
    root = Path(tempfile.mkdtemp(prefix="fs-rounds-", dir=base))
    found = []
    try:
        for _ in range(rounds):
            tree = root / "t"
            before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            for index in range(2000):
                folder = tree / f"d{index % 20}" / f"e{index % 7}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"f{index:05d}.bin").write_bytes(data)
            after = resource.getrusage(resource.RUSAGE_SELF)
            found.append(
                f"{after.ru_stime - before.ru_stime:.3f}/{time.perf_counter() - start:.2f}"
            )
            shutil.rmtree(tree)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{base}: 2,000 x 16 KiB created per round, system s / wall s:", " ".join(found))


if __name__ == "__main__":
    main()
