"""How fast ``s3stow job plan`` enqueues a large tree, and how much memory it holds.

    python bench/plan_bench.py [--files 200000] [--ledger postgresql://...] [--work]

Creates a tree of tiny files (once, under bench/.data), plans it into a fresh job,
then plans it again (the no-op re-plan), and prints files/s and the peak RSS of each
``s3stow job plan`` process (GNU time). With ``--work`` it then uploads the job with
one ``s3stow job work`` process against a local moto server and reports the same.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_tree(count: int) -> Path:
    root = HERE / ".data" / f"plan-{count}"
    if root.exists():
        return root
    tmp = root.with_suffix(".tmp")
    for index in range(count):
        folder = tmp / f"d{index % 100}" / f"e{index % 17}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index}.txt").write_bytes(b"x")
    tmp.rename(root)
    return root


def timed(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``s3stow ARGS`` under GNU time: (wall seconds, peak RSS MiB)."""
    rss_file = HERE / ".data" / "plan-rss.txt"
    start = time.perf_counter()
    subprocess.run(
        [
            "/usr/bin/time",
            "-f",
            "%M",
            "-o",
            str(rss_file),
            sys.executable,
            "-m",
            "s3stow",
            "-q",
            *args,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    elapsed = time.perf_counter() - start
    return elapsed, int(rss_file.read_text().split()[-1]) / 1024


def plan(root: Path, job: str, ledger: str) -> tuple[float, float]:
    return timed(
        ["job", "plan", str(root), "s3://bench-bucket/p", "--job", job, "--ledger", ledger]
    )


def work(job: str, ledger: str) -> tuple[float, float]:
    import boto3

    from s3stow.devserver.moto import LocalS3Server

    server = LocalS3Server()
    server.start()
    try:
        env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        boto3.client(
            "s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        ).create_bucket(Bucket="bench-bucket")  # fmt: skip
        return timed(
            [
                "--endpoint-url",
                server.endpoint_url,
                "job",
                "work",
                "--job",
                job,
                "--ledger",
                ledger,
            ],
            env=env | {"AWS_DEFAULT_REGION": "us-east-1"},
        )
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=200_000)
    parser.add_argument(
        "--ledger",
        default=os.environ.get(
            "S3STOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--work", action="store_true", help="also upload the job")
    args = parser.parse_args()
    root = make_tree(args.files)
    job = f"bench-{uuid.uuid4().hex[:8]}"
    for label in ("plan", "re-plan (no-op)"):
        elapsed, rss = plan(root, job, args.ledger)
        print(
            f"{label:16} {args.files:,} files in {elapsed:.1f}s = "
            f"{args.files / elapsed:,.0f} files/s, peak RSS {rss:.0f} MiB"
        )
    if args.work:
        elapsed, rss = work(job, args.ledger)
        print(
            f"{'work (upload)':16} {args.files:,} files in {elapsed:.1f}s = "
            f"{args.files / elapsed:,.0f} files/s, peak RSS {rss:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
