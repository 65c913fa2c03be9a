"""A 1,000-file upload with the endpoint given only by ``AWS_ENDPOINT_URL``, against the
same upload with ``--endpoint-url`` (issue 18).

Each run gets a fresh local S3 server (moto); the two ways of giving the endpoint run
interleaved, and each also runs once more with ``--debug`` to list every host a request
was sent (or tried) to: the fast path's lines and botocore's ``Sending http request``
lines. ``--before PATH`` adds a third way: ``AWS_ENDPOINT_URL`` with the s3stow found at
PATH (a source tree, e.g. the code before the fix), run once.

    python bench/endpoint_env.py [--files 1000] [--runs 3] [--before /tmp/old/src]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import boto3

from s3stow.devserver.moto import LocalS3Server
from servers import count_objects  # beside this file
from upload_bench import DATA, ENV, make_dataset, timed

HOSTS = re.compile(
    r"fast path \w+ ([^/\s]+)/|Sending http request: <AWSPreparedRequest [^>]*?url=\w+://([^/,]+)"
)


def run(
    way: str, src: Path, run_id: str, *, files: int, debug: bool, before: str | None
) -> tuple[float, float, set[str]]:
    """One upload of ``src``: wall and CPU seconds (0 with ``debug``) and, with
    ``debug``, the hosts its requests went or were tried to."""
    server = LocalS3Server()
    server.start()
    try:
        boto3.client("s3", endpoint_url=server.endpoint_url).create_bucket(Bucket="bench")
        env = {**os.environ, **ENV}
        argv = [sys.executable, "-m", "s3stow", "-q"]
        if debug:
            argv.append("--debug")
        if way == "flag":
            argv += ["--endpoint-url", server.endpoint_url]
        else:
            env["AWS_ENDPOINT_URL"] = server.endpoint_url
        if way == "before":
            env["PYTHONPATH"] = before or ""
        ledger = DATA / f"ledger-endpoint-{way}-{run_id}.db"
        for leftover in DATA.glob(ledger.name + "*"):
            leftover.unlink()
        argv += ["upload", str(src), f"s3://bench/{way}-{run_id}", "--ledger", str(ledger)]
        hosts: set[str] = set()
        if debug:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            hosts = {a or b for a, b in HOSTS.findall(done.stderr)}
            wall, cpu, code = 0.0, 0.0, done.returncode
        else:
            wall, cpu, _, code = timed(argv, env)
        stored = count_objects(server.endpoint_url, f"{way}-{run_id}")
        if code != 0 or stored != files:
            raise SystemExit(f"{way}: exit {code}, {stored} of {files} objects stored")
        return wall, cpu, hosts
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", help="a source tree whose s3stow runs as 'before'")
    args = parser.parse_args()
    os.environ.update(ENV)
    src = make_dataset("endpoint", (args.files, 16 * 1024, True))
    samples: dict[str, list[tuple[float, float]]] = {"flag": [], "env": []}
    for run_id in range(args.runs):
        for way in samples:
            wall, cpu, _ = run(way, src, str(run_id), files=args.files, debug=False, before=None)
            samples[way].append((wall, cpu))
            print(f"  {way:6} run {run_id + 1}: wall {wall:.2f}s cpu {cpu:.2f}s", flush=True)
    for way in samples:
        _, _, hosts = run(way, src, "debug", files=args.files, debug=True, before=None)
        print(f"  {way:6} --debug: hosts contacted {sorted(hosts)}")
    if args.before:
        wall, cpu, _ = run("before", src, "0", files=args.files, debug=False, before=args.before)
        _, _, hosts = run("before", src, "d", files=args.files, debug=True, before=args.before)
        print(f"  before: wall {wall:.2f}s cpu {cpu:.2f}s; hosts contacted {sorted(hosts)}")
    print(f"| endpoint given by | files | wall s (median of {args.runs}) | client CPU s |")
    print("|---|---|---|---|")
    for way, label in (("flag", "--endpoint-url"), ("env", "AWS_ENDPOINT_URL")):
        walls, cpus = zip(*samples[way], strict=True)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(f"| {label} | {args.files} | {wall:.2f} | {cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
