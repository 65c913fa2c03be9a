"""Per-thread CPU of an upload: how much the main thread spends against its workers.

Runs ``s3stow -q upload`` of the small dataset (2,000 x 16 KiB, nested; bench's
``small``) against a fresh SeaweedFS from each given source tree (``PYTHONPATH=SRC``),
alternating tree by tree, and samples ``/proc/PID/task/*/stat`` every few ms while
it runs: each thread's user + sys time, the last value seen before it ended. The
main thread is the one whose id is the process's, sampled to its end; the rest of
the process's total (``wait4``'s, exact) is the other threads' (file threads, part
pool, run-ahead, listing, probe, ledger, and threads that ended between samples,
whose last ticks a sample cannot see).

    python bench/thread_cpu.py SRC [SRC ...] [--runs 3] [--files 2000] [-- ARGS]

Linux only (``/proc``). The kernel counts in clock ticks (10 ms here), so one run's
split is known to about a tick per thread; compare medians over several runs, and
instruction counts (bench/callgrind_ab.py) for small differences.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upload_bench as ub
from servers import BUCKET, BenchServer, load_line

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
INTERVAL = 0.005  # seconds between samples


def _threads(pid: int) -> dict[int, float]:
    """CPU seconds (user + sys) of each live thread of ``pid``."""
    found: dict[int, float] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tids:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # ended between the listing and the read
            continue
        fields = text[text.rindex(")") + 2 :].split()
        found[int(tid)] = (int(fields[11]) + int(fields[12])) / TICK
    return found


def one_run(
    src: Path, tree: Path, endpoint: str, prefix: str, ledger: Path, extra: list[str]
) -> dict[str, float]:
    env = {**os.environ, **ub.ENV, "PYTHONPATH": str(src)}
    command = [
        sys.executable,
        "-m",
        "s3stow",
        "-q",
        "--endpoint-url",
        endpoint,
        "upload",
        str(tree),
        f"s3://{BUCKET}/{prefix}",
        "--ledger",
        str(ledger),
        *extra,
    ]
    started = time.monotonic()
    process = subprocess.Popen(command, env=env)
    seen: dict[int, float] = {}
    while process.poll() is None:
        seen.update(_threads(process.pid))
        time.sleep(INTERVAL)
    wall = time.monotonic() - started
    # poll() reaped it; its rusage is what the children's total grew by
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)}: exit {process.returncode}")
    return {"wall": wall, "main": seen.get(process.pid, 0.0), "threads": float(len(seen))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("srcs", type=Path, nargs="+", help="source trees (their src folders)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("extra", nargs="*", help="after --: more arguments for s3stow")
    args = parser.parse_intermixed_args()
    tree = ub.make_dataset("small", (args.files, 16 * 1024, True))
    work = Path(tempfile.mkdtemp(prefix="s3stow-threads-"))
    found: dict[Path, list[dict[str, float]]] = {src.resolve(): [] for src in args.srcs}
    load_before = os.getloadavg()
    with BenchServer("seaweedfs") as server:
        for round_ in range(args.runs):
            order = list(found) if round_ % 2 == 0 else list(reversed(found))
            for index, src in enumerate(order):
                tag = f"t{round_}-{index}-{src.parent.name}"
                before = os.times()
                sample = one_run(
                    src, tree, server.endpoint_url, tag, work / f"{tag}.db", args.extra
                )
                after = os.times()
                total = (after.children_user - before.children_user) + (
                    after.children_system - before.children_system
                )
                sample["total"] = total
                sample["workers"] = total - sample["main"]
                found[src].append(sample)
                print(
                    f"{tag}: wall {sample['wall']:.2f} s, total {total:.2f} s, main "
                    f"{sample['main']:.2f}, other threads {sample['workers']:.2f} "
                    f"({sample['threads']:.0f} threads)",
                    flush=True,
                )
    load_after = os.getloadavg()
    print(f"medians over {args.runs} runs, {args.files} files:")
    for src, samples in found.items():

        def med(name: str, of: list[dict[str, float]] = samples) -> float:
            return statistics.median(s[name] for s in of)

        share = statistics.median(s["main"] / s["total"] for s in samples if s["total"])
        print(
            f"  {src}: total {med('total'):.2f} s, main {med('main'):.2f} s "
            f"({share:.0%} of the total, {med('main') / args.files * 1e6:.0f} us per file), "
            f"other threads {med('workers'):.2f} s, "
            f"wall {med('wall'):.2f} s"
        )
    print(load_line(load_before, load_after))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
