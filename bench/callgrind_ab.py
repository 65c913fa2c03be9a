"""A/B the instructions of an upload, or a restore, between two s3stow trees under callgrind.

CPU seconds on a shared machine move with the load; the instructions a program
executes do not (much). This starts one SeaweedFS and runs ``s3stow -q upload`` of
one 1 KiB file and of a tree of 200 files of 16 KiB (20 folders, as the bench's small
dataset nests them) from each tree (``PYTHONPATH=TREE``) under ``valgrind
--tool=callgrind``, alternating, each to a fresh prefix with a fresh ledger, and
prints the instructions of every run (all threads; callgrind runs them one at a
time) and each tree's median per dataset, and the difference per file of the tree.

    python bench/callgrind_ab.py A_SRC B_SRC [--runs 3] [--datasets one,tree] [--restore]
        [-- ARGS]

``--restore`` counts ``s3stow -q restore`` instead: both datasets are uploaded once
(untimed, not under callgrind), then every run restores one of them into an empty
folder with a fresh ledger; the difference per file is then per restored object.

ARGS go to every s3stow command: ``-- --concurrency 1 --max-concurrency 1`` keeps the
tree's requests on one thread, so the instruction count no longer follows how the
threads were scheduled and how far the limiter grew (at 16 and more, two runs of the
same tree differ by several percent; a one-file upload by 0.05%).

Python under callgrind runs about 50 times slower: a one-file upload takes 15-30 s,
the tree about a minute. Byte-compile both trees first (``python -m compileall -q
TREE``). ``PYTHONHASHSEED`` is fixed, so what is left to vary is the threads' order
and the server's answers.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upload_bench as ub
from servers import BUCKET, BenchServer, load_line

TREE_FILES = 200


def _make_inputs(work: Path) -> dict[str, Path]:
    one = work / "one" / "one.bin"
    one.parent.mkdir(parents=True)
    one.write_bytes(os.urandom(1024))
    tree = work / "tree"
    for index in range(TREE_FILES):
        folder = tree / f"d{index % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:05d}.bin").write_bytes(os.urandom(16 * 1024))
    return {"one": one, "tree": tree}


def _instructions(out: Path) -> int:
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise SystemExit(f"{out}: no totals line")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="source tree A (its src folder)")
    parser.add_argument("b", type=Path, help="source tree B (its src folder)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--datasets", default="one,tree", help="one, tree or both")
    parser.add_argument("--keep", type=Path, help="keep the callgrind.out files here")
    parser.add_argument(
        "--restore", action="store_true", help="count restores of the datasets, not uploads"
    )
    parser.add_argument("extra", nargs="*", help="after --: more arguments for s3stow")
    args = parser.parse_intermixed_args()
    work = Path(tempfile.mkdtemp(prefix="s3stow-cg-"))
    keep = args.keep or work
    keep.mkdir(parents=True, exist_ok=True)
    inputs = _make_inputs(work)
    names = {"A": args.a.resolve(), "B": args.b.resolve()}
    found: dict[tuple[str, str], list[int]] = {}
    load_before = os.getloadavg()
    with BenchServer("seaweedfs") as server:
        if args.restore:  # the objects to restore, uploaded once by tree A
            for dataset in args.datasets.split(","):
                seed = [sys.executable, "-m", "s3stow", "-q", "--endpoint-url"]
                seed += [server.endpoint_url, "upload", str(inputs[dataset])]
                seed += [f"s3://{BUCKET}/seed-{dataset}", "--ledger", str(work / "seed.db")]
                env = {**os.environ, **ub.ENV, "PYTHONPATH": str(names["A"])}
                subprocess.run(seed, env=env, check=True, capture_output=True)
        for round_ in range(args.runs):
            for dataset in args.datasets.split(","):
                order = ["A", "B"] if round_ % 2 == 0 else ["B", "A"]
                for name in order:
                    tag = f"{dataset}-{name}-{round_}"
                    out = keep / f"callgrind.{tag}.out"
                    env = {
                        **os.environ,
                        **ub.ENV,
                        "PYTHONPATH": str(names[name]),
                        "PYTHONHASHSEED": "0",
                    }
                    command = [
                        "valgrind",
                        "--tool=callgrind",
                        f"--callgrind-out-file={out}",
                        sys.executable,
                        "-m",
                        "s3stow",
                        "-q",
                        "--endpoint-url",
                        server.endpoint_url,
                        *(
                            ("restore", f"s3://{BUCKET}/seed-{dataset}", str(work / tag))
                            if args.restore
                            else ("upload", str(inputs[dataset]), f"s3://{BUCKET}/{tag}")
                        ),
                        "--ledger",
                        str(work / f"{tag}.db"),
                        *args.extra,
                    ]
                    subprocess.run(command, env=env, check=True, capture_output=True)
                    count = _instructions(out)
                    found.setdefault((dataset, name), []).append(count)
                    print(f"{tag}: {count:,} instructions", flush=True)
    load_after = os.getloadavg()
    print(f"A = {names['A']}, B = {names['B']}; {args.runs} runs each, medians:")
    medians: dict[tuple[str, str], float] = {}
    for (dataset, name), counts in sorted(found.items()):
        medians[dataset, name] = statistics.median(counts)
        spread = f"{min(counts):,}-{max(counts):,}"
        print(f"  {dataset:5s} {name}: {medians[dataset, name]:,.0f} ({spread})")
    for dataset in args.datasets.split(","):
        a, b = medians[dataset, "A"], medians[dataset, "B"]
        print(f"  {dataset:5s} B - A: {b - a:+,.0f} ({(b - a) / a * 100:+.2f}%)")
    if {"one", "tree"} <= set(args.datasets.split(",")):
        for name in ("A", "B"):
            per_file = (medians["tree", name] - medians["one", name]) / (TREE_FILES - 1)
            what = "restored object" if args.restore else "file"
            print(f"  per {what} after the first, {name}: {per_file:,.0f} instructions")
    print(load_line(load_before, load_after))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
