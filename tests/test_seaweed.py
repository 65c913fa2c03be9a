"""The SeaweedFS launcher: a real S3 server on loopback ports only, stopped by PID."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions
import pytest

from s3stow.devserver.seaweedfs import SeaweedServer, seaweed_available
from s3stow.errors import ConfigError
from tests.conftest import s3_client


def test_seaweed_bucket_stores_and_validates(seaweed_s3: Any, seaweed_bucket: str) -> None:
    seaweed_s3.put_object(Bucket=seaweed_bucket, Key="a/b.txt", Body=b"hello")
    assert seaweed_s3.get_object(Bucket=seaweed_bucket, Key="a/b.txt")["Body"].read() == b"hello"
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()  # noqa: S324
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        seaweed_s3.put_object(Bucket=seaweed_bucket, Key="bad", Body=b"hello", ContentMD5=wrong)
    assert caught.value.response["Error"]["Code"] == "BadDigest"  # a real server checks


def listening(pid: int) -> set[tuple[str, int]]:
    """The TCP (address, port) pairs process ``pid`` listens on, from Linux's /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.add((address, int(port, 16)))
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="reads the listening sockets from /proc")
def test_every_port_is_loopback_and_released_at_stop(tmp_path: Path) -> None:
    own = {"AWS_ACCESS_KEY_ID": "dev-key", "AWS_SECRET_ACCESS_KEY": "dev-secret"}
    server = SeaweedServer(data_dir=tmp_path / "data", env=own)
    server.start()
    try:
        assert server.process is not None
        pid, ports = server.process.pid, set(server.ports.values())
        with pytest.raises(botocore.exceptions.ClientError):  # its admin is the given identity
            s3_client(server.endpoint_url).list_buckets()
        s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="dev-key",
            aws_secret_access_key="dev-secret",
        )
        s3.create_bucket(Bucket="kept")
        s3.put_object(Bucket="kept", Key="k", Body=b"on disk")
        deadline = time.monotonic() + 20  # the admin server comes up after S3
        while {port for _, port in listening(pid)} != ports and time.monotonic() < deadline:
            time.sleep(0.2)
        # every port weed opens is one it was given, on loopback (0100007F: 127.0.0.1)
        assert listening(pid) == {("0100007F", port) for port in ports}
    finally:
        server.stop()
    assert not Path(f"/proc/{pid}").exists()
    for port in ports:  # nothing listens there after stop
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", port), timeout=1),
        ):
            pass
    assert not list(Path("/tmp").glob(f"seaweedfs-*-{server.port}.sock"))
    again = SeaweedServer(data_dir=tmp_path / "data", env=own)
    again.start()
    s3 = boto3.client(
        "s3",
        endpoint_url=again.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="dev-key",
        aws_secret_access_key="dev-secret",
    )
    try:  # the objects were on disk, served on new ports
        got = s3.get_object(Bucket="kept", Key="k")
        assert got["Body"].read() == b"on disk"
    finally:
        again.stop()


def test_busy_port_is_refused_before_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = SeaweedServer(port=taken.getsockname()[1], data_dir=tmp_path / "data")
        with pytest.raises(ConfigError, match="already in use"):
            server.start()
    assert server.process is None


def test_a_long_temporary_folder_does_not_keep_seaweedfs_from_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """weed binds two unix sockets in the scratch folder: under a TMPDIR some 75 bytes
    long their paths passed the 108 bytes a socket's may have, and weed stopped at start
    ("bind: invalid argument"; the suite's own tmp paths grow with pytest's counter)."""
    if not seaweed_available():
        pytest.skip("SeaweedFS is not installed for this platform")
    long_tmp = tmp_path / ("t" * (100 - len(str(tmp_path))))
    long_tmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(long_tmp))
    server = SeaweedServer()
    server.start()
    try:
        s3 = s3_client(server.endpoint_url)
        s3.create_bucket(Bucket="long-tmp")
        s3.put_object(Bucket="long-tmp", Key="k", Body=b"x")
    finally:
        server.stop()
    assert list(long_tmp.iterdir()) == []
