"""``s3stow dev-server``: SeaweedFS by default (moto where it is missing), loopback only,
objects kept in ``--data-dir`` across restarts, nothing left running after a stop."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest

from s3stow.devserver.moto import free_port
from s3stow.devserver.seaweedfs import port_is_free, seaweed_available


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "s3stow", "dev-server", *args]


def _start(data_dir: Path, port: int, *engine: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        _command("--port", str(port), "--data-dir", str(data_dir), *engine),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group, like a terminal's foreground job
    )
    assert process.stdout is not None
    printed = ""
    for line in process.stdout:
        printed += line
        if "press Ctrl+C" in line:
            return process, printed
    raise AssertionError(f"dev-server did not start: {process.wait()} {printed}")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(_command(*args), capture_output=True, text=True, timeout=60)


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
def test_moto_data_dir_keeps_objects_across_restarts(tmp_path: Path) -> None:
    data = tmp_path / "s3data"
    port = free_port()
    server, _ = _start(data, port, "--engine", "moto")
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
    assert "saved 2 objects in 1 bucket to" in out
    server, _ = _start(data, port, "--engine", "moto")
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
    assert "saved 1 object in" in out
    assert len(list((data / "objects").iterdir())) == 1  # the empty body was collected


def _weed_processes(data: Path) -> list[str]:
    """PIDs of processes whose command line names ``data`` (Linux /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and str(data).encode() in (proc / "cmdline").read_bytes():
                found.append(proc.name)
    return found


def _assert_stopped(server: subprocess.Popen[str], out: str, data: Path, port: int) -> None:
    assert "local S3 server stopped" in out
    assert server.returncode == 0
    assert _weed_processes(data) == []  # nothing left running...
    assert port_is_free("127.0.0.1", port)  # ...nor listening


@pytest.mark.skipif(sys.platform != "linux", reason="reads processes from /proc")
def test_seaweedfs_is_the_default_and_keeps_objects_on_disk(tmp_path: Path) -> None:
    if not seaweed_available():
        pytest.skip("SeaweedFS is not installed for this platform")
    data = tmp_path / "s3data"
    port = free_port()
    server, printed = _start(data, port)
    try:
        s3 = _client(port)
        s3.create_bucket(Bucket="keep")
        s3.put_object(Bucket="keep", Key="dir/ä b.xml", Body=b"<x/>", ChecksumAlgorithm="CRC64NVME")
        before = s3.head_object(Bucket="keep", Key="dir/ä b.xml", ChecksumMode="ENABLED")
        assert _weed_processes(data)
    finally:
        out = _stop(server, signal.SIGINT)  # Ctrl+C reaches the group, not weed
    assert printed.startswith("engine: seaweedfs")  # the choice is printed
    _assert_stopped(server, out, data, port)
    assert not (data / "manifest.json").exists()  # no snapshot: SeaweedFS's own files
    server, _ = _start(data, port)
    try:
        got = _client(port).get_object(Bucket="keep", Key="dir/ä b.xml", ChecksumMode="ENABLED")
        assert got["Body"].read() == b"<x/>"
        assert got["ChecksumCRC64NVME"] == before["ChecksumCRC64NVME"]
    finally:
        out = _stop(server, signal.SIGTERM)
    _assert_stopped(server, out, data, port)


@pytest.mark.parametrize("engine", ["seaweedfs", "moto"])
def test_busy_port_is_refused_with_exit_2(engine: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _run("--engine", engine, "--port", str(port))
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "--port" in done.stderr  # the fix
    assert "Traceback" not in done.stderr


def test_another_engines_data_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "moto").mkdir()
    (tmp_path / "moto" / "manifest.json").write_text("{}")
    (tmp_path / "weed" / "master").mkdir(parents=True)
    port = str(free_port())
    to_weed = _run("--engine", "seaweedfs", "--port", port, "--data-dir", str(tmp_path / "moto"))
    assert to_weed.returncode == 2
    assert "holds a moto snapshot" in to_weed.stderr
    assert "--engine moto" in to_weed.stderr
    to_moto = _run("--engine", "moto", "--port", port, "--data-dir", str(tmp_path / "weed"))
    assert to_moto.returncode == 2
    assert "holds SeaweedFS data" in to_moto.stderr


def test_non_loopback_host_and_unknown_engine_are_refused() -> None:
    assert _run("--host", "0.0.0.0").returncode == 2
    if seaweed_available():
        ipv6 = _run("--engine", "seaweedfs", "--host", "::1", "--port", str(free_port()))
        assert ipv6.returncode == 2
        assert "IPv4 addresses only" in ipv6.stderr
    unknown = _run("--engine", "minio", "--port", str(free_port()))
    assert unknown.returncode == 2
    assert "unknown engine 'minio'" in unknown.stderr


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


def _process_gone(pid: int) -> bool:
    """Whether ``pid`` has ended (Linux /proc: gone, or a zombie no one reaped yet)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="a POSIX shell's background job; /proc")
@pytest.mark.parametrize(
    ("engine", "how"),
    [("seaweedfs", signal.SIGINT), ("seaweedfs", signal.SIGTERM), ("moto", signal.SIGINT)],
)
def test_a_background_dev_server_stops_on_a_signal_sent_to_its_pid(
    tmp_path: Path, engine: str, how: int
) -> None:
    """``s3stow dev-server &`` in a script: the shell starts it with SIGINT ignored, and
    Python kept that, so ``kill -INT PID`` did nothing. A signal sent to its PID (not to a
    group) stops it, its child server and its temporary data with it."""
    if engine == "seaweedfs" and not seaweed_available():
        pytest.skip("SeaweedFS is not installed for this platform")
    probe = "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    inherited = subprocess.run(
        ["sh", "-c", '"$@" & wait', "sh", sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    )
    assert inherited.stdout.strip() == "True"  # what the shell hands a background job
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    log = tmp_path / "server.log"
    port = free_port()
    script = '"$@" >"$LOG" 2>&1 & echo $!; wait $!; echo "exit $?"'
    shell = subprocess.Popen(
        ["sh", "-c", script, "sh", *_command("--engine", engine, "--port", str(port))],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "LOG": str(log), "TMPDIR": str(scratch)},
        start_new_session=True,  # no terminal's Ctrl+C reaches it: only the signal below
    )
    assert shell.stdout is not None
    pid = int(shell.stdout.readline())
    children: list[str] = []
    try:
        while not log.exists() or "press Ctrl+C" not in log.read_text():
            assert shell.poll() is None, log.read_text()
            time.sleep(0.05)
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        assert len(children) == 1  # the engine's server
        os.kill(pid, how)
        rest, _ = shell.communicate(timeout=60)
    finally:
        if shell.poll() is None:  # never leave it running: by PID, its server's, the shell's
            for stray in (*map(int, children), pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(stray, signal.SIGKILL)
            shell.kill()
            shell.wait()
    out = log.read_text()
    assert "exit 0" in rest, out
    assert "local S3 server stopped" in out
    assert "Traceback" not in out
    assert _process_gone(int(children[0]))  # the child server stopped too
    assert port_is_free("127.0.0.1", port)
    assert list(scratch.iterdir()) == []  # SeaweedFS's temporary data removed
