"""The instructions of each layer of a one-file upload's start-up, under callgrind.

``bench/startup_floor.py`` times the floor of a botocore tool in CPU seconds, which
move with the machine's load. This counts instructions instead (``valgrind
--tool=callgrind``; all threads), one process per layer, each layer adding one step to
the one before, so the difference between two rows is what that step costs wherever
it runs:

- ``python``: the interpreter starting and exiting (``python -c pass``, site included);
- ``import awscrt.auth``: what ``botocore.compat`` imports when awscrt is installed
  (the native library loaded and initialised, and awscrt's io, http and auth modules);
- ``import botocore, no awscrt``: ``botocore.session`` and ``botocore.client`` with
  awscrt hidden (``sys.modules["awscrt"] = None``: botocore's ``HAS_CRT`` is False);
- ``import botocore``: the same, awscrt found as installed;
- ``botocore client``: a session and an S3 client, no request;
- ``botocore put``: the same and one 1 KiB PutObject (the floor of a botocore tool);
- ``s3stow --version``: s3stow's program and command line, nothing run;
- ``s3stow upload``: ``s3stow -q upload`` of the same file, a fresh ledger each run;
- ``s3stow restore``: ``s3stow -q restore`` of one 1 KiB object into a new folder.

``--src`` runs s3stow from another source tree (``PYTHONPATH``). ``--only NAME,...``
keeps some layers. Every run under callgrind takes 10-30 s.

    PYTHONPATH=src python bench/startup_layers.py [--runs 1] [--src TREE] [--only ...]
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
from callgrind_ab import _instructions
from servers import BUCKET, BenchServer, load_line

CLIENT = """
import sys
import botocore.session
client = botocore.session.get_session().create_client("s3", endpoint_url=sys.argv[1])
"""
PUT = (
    CLIENT
    + """
with open(sys.argv[2], "rb") as body:
    client.put_object(Bucket=sys.argv[3], Key="layers/one.bin", Body=body)
"""
)
NO_CRT = 'import sys; sys.modules["awscrt"] = None; import botocore.session, botocore.client'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--src", type=Path, help="s3stow's source tree (default: as installed)")
    parser.add_argument("--only", help="comma-separated layer names")
    parser.add_argument("--keep", type=Path, help="keep the callgrind.out files here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="s3stow-layers-"))
    keep = args.keep or work
    keep.mkdir(parents=True, exist_ok=True)
    one = work / "one" / "one.bin"
    one.parent.mkdir()
    one.write_bytes(os.urandom(1024))
    env = {**os.environ, **ub.ENV, "PYTHONHASHSEED": "0"}
    if args.src is not None:
        env["PYTHONPATH"] = str(args.src.resolve())
    python = sys.executable
    load_before = os.getloadavg()
    counts: dict[str, list[int]] = {}
    with BenchServer("seaweedfs") as server:
        url = server.endpoint_url
        seed = [python, "-m", "s3stow", "-q", "--endpoint-url", url, "upload", str(one)]
        seed += [f"s3://{BUCKET}/seed", "--ledger", str(work / "seed.db")]
        subprocess.run(seed, env=env, check=True, capture_output=True)
        s3stow = [python, "-m", "s3stow", "-q", "--endpoint-url", url]
        layers = {
            "python": lambda n: [python, "-c", "pass"],
            "import awscrt.auth": lambda n: [python, "-c", "import awscrt.auth"],
            "import botocore, no awscrt": lambda n: [python, "-c", NO_CRT],
            "import botocore": lambda n: [python, "-c", "import botocore.session, botocore.client"],
            "botocore client": lambda n: [python, "-c", CLIENT, url],
            "botocore put": lambda n: [python, "-c", PUT, url, str(one), BUCKET],
            "s3stow --version": lambda n: [python, "-m", "s3stow", "--version"],
            "s3stow upload": lambda n: [
                *s3stow,
                "upload",
                str(one),
                f"s3://{BUCKET}/up{n}",
                "--ledger",
                str(work / f"up{n}.db"),
            ],
            "s3stow restore": lambda n: [
                *s3stow,
                "restore",
                f"s3://{BUCKET}/seed",
                str(work / f"out{n}"),
                "--ledger",
                str(work / f"down{n}.db"),
            ],
        }
        wanted = args.only.split(",") if args.only else list(layers)
        for n in range(args.runs):
            for name in wanted:
                out = keep / f"callgrind.{name.replace(' ', '_')}.{n}.out"
                command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                subprocess.run(
                    [*command, *layers[name](n)], env=env, check=True, capture_output=True
                )
                counts.setdefault(name, []).append(_instructions(out))
                print(f"{name}: {counts[name][-1]:,}", flush=True)
    print(f"instructions, median of {args.runs} (and the step from the row above):")
    previous = None
    for name in wanted:
        median = statistics.median(counts[name])
        step = "" if previous is None else f"  ({median - previous:+,.0f})"
        print(f"  {name:28s} {median / 1e6:9.1f} M{step}")
        previous = median
    print(load_line(load_before, os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
