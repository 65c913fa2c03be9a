"""The CPU floor of a one-file upload from Python with botocore, beside s3stow and s5cmd.

Issue 21 asks a one-file upload to cost at most 2.5x s5cmd's CPU. This measures, in
one interleaved run against a fresh SeaweedFS, what any tool built on botocore pays
before it has sent a byte, so the target can be read against it:

- ``python``: the interpreter starting and exiting (``python -c pass``);
- ``import botocore``: ``botocore.session`` and ``botocore.client`` imported;
- ``botocore put``: a session, an S3 client and one 1 KiB PutObject, nothing else
  (no configuration, no ledger, no verification): the floor of a botocore tool;
- ``s3stow``: ``s3stow -q upload`` of the same file (with its ledger);
- ``s5cmd``: ``s5cmd cp`` of the same file.

Each command runs ``--runs`` times, the commands taking turns; the median CPU
(user + system, from ``getrusage`` of the child) is printed with the ratio to s5cmd.

    python bench/startup_floor.py [--runs 9]
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
from servers import BUCKET, BenchServer

PUT = """
import sys
import botocore.session
client = botocore.session.get_session().create_client("s3", endpoint_url=sys.argv[1])
with open(sys.argv[2], "rb") as body:
    client.put_object(Bucket=sys.argv[3], Key="floor/one.bin", Body=body)
"""


def _cpu(command: list[str], env: dict[str, str]) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    s5cmd = ub.tool_path("s5cmd")
    if s5cmd is None:
        parser.error("s5cmd is not installed: bash bench/setup.sh")
    work = Path(tempfile.mkdtemp(prefix="s3stow-floor-"))
    one = work / "one.bin"
    one.write_bytes(os.urandom(1024))
    env = {**os.environ, **ub.ENV}
    python = sys.executable
    with BenchServer("seaweedfs") as server:
        url = server.endpoint_url
        ledger = str(work / "l.db")
        upload = [str(one), f"s3://{BUCKET}/s3stow/one.bin", "--ledger", ledger, "--force"]
        commands = {
            "python": [python, "-c", "pass"],
            "import botocore": [python, "-c", "import botocore.session, botocore.client"],
            "botocore put": [python, "-c", PUT, url, str(one), BUCKET],
            "s3stow": [python, "-m", "s3stow", "-q", "--endpoint-url", url, "upload", *upload],
            "s5cmd": [s5cmd, "--endpoint-url", url, "cp", str(one), f"s3://{BUCKET}/s5/one.bin"],
        }
        samples: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                samples[name].append(_cpu(command, env))
    floor = statistics.median(samples["s5cmd"])
    print(f"CPU per command, median of {args.runs} (user + system), against s5cmd's")
    for name, cpus in samples.items():
        median = statistics.median(cpus)
        print(f"{name:16s} {median * 1000:6.0f} ms  {median / floor:5.2f} x s5cmd")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
