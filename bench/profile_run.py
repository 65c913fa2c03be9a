"""Time, or profile across all threads, one s3stow command against a fresh SeaweedFS.

    python bench/profile_run.py upload large               # wall and CPU of one upload
    python bench/profile_run.py restore small --spy r.raw  # the same under py-spy
    python bench/profile_run.py noop many                  # a re-run over uploaded files
    python bench/profile_run.py --top r.raw                # functions by samples

``upload`` sends the dataset (bench/upload_bench.py's datasets) to a new prefix;
``restore`` uploads it untimed, then restores it into an empty folder; ``noop``
uploads it untimed, then times the same upload again (the ledger settles it). Extra
arguments after ``--`` go to the timed s3stow command.

``--importtime FILE`` writes the timed command's ``python -X importtime`` lines to FILE;
``--cprofile FILE`` profiles its main thread (start-up is all there).

``--spy FILE`` records the timed command with py-spy (``pip install py-spy``; it
samples every thread, where cProfile sees only the main one) as collapsed stacks,
and ``--top FILE`` prints the functions with the most samples, by their own time and
including callees. py-spy slows the command down: take times from a run without it.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upload_bench as ub
from servers import BenchServer


def _frame(text: str) -> str:
    name, _, where = text.partition(" (")
    return f"{name} {where.split(':')[0].rsplit('/', 1)[-1]}".strip()


def top(raw: Path, count: int) -> None:
    """The ``count`` functions with the most samples, own and inclusive."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, samples = line.rpartition(" ")
        n = int(samples)
        total += n
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"{total} samples")
    for title, counter in (("own", own), ("inclusive", inclusive)):
        print(f"== {title}")
        for frame, n in counter.most_common(count):
            print(f"{n:7d} {100 * n / total:5.1f}%  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=["upload", "restore", "noop"])
    parser.add_argument("dataset", nargs="?", choices=sorted(ub.SIZES))
    parser.add_argument("--spy", type=Path, help="record with py-spy into this file")
    parser.add_argument("--top", type=Path, help="print the profile in this file")
    parser.add_argument(
        "--importtime", type=Path, help="write the timed command's -X importtime here"
    )
    parser.add_argument("--cprofile", type=Path, help="cProfile the timed command's main thread")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("extra", nargs="*", help="after --: more arguments for s3stow")
    args = parser.parse_args()
    if args.top:
        top(args.top, args.count)
        return 0
    if not args.mode or not args.dataset:
        parser.error("give a mode and a dataset (or --top FILE)")
    src = ub.make_dataset(args.dataset, ub.SIZES[args.dataset])
    work = Path(tempfile.mkdtemp(prefix="s3stow-profile-"))
    try:
        with BenchServer("seaweedfs") as server:
            env = {**os.environ, **ub.ENV}
            base = [sys.executable, "-m", "s3stow", "-q", "--endpoint-url", server.endpoint_url]
            upload = [*base, "upload", str(src), "s3://bench/p", "--ledger", str(work / "u.db")]
            if args.mode != "upload":
                subprocess.run(upload, env=env, check=True, stdout=subprocess.DEVNULL)
            if args.mode == "restore":
                dest, ledger = work / "restored", work / "r.db"
                timed = [*base, "restore", "s3://bench/p", str(dest), "--ledger", str(ledger)]
            else:
                timed = upload
            timed += args.extra
            stderr = None
            if args.importtime:
                timed = [timed[0], "-X", "importtime", *timed[1:]]
                stderr = args.importtime.open("w", encoding="utf-8")
            if args.cprofile:
                timed = [timed[0], "-m", "cProfile", "-o", str(args.cprofile), *timed[1:]]
            if args.spy:
                spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                timed = [spy, "record", "-r", "250", "-f", "raw", "-o", str(args.spy), "--", *timed]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(timed, env=env, check=True, stdout=subprocess.DEVNULL, stderr=stderr)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            user = after.ru_utime - before.ru_utime
            print(
                f"{args.mode} {args.dataset}: wall {wall:.2f} s, client CPU {cpu:.2f} s "
                f"(user {user:.2f} s, system {cpu - user:.2f} s)"
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
