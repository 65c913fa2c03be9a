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
``--cprofile FILE`` profiles its main thread (start-up is all there); ``--main-thread``
prints the CPU of the main thread beside the whole process's (the rest is the request
threads' and the ledger writer's).

``--peer TOOL`` (restore only: s5cmd, aws or rclone) times the peer on the same server
and object, alternating with s3stow for ``--runs`` rounds (the order swapped every
round). Each tool deletes its own previous output just before it runs, so both write
into memory freed a moment earlier: on a VM, a first write to memory the host has
taken back (free page reporting) costs several times the kernel time of a write to
memory in use (see docs/performance.md, "A large restore is kernel time"), and which
tool pays it depends on what ran before, not on the tool. The server's CPU is
reported beside each run.

``--variant LABEL=SRC`` (restore, repeatable) adds s3stow from another source tree
(``PYTHONPATH=SRC``, e.g. main's ``/work/main/src``) to the same rounds, as the tool
``s3stow:LABEL``, with or without ``--peer``; the tools take turns in a rotated order
(A B C, B C A, C A B ...). After the rounds, each tool's median wall and CPU with
their spread. ``--dest-root DIR`` restores into a folder under DIR (e.g. ``/dev/shm``,
a tmpfs) instead of beside the ledger in /tmp: on this machine's ext4 without a
journal, file creation after a delete scans past the freed inodes (see
docs/performance.md), and a round's system CPU grows with the rounds before it.
Every run also reports the context switches of the tool's processes.

``--stream-cap MBPS`` (restore) puts bench/delay_proxy.py between the restoring tools
and the server, each connection's answers capped at MBPS MB/s: a remote S3's
per-stream bandwidth, where more ranges in flight are what make a large restore fast.
``--latency-ms MS`` (restore, or the timed upload) puts the same proxy there with
that round trip (with ``--stream-cap`` too, both): a remote S3's distance, where
requests in flight set the pace of small objects.

``--spy FILE`` records the timed command with py-spy (``pip install py-spy``; it
samples every thread, where cProfile sees only the main one) as collapsed stacks
(with ``--gil``, only the thread holding the GIL: where the Python CPU goes, without
the threads that wait on a socket or on the GIL counted as busy),
and ``--top FILE`` prints the functions with the most samples, by their own time and
including callees. py-spy slows the command down: take times from a run without it.
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upload_bench as ub
from servers import BenchServer, start_delay_proxy


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
    parser.add_argument(
        "--gil", action="store_true", help="with --spy: sample only the thread holding the GIL"
    )
    parser.add_argument("--top", type=Path, help="print the profile in this file")
    parser.add_argument(
        "--importtime", type=Path, help="write the timed command's -X importtime here"
    )
    parser.add_argument("--cprofile", type=Path, help="cProfile the timed command's main thread")
    parser.add_argument(
        "--main-thread",
        action="store_true",
        help="print the CPU of the timed command's main thread beside its whole process's",
    )
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--peer", help="restore: time this tool too, alternating (s5cmd...)")
    parser.add_argument("--runs", type=int, default=1, help="rounds (with --peer)")
    parser.add_argument(
        "--stream-cap", type=float, help="restore through a proxy: MB/s per connection"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0.0,
        help="restore or upload through a proxy: this round trip",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="restore: LABEL=SRC, s3stow from the source tree SRC too, alternating",
    )
    parser.add_argument(
        "--dest-root", type=Path, help="restore into a folder under this one (e.g. /dev/shm)"
    )
    parser.add_argument("extra", nargs="*", help="after --: more arguments for s3stow")
    args = parser.parse_intermixed_args()
    if args.top:
        top(args.top, args.count)
        return 0
    if not args.mode or not args.dataset:
        parser.error("give a mode and a dataset (or --top FILE)")
    src = ub.make_dataset(args.dataset, ub.SIZES[args.dataset])
    work = Path(tempfile.mkdtemp(prefix="s3stow-profile-"))
    cleanup = [work]
    proxy: subprocess.Popen[str] | None = None
    try:
        with BenchServer("seaweedfs") as server:
            env = {**os.environ, **ub.ENV}
            base = [sys.executable, "-m", "s3stow", "-q", "--endpoint-url", server.endpoint_url]
            upload = [*base, "upload", str(src), "s3://bench/p", "--ledger", str(work / "u.db")]
            if args.mode != "upload":
                subprocess.run(upload, env=env, check=True, stdout=subprocess.DEVNULL)
            endpoint = server.endpoint_url
            if args.stream_cap or args.latency_ms:
                proxy, endpoint = start_delay_proxy(
                    server.port, args.latency_ms, rate_mbps=args.stream_cap
                )
                base[base.index(server.endpoint_url)] = endpoint
            dests = work
            if args.dest_root is not None:
                dests = Path(tempfile.mkdtemp(prefix="s3stow-profile-", dir=args.dest_root))
                cleanup.append(dests)
            if args.mode == "restore" and (args.peer or args.variant):
                tools = ["s3stow", *(v.split("=", 1)[0] for v in args.variant)]
                tools += [args.peer] if args.peer else []
                trees = dict(v.split("=", 1) for v in args.variant)
                return compare(
                    server,
                    env,
                    work,
                    tools,
                    args.runs,
                    args.extra,
                    endpoint=endpoint,
                    dests=dests,
                    trees=trees,
                )
            if args.mode == "restore":
                dest, ledger = dests / "restored", work / "r.db"
                timed = [*base, "restore", "s3://bench/p", str(dest), "--ledger", str(ledger)]
            else:  # through the proxy, when there is one
                timed = [*base, *upload[len(base) :]]
            timed += args.extra
            stderr = None
            if args.importtime:
                timed = [timed[0], "-X", "importtime", *timed[1:]]
                stderr = args.importtime.open("w", encoding="utf-8")
            if args.cprofile:
                timed = [timed[0], "-m", "cProfile", "-o", str(args.cprofile), *timed[1:]]
            if args.main_thread:  # python -c MAIN_THREAD ARGS: s3stow ARGS, then the two CPUs
                timed = [timed[0], "-c", MAIN_THREAD, *timed[3:]]
            if args.spy:
                spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
                gil = ["--gil"] if args.gil else []
                timed = [
                    spy,
                    "record",
                    "-r",
                    "250",
                    "-f",
                    "raw",
                    *gil,
                    "-o",
                    str(args.spy),
                    "--",
                    *timed,
                ]
            print(f"{args.mode} {args.dataset}: {_measure(timed, env, server, stderr=stderr)[0]}")
    finally:
        if proxy is not None:
            proxy.kill()
            proxy.wait()
        for folder in cleanup:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


# s3stow run as ``python -m s3stow`` is, printing at exit the CPU seconds of the main
# thread (start-up, then planning, comparing, handing out and recording files) and of
# the whole process (the request threads and the ledger's writer too).
MAIN_THREAD = (
    "import atexit, runpy, sys, time\n"
    "def cpu():\n"
    "    print(f'main thread CPU {time.thread_time():.2f} s, process CPU'\n"
    "          f' {time.process_time():.2f} s', file=sys.__stderr__, flush=True)\n"
    "atexit.register(cpu)\n"
    "sys.argv = ['s3stow', *sys.argv[1:]]\n"
    "runpy.run_module('s3stow', run_name='__main__', alter_sys=True)\n"
)


def _measure(
    argv: list[str], env: dict[str, str], server: BenchServer, *, stderr: IO[str] | None = None
) -> tuple[str, float, float, int]:
    """Run ``argv``: its wall time, the client's CPU (user, system), its context
    switches and the server's CPU; as a line, and the wall and CPU seconds and the
    context switches."""
    served = server.cpu()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=stderr)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    switches = after.ru_nvcsw + after.ru_nivcsw - before.ru_nvcsw - before.ru_nivcsw
    line = (
        f"wall {wall:.2f} s, client CPU {user + system:.2f} s (user {user:.2f} s, "
        f"system {system:.2f} s), {switches / 1000:.1f}k context switches, server CPU "
        f"{server.cpu() - served:.2f} s"
    )
    return line, wall, user + system, switches


def compare(
    server: BenchServer,
    env: dict[str, str],
    work: Path,
    tools: list[str],
    runs: int,
    extra: list[str],
    *,
    endpoint: str,
    dests: Path,
    trees: dict[str, str],
) -> int:
    """s3stow's restore, its variants' (``trees``: label -> source tree) and a peer's
    download of the same prefix from ``endpoint`` (the server, or a proxy in front of
    it) into folders under ``dests``, in a rotated order, then each tool's medians."""
    env = {**env, **ub.rclone_env(endpoint)}
    found: dict[str, list[tuple[float, float, int]]] = {tool: [] for tool in tools}
    load_before = os.getloadavg()
    for round_ in range(runs):
        turn = round_ % len(tools)
        for tool in tools[turn:] + tools[:turn]:
            dest = dests / f"restored-{tool}"
            shutil.rmtree(dest, ignore_errors=True)  # its own output, freed just now
            ledger = work / f"r-{tool}-{round_}.db"
            s3stow = tool == "s3stow" or tool in trees
            argv = ub.download_command(
                "s3stow" if s3stow else tool, endpoint, "p", dest, ledger=ledger
            )
            if argv is None:
                print(f"{tool}: not installed")
                return 1
            if s3stow:
                argv += extra
            run_env = {**env, "PYTHONPATH": trees[tool]} if tool in trees else env
            dest.mkdir(parents=True)
            line, wall, cpu, switches = _measure(argv, run_env, server)
            found[tool].append((wall, cpu, switches))
            print(f"round {round_ + 1} {tool:7s}: {line}", flush=True)
    print(
        f"medians of {runs} rounds (min-max); load {load_before[0]:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after:"
    )
    for tool, samples in found.items():
        walls, cpus, switches = (list(values) for values in zip(*samples, strict=True))
        print(
            f"  {tool:7s} wall {statistics.median(walls):.2f} s ({min(walls):.2f}-"
            f"{max(walls):.2f}), CPU {statistics.median(cpus):.2f} s ({min(cpus):.2f}-"
            f"{max(cpus):.2f}), context switches {statistics.median(switches) / 1000:.1f}k "
            f"({min(switches) / 1000:.1f}-{max(switches) / 1000:.1f}k)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
