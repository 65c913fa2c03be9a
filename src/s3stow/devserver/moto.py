"""A local S3-compatible server (moto's, from the ``local`` extra) as a subprocess.

Used by ``s3stow dev-server``, ``make demo``, the test suite and the benchmark.
The server listens on loopback only, is started on a given or free port and is
stopped by its PID. It needs ``crc32c`` and ``awscrt`` beside it: without them
moto silently stores CRC32 where CRC32C or CRC64NVME was asked.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from s3stow.errors import ConfigError


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the OS for a free TCP port on ``host``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def own_process_group() -> dict[str, Any]:
    """``Popen`` arguments that start a server in its own process group.

    A terminal's Ctrl+C then reaches only the parent, which decides when to stop
    the server (dev-server saves its data first).
    """
    if sys.platform == "win32":
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}  # type: ignore[attr-defined]
    return {"start_new_session": True}


class LocalS3Server:
    """``moto_server`` on loopback, started and stopped by this object."""

    def __init__(
        self, *, host: str = "127.0.0.1", port: int | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, *, timeout: float = 30.0) -> None:
        missing = [m for m in ("moto", "crc32c", "awscrt") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"the local S3 server needs {', '.join(missing)}",
                hint="pip install 's3stow[local]'",
            )
        env = {**os.environ, **self.env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            **own_process_group(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigError(f"the local S3 server exited at start (port {self.port} busy?)")
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise ConfigError(f"the local S3 server did not answer within {timeout:.0f}s")

    def reset(self) -> None:
        """Forget every bucket and object."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def wait(self) -> None:
        if self.process is not None:
            self.process.wait()

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None
