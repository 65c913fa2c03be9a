"""The status page's server (``s3stow status FILE --serve``): a run seen in a browser.

A ``ThreadingHTTPServer`` (standard library), on loopback unless told otherwise,
serves one page (``statushtml.py``) built from the ``--status-json`` heartbeat, read
again for every request, and with a ledger the latest runs and the run's failures;
``/?part=main`` serves the page's content alone (what its script fetches), and
``/status.json`` the heartbeat as is. Every answer carries a Content-Security-Policy
that allows the page's own inline script by its hash. While bound to loopback, a
request naming another host is refused (DNS rebinding).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from s3stow.errors import ConfigError
from s3stow.report.statushtml import page_script, render_main, render_page

log = logging.getLogger(__name__)

Ledger = Callable[[str | None], tuple[list[dict[str, Any]], list[dict[str, Any]]]]


def read_status(path: Path) -> dict[str, Any] | None:
    """The heartbeat's content, or ``None`` while it does not exist (or is not JSON)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class _Handler(BaseHTTPRequestHandler):
    server: StatusPageServer

    def do_GET(self) -> None:
        page = self.server
        if not page.host_allowed(self.headers.get("Host", "")):
            self._send(403, "text/plain", b"this page answers to its loopback address only\n")
            return
        url = urlsplit(self.path)
        if url.path == "/status.json":
            data = read_status(page.path)
            self._send(200, "application/json", json.dumps(data).encode())
        elif url.path == "/":
            main = page.main()
            body = main if url.query == "part=main" else render_page(main, refresh=page.refresh)
            self._send(200, "text/html; charset=utf-8", body.encode())
        else:
            self._send(404, "text/plain", b"not found\n")

    def _send(self, code: int, kind: str, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", self.server.policy)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("status page: " + format, *args)


class StatusPageServer(ThreadingHTTPServer):
    """Serves the page for one status file (and optionally a ledger)."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        *,
        path: Path,
        ledger: Ledger | None = None,
        refresh: float = 3.0,
    ) -> None:
        self.path = path
        self.ledger = ledger
        self.refresh = refresh
        self._ledger_lock = threading.Lock()
        digest = hashlib.sha256(page_script(refresh).encode()).digest()
        self.policy = (
            "default-src 'none'; style-src 'unsafe-inline'; connect-src 'self'; "
            f"script-src 'sha256-{base64.b64encode(digest).decode()}'"
        )
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.loopback = _is_loopback(address[0])

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def host_allowed(self, header: str) -> bool:
        if not self.loopback:
            return True
        host = urlsplit(f"//{header}").hostname or ""
        return host == "localhost" or _is_loopback(host)

    def main(self) -> str:
        status = read_status(self.path)
        runs: list[dict[str, Any]] | None = None
        failures: list[dict[str, Any]] | None = None
        if self.ledger is not None:
            run_id = status.get("run_id") if status else None
            with self._ledger_lock:
                try:
                    runs, failures = self.ledger(run_id)
                except Exception as exc:  # noqa: BLE001 - the page still shows the status file
                    log.warning("status page: the ledger could not be read: %s", exc)
            if run_id is None:
                failures = None
        return render_main(status, path=self.path, runs=runs, failures=failures)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="status-page", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def serve_status(
    path: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    ledger: Ledger | None = None,
    refresh: float = 3.0,
) -> StatusPageServer:
    """Bind the status page (port 0: a free one); ``start()`` serves it from a thread."""
    try:
        return StatusPageServer((host, port), path=path, ledger=ledger, refresh=refresh)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve the status page on {host}:{port}: {exc.strerror or exc}",
            hint="choose another --port (0 takes any free port) or --host",
        ) from None
