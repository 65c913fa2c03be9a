"""Throughput of ``s3stow job work`` with 1, 2 and 3 workers (separate processes).

    python bench/job_bench.py [--runs 3] [--workers 1,2,3] [--quick]

Two workloads, each planned into a fresh job (its own PostgreSQL schema) and worked
by N ``s3stow job work`` processes started together against a fresh moto server:
``small`` (2,000 files of 16 KiB: claims, PUTs and records) and ``split`` (one 256 MiB
file split into 16 MiB parts that every worker claims, completed by one). Runs are
interleaved (1 2 3 1 2 3 ...); the table shows medians of the wall time from the
workers' start to the last exit, the rate, the workers' CPU (user + sys of all of
them) and the server's CPU. All processes share this host's cores: on a 2-core
machine more workers cannot go faster (see docs/scale-out.md).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
MiB = 1024 * 1024
PG = os.environ.get("S3STOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def make_data(name: str, files: int, size: int) -> Path:
    root = HERE / ".data" / f"job-{name}-{files}x{size}"
    if root.exists():
        return root
    tmp = root.with_suffix(".tmp")
    block = os.urandom(size) if size <= 64 * MiB else b""
    for index in range(files):
        path = tmp / f"d{index % 20}" / f"f{index}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            if block:
                handle.write(block[index % 97 :] + block[: index % 97])
            else:
                for _ in range(size // MiB):
                    handle.write(os.urandom(MiB))
    tmp.rename(root)
    return root


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def s3stow(*args: str, endpoint: str) -> list[str]:
    return [sys.executable, "-m", "s3stow", "-q", "--endpoint-url", endpoint, *args]


def one_run(data: Path, workers: int, *, split: bool) -> dict[str, float]:
    import boto3
    import psycopg

    from s3stow.devserver.moto import LocalS3Server

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    ledger = f"{PG}?options=-csearch_path%3D{schema}"
    server = LocalS3Server()
    server.start()
    env = {**os.environ, **ENV}
    try:
        boto3.client(
            "s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing",
        ).create_bucket(Bucket="bench")  # fmt: skip
        job = f"bench-{uuid.uuid4().hex[:6]}"
        plan = ["job", "plan", str(data), "s3://bench/p", "--job", job, "--ledger", ledger]
        plan += ["--split-above", "64MiB" if split else "off"]
        plan_env = {**env, "S3STOW_PART_SIZE": "16MiB"} if split else env
        subprocess.run(
            s3stow(*plan, endpoint=server.endpoint_url),
            env=plan_env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        assert server.process is not None
        server_before = cpu_seconds(server.process.pid)
        cpu_before = children_cpu()
        work = ["job", "work", "--job", job, "--ledger", ledger]
        started = time.perf_counter()
        running = [
            subprocess.Popen(
                s3stow(*work, endpoint=server.endpoint_url), env=env, stdout=subprocess.DEVNULL
            )
            for _ in range(workers)
        ]
        codes = [p.wait() for p in running]
        wall = time.perf_counter() - started
        if codes != [0] * workers:
            raise SystemExit(f"a worker failed: {codes}")
        return {
            "wall": wall,
            "client_cpu": children_cpu() - cpu_before,
            "server_cpu": cpu_seconds(server.process.pid) - server_before,
        }
    finally:
        server.stop()
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="1,2,3")
    parser.add_argument("--quick", action="store_true", help="500 small files, 64 MiB split")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    small = (500, 16 * 1024) if args.quick else (2000, 16 * 1024)
    big = 128 * MiB if args.quick else 256 * MiB
    workloads = {
        "small": (make_data("small", *small), small[0], small[0] * small[1], False),
        "split": (make_data("split", 1, big), 1, big, True),
    }
    results: dict[tuple[str, int], list[dict[str, float]]] = {}
    for _ in range(args.runs):
        for name, (data, _files, _size, split) in workloads.items():
            for workers in counts:
                run = one_run(data, workers, split=split)
                results.setdefault((name, workers), []).append(run)
                print(f"{name} x{workers}: {run['wall']:.2f}s", file=sys.stderr, flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (1 min; other work on the host)")
    print("| workload | workers | wall (median) | range | rate | workers' CPU | server CPU |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (name, workers), runs in results.items():
        wall = statistics.median(r["wall"] for r in runs)
        files, size = workloads[name][1], workloads[name][2]
        rate = (
            f"{files / wall:,.0f} files/s" if name == "small" else f"{size / MiB / wall:.1f} MiB/s"
        )
        client = statistics.median(r["client_cpu"] for r in runs)
        server = statistics.median(r["server_cpu"] for r in runs)
        walls = [r["wall"] for r in runs]
        spread = f"{min(walls):.2f}–{max(walls):.2f} s"
        print(
            f"| {name} | {workers} | {wall:.2f} s | {spread} | {rate} | {client:.1f} s "
            f"| {server:.1f} s |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
