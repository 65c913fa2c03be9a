"""The MD5 the checksum-validation probe saves: two s3stow source trees, interleaved.

Uploads ``--files`` x ``--size`` MiB of random bytes to a fresh SeaweedFS bucket with a
fresh ledger per run (so every run of a probing s3stow sends its probe), with
``etag_check: auto``, once per round with each tree, and prints wall and CPU
(``getrusage`` of the child) per run and their medians. Example, the tree before the
probes against this checkout::

    git archive <base> src | tar -x -C /tmp/base
    python -m compileall -q src /tmp/base/src
    python bench/probe_bench.py --tree before=/tmp/base/src --tree after=src --rounds 3
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import boto3

from s3stow.devserver.seaweedfs import SeaweedServer

_KEYS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _run(endpoint: str, src: str, data: Path, bucket: str, work: Path) -> tuple[float, float]:
    env = {**os.environ, **_KEYS, "PYTHONPATH": src, "S3STOW_ETAG_CHECK": "auto"}
    command = [sys.executable, "-m", "s3stow", "--endpoint-url", endpoint, "-q", "upload"]
    command += [str(data), f"s3://{bucket}/p", "--ledger", str(work / "l.db")]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{src}: exit {done.returncode}: {done.stderr}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="LABEL=SRC_DIR")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--size", type=int, default=8, help="MiB per file")
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.tree)
    root = Path(tempfile.mkdtemp(prefix="probe-bench-"))
    data = root / "data"
    data.mkdir()
    for i in range(args.files):
        (data / f"f{i:03d}.bin").write_bytes(os.urandom(args.size * 1024 * 1024))
    server = SeaweedServer(data_dir=root / "weed")
    server.start()
    s3 = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1")
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in trees}
    try:
        for round_ in range(args.rounds):
            for label, src in trees.items():
                bucket = f"b{uuid.uuid4().hex[:12]}"
                s3.create_bucket(Bucket=bucket)
                work = Path(tempfile.mkdtemp(dir=root))
                wall, cpu = _run(server.endpoint_url, src, data, bucket, work)
                results[label].append((wall, cpu))
                print(f"round {round_} {label}: wall {wall:.2f} s, cpu {cpu:.2f} s", flush=True)
                for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                    s3.delete_object(Bucket=bucket, Key=item["Key"])
                s3.delete_bucket(Bucket=bucket)
    finally:
        server.stop()
    for label, runs in results.items():
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        print(
            f"{label}: wall median {statistics.median(walls):.2f} s "
            f"({min(walls):.2f}-{max(walls):.2f}), cpu median {statistics.median(cpus):.2f} s "
            f"({min(cpus):.2f}-{max(cpus):.2f})"
        )


if __name__ == "__main__":
    os.environ.update(_KEYS)
    main()
