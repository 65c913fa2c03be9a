"""Per-thread CPU of an upload: how much the main thread spends against its workers,
and, with ``--latency-ms``, what a round trip adds to it.

Runs ``s3stow -q upload`` of the small dataset (2,000 x 16 KiB, nested; bench's
``small``) against a fresh SeaweedFS from each given source tree (``PYTHONPATH=SRC``),
alternating tree by tree (and delay by delay), byte-compiled first. Per run it reports:

- the process's user and system CPU and its voluntary and involuntary context
  switches (``getrusage`` of the child, exact);
- per thread group (main, ``file_*``, ``part*``, the rest by name), each thread's own
  user + system CPU and context switches, taken by bench/threadprobe/sitecustomize.py
  (loaded through ``PYTHONPATH``, never part of s3stow) with ``RUSAGE_THREAD`` as
  the thread ends, and the sockets the process connected;
- with ``--latency-ms 0,50`` each run goes through bench/delay_proxy.py at that round
  trip (0: the proxy without a delay); without it, straight to the server.

    python bench/thread_cpu.py SRC [SRC ...] [--runs 3] [--files 2000]
        [--latency-ms 0,50] [-- ARGS]

Linux only (``/proc``, ``RUSAGE_THREAD``). Compare medians over several runs, and
instruction counts (bench/callgrind_ab.py) for small differences.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upload_bench as ub
from servers import BUCKET, BenchServer, load_line, start_delay_proxy

PROBE = Path(__file__).resolve().parent / "threadprobe"


def _group(name: str) -> str:
    """A thread's group: its name without the pool's number (``file_12`` -> ``file``)."""
    if name == "MainThread":
        return "main"
    return re.sub(r"[_-]?\d+(_\d+)?$", "", re.sub(r" \(.*\)$", "", name)) or name


def one_run(
    src: Path, tree: Path, endpoint: str, prefix: str, ledger: Path, extra: list[str]
) -> dict[str, float]:
    probe = ledger.with_suffix(".probe.json")
    env = {
        **os.environ,
        **ub.ENV,
        "PYTHONPATH": f"{src}{os.pathsep}{PROBE}",
        "S3STOW_THREAD_PROBE": str(probe),
    }
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
    _, status, use = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)}: exit {process.returncode}")
    found = json.loads(probe.read_text())
    probe.unlink()
    sample = {
        "wall": wall,
        "user": use.ru_utime,
        "sys": use.ru_stime,
        "total": use.ru_utime + use.ru_stime,
        "vcsw": float(use.ru_nvcsw),
        "ivcsw": float(use.ru_nivcsw),
        "connects": float(found["connects"]),
        "threads": float(len(found["threads"])),
    }
    for name, user, system, vcsw, ivcsw in found["threads"]:
        group = _group(name)
        sample[f"cpu:{group}"] = sample.get(f"cpu:{group}", 0.0) + user + system
        sample[f"sys:{group}"] = sample.get(f"sys:{group}", 0.0) + system
        sample[f"csw:{group}"] = sample.get(f"csw:{group}", 0.0) + vcsw + ivcsw
        sample[f"n:{group}"] = sample.get(f"n:{group}", 0.0) + 1
    return sample


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("srcs", type=Path, nargs="+", help="source trees (their src folders)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument(
        "--latency-ms", default="", help="through the delay proxy at these round trips (0,50)"
    )
    parser.add_argument("extra", nargs="*", help="after --: more arguments for s3stow")
    args = parser.parse_intermixed_args()
    delays: list[float | None] = (
        [float(d) for d in args.latency_ms.split(",")] if args.latency_ms else [None]
    )
    tree = ub.make_dataset("small", (args.files, 16 * 1024, True))
    for src in args.srcs:
        compileall.compile_dir(src.resolve() / "s3stow", quiet=1)
    work = Path(tempfile.mkdtemp(prefix="s3stow-threads-"))
    keys = [(src.resolve(), delay) for delay in delays for src in args.srcs]
    found: dict[tuple[Path, float | None], list[dict[str, float]]] = {k: [] for k in keys}
    load_before = os.getloadavg()
    with BenchServer("seaweedfs") as server:
        for round_ in range(args.runs):
            order = keys if round_ % 2 == 0 else list(reversed(keys))
            for index, (src, delay) in enumerate(order):
                tag = f"t{round_}-{index}-{src.parent.name}-{delay}"
                proxy = None
                endpoint = server.endpoint_url
                if delay is not None:
                    proxy, endpoint = start_delay_proxy(server.port, delay)
                try:
                    sample = one_run(src, tree, endpoint, tag, work / f"{tag}.db", args.extra)
                finally:
                    if proxy is not None:
                        proxy.kill()
                        proxy.wait()
                found[(src, delay)].append(sample)
                print(
                    f"{tag}: wall {sample['wall']:.2f} s, user {sample['user']:.2f} s, "
                    f"sys {sample['sys']:.2f} s, main {sample.get('cpu:main', 0):.2f}, "
                    f"file threads {sample.get('cpu:file', 0):.2f} "
                    f"({sample.get('n:file', 0):.0f}), "
                    f"csw {sample['vcsw']:.0f}+{sample['ivcsw']:.0f}, "
                    f"connects {sample['connects']:.0f}, load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    load_after = os.getloadavg()
    shutil.rmtree(work, ignore_errors=True)  # the runs' ledgers
    print(f"\nmedians over {args.runs} runs, {args.files} files:")
    for (src, delay), samples in found.items():

        def med(name: str, of: list[dict[str, float]] = samples) -> float:
            return statistics.median(s.get(name, 0.0) for s in of)

        totals = sorted(s["total"] for s in samples)
        where = "direct" if delay is None else f"{delay:g} ms"
        print(
            f"  {src} {where}: CPU {med('total'):.2f} s ({totals[0]:.2f}-{totals[-1]:.2f}; "
            f"user {med('user'):.2f}, sys {med('sys'):.2f}), wall {med('wall'):.2f} s, "
            f"context switches {med('vcsw'):.0f} voluntary + {med('ivcsw'):.0f} involuntary, "
            f"{med('connects'):.0f} connections, {med('threads'):.0f} threads"
        )
        groups: collections.Counter[str] = collections.Counter()
        for s in samples:
            groups.update({k[4:]: 1 for k in s if k.startswith("cpu:")})
        for group in sorted(groups, key=lambda g: -med(f"cpu:{g}")):
            print(
                f"    {group:>12}: CPU {med(f'cpu:{group}'):.3f} s (sys "
                f"{med(f'sys:{group}'):.3f}), context switches {med(f'csw:{group}'):.0f}, "
                f"threads {med(f'n:{group}'):.0f}"
            )
    print(load_line(load_before, load_after))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
