"""``s3stow dev-server --data-dir``: objects survive a restart of the local server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest

from s3stow.devserver import free_port


def _start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "s3stow",
            "dev-server",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group, like a terminal's foreground job
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "press Ctrl+C" in line:
            return process
    raise AssertionError(f"dev-server did not start: {process.wait()}")


def _stop(process: subprocess.Popen[str], how: int) -> str:
    if how == signal.SIGINT:
        os.killpg(process.pid, how)
    else:
        process.send_signal(how)
    out, _ = process.communicate(timeout=60)
    return out


def _client(port: int) -> Any:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    ).client("s3", endpoint_url=f"http://127.0.0.1:{port}")


@pytest.mark.skipif(sys.platform == "win32", reason="process groups and SIGTERM are POSIX")
def test_data_dir_keeps_objects_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "s3data"
    port = free_port()
    server = _start(data, port)
    try:
        s3 = _client(port)
        s3.create_bucket(Bucket="keep")
        s3.put_object(
            Bucket="keep",
            Key="dir/ä b/../report.xml",
            Body=b"<x/>" * 1000,
            ContentType="application/xml",
            Metadata={"origin": "test"},
            ChecksumAlgorithm="CRC64NVME",
        )
        s3.put_object(Bucket="keep", Key="empty", Body=b"")
        before = s3.head_object(Bucket="keep", Key="dir/ä b/../report.xml", ChecksumMode="ENABLED")
    finally:
        out = _stop(server, signal.SIGINT)  # Ctrl+C reaches the group, not the moto child
    assert "saved 2 object(s) in 1 bucket(s)" in out
    server = _start(data, port)
    try:
        s3 = _client(port)
        got = s3.get_object(Bucket="keep", Key="dir/ä b/../report.xml", ChecksumMode="ENABLED")
        assert got["Body"].read() == b"<x/>" * 1000
        assert got["ContentType"] == "application/xml"
        assert got["Metadata"] == {"origin": "test"}
        assert got["ChecksumCRC64NVME"] == before["ChecksumCRC64NVME"]
        assert s3.get_object(Bucket="keep", Key="empty")["Body"].read() == b""
        s3.delete_object(Bucket="keep", Key="empty")
    finally:
        out = _stop(server, signal.SIGTERM)
    assert "saved 1 object(s)" in out
    assert len(list((data / "objects").iterdir())) == 1  # the empty body was collected


def test_data_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "s3stow",
            "dev-server",
            "--port",
            str(free_port()),
            "--data-dir",
            str(tmp_path / "file"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "is not a directory" in done.stderr
    assert "Traceback" not in done.stderr
