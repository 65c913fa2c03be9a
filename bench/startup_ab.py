"""A/B the CPU of a one-file upload between two s3stow source trees, alternating.

Start-up changes move a one-file upload's CPU by 5-30 ms out of about 500: less than
the noise of one run on a shared machine. This starts one SeaweedFS and runs
``s3stow -q upload`` of one 1 KiB file (a fresh prefix and ledger each time, as a
first upload) from each tree in turn (``PYTHONPATH=TREE``), the order swapped every
round, and prints each tree's median CPU (user + system of the child) with its
spread, the difference of the medians, and the load average before and after.

    python bench/startup_ab.py A_SRC B_SRC [--runs 15] [-- more s3stow arguments]

e.g. ``python bench/startup_ab.py /tmp/base/src src``. Byte-compile both trees first
(``python -m compileall -q TREE``): under PYTHONDONTWRITEBYTECODE=1 an uncompiled
tree is recompiled at every start. ``--s5cmd`` times ``s5cmd cp`` of the same file in
the same rounds, for the ratio issue 21 asks about. ``--b-env NAME=VALUE`` sets a
variable for B's runs only: one tree against itself with a setting changed
(``--b-env S3STOW_ETAG_CHECK=on``) prices what that setting turns off. ``--restore``
times ``s3stow -q restore`` of one 1 KiB object into a new folder instead.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upload_bench as ub
from servers import BUCKET, BenchServer, load_line, s3_client


def _cpu(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


def _summary(name: str, samples: list[tuple[float, float]]) -> str:
    cpu = sorted(u + s for u, s in samples)
    user = statistics.median(u for u, _ in samples)
    system = statistics.median(s for _, s in samples)
    quart = statistics.quantiles(cpu, n=4) if len(cpu) > 1 else [cpu[0]] * 3
    return (
        f"{name:10s} CPU median {statistics.median(cpu) * 1000:5.0f} ms "
        f"(quartiles {quart[0] * 1000:.0f}-{quart[2] * 1000:.0f}, "
        f"min {cpu[0] * 1000:.0f}, max {cpu[-1] * 1000:.0f}; "
        f"user {user * 1000:.0f}, system {system * 1000:.0f})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="source tree A (its src folder)")
    parser.add_argument("b", type=Path, help="source tree B (its src folder)")
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--s5cmd", action="store_true", help="time s5cmd cp too")
    parser.add_argument(
        "--restore", action="store_true", help="time `restore` of the one object instead"
    )
    parser.add_argument(
        "--b-env", action="append", default=[], metavar="NAME=VALUE", help="for B only"
    )
    parser.add_argument("extra", nargs="*", help="after --: more arguments for s3stow")
    args = parser.parse_intermixed_args()
    work = Path(tempfile.mkdtemp(prefix="s3stow-ab-"))
    one = work / "one.bin"
    one.write_bytes(os.urandom(1024))
    s5cmd = ub.tool_path("s5cmd") if args.s5cmd else None
    if args.s5cmd and s5cmd is None:
        parser.error("s5cmd is not installed: bash bench/setup.sh")
    names = {"A": args.a.resolve(), "B": args.b.resolve()}
    samples: dict[str, list[tuple[float, float]]] = {"A": [], "B": [], "s5cmd": []}
    load_before = os.getloadavg()
    with BenchServer("seaweedfs") as server:
        url = server.endpoint_url
        if args.restore:
            s3_client(url).put_object(Bucket=BUCKET, Key="restore/one.bin", Body=one.read_bytes())
        for round_ in range(args.runs):
            order = ["A", "B"] if round_ % 2 == 0 else ["B", "A"]
            for name in order:
                env = {**os.environ, **ub.ENV, "PYTHONPATH": str(names[name])}
                if name == "B":
                    env.update(item.split("=", 1) for item in args.b_env)
                run = (
                    ["restore", f"s3://{BUCKET}/restore", str(work / f"out-{name}-{round_}")]
                    if args.restore
                    else ["upload", str(one), f"s3://{BUCKET}/{name}-{round_}"]
                )
                command = [
                    sys.executable,
                    "-m",
                    "s3stow",
                    "-q",
                    "--endpoint-url",
                    url,
                    *run,
                    "--ledger",
                    str(work / f"{name}-{round_}.db"),
                    *args.extra,
                ]
                samples[name].append(_cpu(command, env))
            if s5cmd is not None:
                target = f"s3://{BUCKET}/s5-{round_}/one.bin"
                command = [s5cmd, "--endpoint-url", url, "cp", str(one), target]
                samples["s5cmd"].append(_cpu(command, {**os.environ, **ub.ENV}))
    load_after = os.getloadavg()
    print(f"{args.runs} rounds, A and B alternating; A = {names['A']}, B = {names['B']}")
    for name, found in samples.items():
        if found:
            print(_summary(name, found))
    a = statistics.median(u + s for u, s in samples["A"])
    b = statistics.median(u + s for u, s in samples["B"])
    print(f"B - A: {(b - a) * 1000:+.0f} ms ({(b - a) / a * 100:+.1f}%)")
    if samples["s5cmd"]:
        s5 = statistics.median(u + s for u, s in samples["s5cmd"])
        print(f"ratio to s5cmd: A {a / s5:.2f}, B {b / s5:.2f}")
    print(load_line(load_before, load_after))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
