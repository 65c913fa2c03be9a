"""Baseline peer: plain boto3 ``upload_file`` of every file in a 16-thread pool.

Usage: python boto3_baseline.py ENDPOINT DIR BUCKET PREFIX
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3


def main() -> int:
    endpoint, directory, bucket, prefix = sys.argv[1:5]
    client = boto3.client("s3", endpoint_url=endpoint)
    root = Path(directory)
    files = [p for p in root.rglob("*") if p.is_file()]

    def put(path: Path) -> None:
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(root).as_posix()}")

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
