"""Endpoint mistakes: named, with the fix, at the documented exit code (issue 25, 5).

A closed port is a fatal configuration problem (exit 3 and the endpoint hint), an
endpoint URL without a scheme or an empty one a usage error (exit 2), and a web
server that is not S3 is called that, without its page and without "unexpected".
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from s3stow.devserver.moto import free_port
from tests.conftest import make_tree

PAGE = b"<!DOCTYPE html><html><body><h1>Welcome to the intranet</h1></body></html>"


def _s3stow(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    import os

    done = subprocess.run(
        [sys.executable, "-m", "s3stow", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_a_closed_port_is_fatal_with_the_endpoint_hint(tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"a.txt": 10})
    closed = f"http://127.0.0.1:{free_port()}"
    settings = {"S3STOW_MAX_ATTEMPTS": "2"}  # botocore's retries, shortened
    code, output = _s3stow(
        "--endpoint-url", closed, "upload", "src", "s3://bucket-x/p", "--ledger", "l.db",
        cwd=tmp_path, env=settings,
    )  # fmt: skip
    assert code == 3, output
    assert f"cannot reach {closed}" in output
    assert "--endpoint-url" in output  # the hint names where the endpoint comes from
    assert "Traceback" not in output
    code, output = _s3stow("--endpoint-url", closed, "doctor", "s3://bucket-x/p", cwd=tmp_path)
    assert code == 3
    assert "--endpoint-url" in output


@pytest.mark.parametrize(
    ("args", "env", "words"),
    [
        (["--endpoint-url", "127.0.0.1:9"], {}, ["no scheme", "http://127.0.0.1:9", "https://"]),
        (["--endpoint-url", ""], {}, ["--endpoint-url", "empty"]),
        ([], {"S3STOW_ENDPOINT_URL": ""}, ["S3STOW_ENDPOINT_URL", "empty"]),
        ([], {"AWS_ENDPOINT_URL": "127.0.0.1:9"}, ["Invalid endpoint: 127.0.0.1:9", "http://"]),
    ],
)
def test_a_malformed_endpoint_is_a_usage_error(
    args: list[str], env: dict[str, str], words: list[str], tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", {"a.txt": 10})
    code, output = _s3stow(
        *args, "upload", "src", "s3://bucket-x/p", "--ledger", "l.db", cwd=tmp_path, env=env
    )
    assert code == 2, output
    for word in words:
        assert word in output
    assert "unexpected" not in output


class _Everything(BaseHTTPRequestHandler):
    """A web server that answers every request with a 200 page."""

    def log_message(self, *_: Any) -> None:
        pass

    def _page(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(PAGE)

    do_GET = do_HEAD = do_PUT = do_POST = _page


class _Files(SimpleHTTPRequestHandler):
    """``python -m http.server``: 404 pages for what is not there, 501 for PUT."""

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(params=["404 pages", "200 pages"])
def web_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    handler: Any = _Everything
    if request.param == "404 pages":
        (tmp_path / "www").mkdir()
        (tmp_path / "www" / "index.html").write_bytes(PAGE)

        def handler(*args: Any, **kwargs: Any) -> _Files:
            return _Files(*args, directory=str(tmp_path / "www"), **kwargs)

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_web_server_is_not_taken_for_s3(web_server: str, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"a.txt": 10})
    for command in (["upload", "src", "s3://bucket-x/p", "--ledger", "l.db"],
                    ["doctor", "s3://bucket-x/p"]):  # fmt: skip
        code, output = _s3stow("--endpoint-url", web_server, *command, cwd=tmp_path)
        assert code == 3, output
        assert f"the endpoint {web_server} does not answer like S3" in output
        for leak in ("<html", "DOCTYPE", "unexpected", "ResponseParserError", "does not exist"):
            assert leak not in output, output


@pytest.mark.parametrize(
    ("status", "transient"), [(502, True), (503, True), (429, True), (404, False)]
)
def test_an_error_page_mid_run_is_transient_only_when_the_server_fails(
    status: int, transient: bool
) -> None:
    """A load balancer's or a failing server's HTML error page (5xx, 429) during a run is a
    passing fault, retried like any 5xx; an HTML page for anything else is not S3 (fatal)."""
    from botocore.exceptions import ClientError

    from s3stow.errors import EndpointError, TransferError
    from s3stow.store.translate import translate

    page = ClientError(
        {
            "Error": {"Code": str(status), "Message": "Bad Gateway"},
            "ResponseMetadata": {
                "HTTPStatusCode": status,
                "HTTPHeaders": {"content-type": "text/html; charset=utf-8"},
            },
        },
        "UploadPart",
    )
    error = translate(page, bucket="b", key="k", endpoint="http://127.0.0.1:1")
    if transient:
        assert isinstance(error, TransferError), error
        assert error.transient
        assert "<html" not in str(error)
    else:
        assert isinstance(error, EndpointError), error
