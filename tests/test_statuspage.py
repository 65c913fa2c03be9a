"""``s3stow status FILE --serve``: the live page, loaded by headless Chromium during a run."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from s3stow.report.statushtml import render_main, throughput_chart
from s3stow.report.statuspage import serve_status
from tests.conftest import make_tree

FAST = {"S3STOW_RETRY_BASE_DELAY": "0.01", "S3STOW_MAX_ATTEMPTS": "2", "S3STOW_FILE_RETRIES": "0"}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's ``chromium`` (``.ci/run`` installs it; never downloaded by a test)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is required in CI: apt-get install -y chromium")
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    return found


def browse(
    chromium: str,
    url: str,
    profile: Path,
    *,
    screenshot: Path | None = None,
    extra: tuple[str, ...] = (),
) -> str:
    """Load ``url`` in headless Chromium: the DOM it built (or a screenshot)."""
    profile.mkdir(parents=True, exist_ok=True)
    if screenshot is not None:
        action = [f"--screenshot={screenshot}", "--window-size=1100,1060", *extra]
    else:
        action = ["--dump-dom", *extra]
    done = subprocess.run(
        [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *action, url],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def files_done(dom: str) -> tuple[int, int]:
    found = re.search(r"<b[^>]*>(\d+)/(\d+)</b><span>files done</span>", dom)
    assert found, dom[:3000]
    return int(found[1]), int(found[2])


def wait_for(predicate: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def status_done(path: Path) -> int:
    try:
        totals = json.loads(path.read_text())["totals"]
    except (OSError, ValueError, KeyError):
        return -1
    return int(totals["uploaded"] + totals["skipped"] + totals["failed"])


def test_the_page_in_a_browser_during_a_run(
    chromium: str, proxied_cli: Any, proxy: Any, bucket: str, tmp_path: Path
) -> None:
    spec: dict[str, int | bytes] = {f"reels/r{i}.mov": 64 * 1024 for i in range(8)}
    spec |= {f"logs/l{i}.log": 512 for i in range(11)}
    spec["logs/bad.log"] = 100
    make_tree(tmp_path / "src", spec)
    proxy.add(r"^PUT /[^?]*bad\.log", "status", times=100, status=500, code="InternalError")
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.4)
    page = proxied_cli.start(
        "status", "st.json", "--serve", "--port", "0", "--ledger", "l.db", "--refresh", "1"
    )
    line = page.stderr.readline()
    url = re.search(r"http://127\.0\.0\.1:\d+/", line)
    assert url, line
    waiting = browse(chromium, url[0], tmp_path / "profile")
    assert "Waiting for st.json" in waiting  # served before the run writes anything
    run = proxied_cli.start(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--status-json",
        "st.json",
        "--status-interval",
        "0.1",
        "--concurrency",
        "1",
        env=FAST,
    )
    status = tmp_path / "st.json"
    wait_for(lambda: status_done(status) >= 1)
    first = browse(chromium, url[0], tmp_path / "profile")
    assert "s3stow upload: uploading" in first
    shown, total = files_done(first)
    assert total == 20
    wait_for(lambda: status_done(status) > shown)
    second = browse(chromium, url[0], tmp_path / "profile")
    assert files_done(second)[0] > shown  # the figures moved between two loads
    assert "<svg" in second  # the throughput chart, drawn inline
    out, err = run.communicate(timeout=120)
    assert run.returncode == 1, out + err  # bad.log failed
    final = browse(chromium, url[0], tmp_path / "profile")
    assert "s3stow upload: done" in final
    assert files_done(final) == (20, 20)
    failures = final.split("Failures", 1)[1]
    assert "bad.log" in failures
    assert "InternalError" in failures  # the reason, from the ledger
    assert "Recent runs (ledger)" in final
    target = os.environ.get("S3STOW_STATUS_SCREENSHOT")  # docs/status-page.png
    if target:
        browse(chromium, url[0], tmp_path / "profile", screenshot=Path(target).resolve())
    page.terminate()
    page.communicate(timeout=20)


def test_the_page_refreshes_itself_in_the_browser(
    chromium: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The inline script runs (the policy's hash matches it) and fetches the content."""
    path = tmp_path / "st.json"
    path.write_text(json.dumps({"phase": "uploading", "totals": {"files": 3, "uploaded": 1}}))
    server = serve_status(path, port=0, refresh=1)
    server.start()
    try:
        with caplog.at_level(logging.DEBUG, logger="s3stow.report.statuspage"):
            dom = browse(
                chromium, server.url, tmp_path / "profile", extra=("--virtual-time-budget=3000",)
            )
    finally:
        server.stop()
    assert files_done(dom) == (1, 3)
    assert any("GET /?part=main" in record.getMessage() for record in caplog.records)


def _get(url: str, host: str | None = None) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def test_the_page_server_answers_loopback_names_only(tmp_path: Path) -> None:
    path = tmp_path / "st.json"
    server = serve_status(path, port=0)
    server.start()
    try:
        code, body, _ = _get(server.url)
        assert code == 200
        assert "Waiting for" in body
        path.write_text(json.dumps({"phase": "uploading", "totals": {"files": 3, "uploaded": 1}}))
        code, body, headers = _get(server.url)
        assert (code, files_done(body)) == (200, (1, 3))
        assert "script-src 'sha256-" in headers["Content-Security-Policy"]
        code, body, _ = _get(server.url + "status.json")
        assert json.loads(body)["totals"]["files"] == 3
        code, part, _ = _get(server.url + "?part=main")
        assert part.startswith("<h1>")
        assert "<html" not in part
        assert _get(server.url + "other")[0] == 404
        port = server.server_address[1]
        assert _get(server.url, host=f"localhost:{port}")[0] == 200
        # DNS rebinding: a page of another site resolving its name to 127.0.0.1
        assert _get(server.url, host=f"attacker.example:{port}")[0] == 403
    finally:
        server.stop()


def test_the_page_escapes_what_it_shows(tmp_path: Path) -> None:
    status = {
        "phase": "uploading",
        "totals": {"files": 2, "failed": 1},
        "failures": [
            {"path": "<img src=x onerror=alert(1)>.txt", "error_class": "E", "error": "<b>"}
        ],
        "folders": {"<script>": {"planned_files": 2, "failed": 1}},
        "history": [[0, 0, 0], [1, 100, 1], [2, 300, 2]],
    }
    html = render_main(status, path=tmp_path / "st.json", now=3.0)
    assert "<img" not in html
    assert "<script>" not in html
    assert "<b>" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;.txt" in html
    chart = throughput_chart(status["history"])  # type: ignore[arg-type]
    assert chart.startswith("<svg")
    assert "200 B/s" in chart


def test_status_serve_bad_input(cli: Any, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = cli("status", "st.json", "--serve", "--port", str(port))
    assert busy.code == 2
    assert f"cannot serve the status page on 127.0.0.1:{port}" in busy.stderr
    assert "Traceback" not in busy.output
    assert cli("status", "st.json", "--serve", "--refresh", "0").code == 2


def test_a_watch_status_file_shows_its_backlog_and_failures(
    proxied_cli: Any, proxy: Any, bucket: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "in", {"a.xml": 5, "bad.xml": 7})
    proxy.add(r"^PUT /[^?]*bad\.xml", "status", times=100, status=500, code="InternalError")
    result = proxied_cli(
        "watch",
        "in",
        f"s3://{bucket}/w",
        "--settle",
        "0",
        "--once",
        "--status-json",
        "st.json",
        "--status-interval",
        "0.1",
        env=FAST,
    )
    assert result.code == 1, result.output
    status = json.loads((tmp_path / "st.json").read_text())
    assert [f["error_class"] for f in status["failures"]] == ["InternalError"]
    assert status["history"][-1][1] == 5  # bytes sent: a.xml
    html = render_main(status, path=tmp_path / "st.json")
    assert "s3stow watch: done" in html
    assert "files waiting" in html
    assert "bad.xml" in html.split("Failures", 1)[1]
