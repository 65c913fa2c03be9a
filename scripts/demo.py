"""``make demo``: try s3stow end to end against a local S3 server, no AWS account.

Starts the local S3 server on a free loopback port (the default engine, as for
``s3stow dev-server``: SeaweedFS where its wheel exists, else moto), creates a bucket,
generates a sample tree (a few hundred small files, a few multi-MiB files and
one file large enough for multipart), uploads it with the progress display,
runs the same command again to show that nothing is re-sent, checks every
object against the local bytes, prints the result and stops the server.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import boto3

from s3stow.devserver.seaweedfs import default_engine, describe_engine, local_server

ROOT = Path(".demo")


def make_sample(root: Path) -> int:
    rng = random.Random(42)
    count = 0
    for folder in ("reports", "images/2025", "images/2026", "logs"):
        for index in range(75):
            path = root / folder / f"file_{index:03d}.dat"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(rng.randbytes(rng.randint(200, 20_000)))
            count += 1
    for index in range(3):
        (root / "media").mkdir(parents=True, exist_ok=True)
        (root / "media" / f"clip_{index}.bin").write_bytes(rng.randbytes(4 * 1024 * 1024))
        count += 1
    (root / "media" / "large_video.bin").write_bytes(rng.randbytes(40 * 1024 * 1024))
    return count + 1


def archive_demo(endpoint: str, env: dict[str, str]) -> bool:
    """The media archive (seed 003): a sample database archived, archive_url written."""
    db, media = ROOT / "media.db", ROOT / "cache" / "media"
    db.unlink(missing_ok=True)
    s3stow = [sys.executable, "-m", "s3stow"]
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="social-tui")
    print("\n$ s3stow archive init-demo --db .demo/media.db --media-root .demo/cache/media")
    subprocess.run(
        [*s3stow, "archive", "init-demo", "--db", str(db), "--media-root", str(media)],
        env=env,
        check=True,
    )
    print("\n$ s3stow archive run s3://social-tui --db .demo/media.db ...")
    run = subprocess.run(
        [
            *s3stow,
            "--endpoint-url",
            endpoint,
            "archive",
            "run",
            "s3://social-tui",
            "--db",
            str(db),
            "--media-root",
            str(media),
            "--ledger",
            str(ROOT / "ledger.db"),
        ],
        env=env,
        check=False,
    )
    print("\n$ s3stow archive stats --db .demo/media.db")
    subprocess.run([*s3stow, "archive", "stats", "--db", str(db)], env=env, check=False)
    print(
        "(the demo database has 3 rows without a file on purpose: they are reported and "
        "left untouched, so that run exits 1)"
    )
    return run.returncode == 1  # exactly the planted missing files failed


def main() -> int:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(env)
    sample = ROOT / "sample"
    if not sample.exists():
        print("generating the sample tree in", sample)
        files = make_sample(sample)
    else:
        files = sum(1 for p in sample.rglob("*") if p.is_file())
    ledger = ROOT / "ledger.db"
    ledger.unlink(missing_ok=True)
    engine = default_engine()
    server = local_server(engine)
    print(describe_engine(engine))
    print("starting the local S3 server ...")
    server.start()
    try:
        print(f"local S3 server ({engine}) at {server.endpoint_url}")
        s3 = boto3.client("s3", endpoint_url=server.endpoint_url)
        s3.create_bucket(Bucket="demo-bucket")
        base = [
            sys.executable,
            "-m",
            "s3stow",
            "--endpoint-url",
            server.endpoint_url,
            "upload",
            str(sample),
            "s3://demo-bucket/sample",
            "--ledger",
            str(ledger),
            "--status-json",
            str(ROOT / "status.json"),
        ]
        print(f"\n$ s3stow upload {sample} s3://demo-bucket/sample  ({files} files)")
        first = subprocess.run(base, env=env, check=False)
        print("\n$ s3stow upload ... (again: everything is already done)")
        second = subprocess.run(base, env=env, check=False)
        print("\n$ s3stow status .demo/status.json")
        subprocess.run(
            [sys.executable, "-m", "s3stow", "status", str(ROOT / "status.json")],
            env=env,
            check=False,
        )
        mismatches = 0
        for path in sample.rglob("*"):
            if path.is_file():
                key = "sample/" + path.relative_to(sample).as_posix()
                body = s3.get_object(Bucket="demo-bucket", Key=key)["Body"].read()
                mismatches += body != path.read_bytes()
        print(
            f"\nchecked every object against the local file: {files} objects, "
            f"{mismatches} mismatches"
        )
        archived = archive_demo(server.endpoint_url, env)
        ok = first.returncode == 0 and second.returncode == 0 and not mismatches
        return 0 if ok and archived else 1
    finally:
        server.stop()
        print(f"local S3 server ({engine}) stopped")


if __name__ == "__main__":
    sys.exit(main())
