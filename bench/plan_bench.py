"""How fast ``s3stow job plan`` enqueues a large tree, and how much memory it holds.

    python bench/plan_bench.py [--files 200000] [--ledger postgresql://...]

Creates a tree of tiny files (once, under bench/.data), plans it into a fresh job,
then plans it again (the no-op re-plan), and prints files/s and the peak RSS of each
``s3stow job plan`` process (GNU time).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_tree(count: int) -> Path:
    root = HERE / ".data" / f"plan-{count}"
    if root.exists():
        return root
    tmp = root.with_suffix(".tmp")
    for index in range(count):
        folder = tmp / f"d{index % 100}" / f"e{index % 17}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index}.txt").write_bytes(b"x")
    tmp.rename(root)
    return root


def plan(root: Path, job: str, ledger: str) -> tuple[float, float]:
    rss_file = HERE / ".data" / "plan-rss.txt"
    start = time.perf_counter()
    subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            "-o",
            str(rss_file),
            sys.executable,
            "-m",
            "s3stow",
            "-q",
            "job",
            "plan",
            str(root),
            "s3://bench-bucket/p",
            "--job",
            job,
            "--ledger",
            ledger,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    elapsed = time.perf_counter() - start
    return elapsed, int(rss_file.read_text().split()[-1]) / 1024


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument(
        "--ledger",
        default=os.environ.get(
            "S3STOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    root = make_tree(args.files)
    job = f"bench-{uuid.uuid4().hex[:8]}"
    for label in ("plan", "re-plan (no-op)"):
        elapsed, rss = plan(root, job, args.ledger)
        print(
            f"{label:16} {args.files:,} files in {elapsed:.1f}s = "
            f"{args.files / elapsed:,.0f} files/s, peak RSS {rss:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
