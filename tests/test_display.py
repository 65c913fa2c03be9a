"""The progress display in a real terminal: an upload runs inside tmux, and the test
reads the screen during the run, after one Ctrl+C and after two."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CREDENTIALS, make_tree


class Tmux:
    """One tmux server of its own (a socket named for the test), stopped at the end."""

    def __init__(self) -> None:
        self.socket = f"s3stow-test-{uuid.uuid4().hex[:8]}"

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return done.stdout

    def run(self, session: str, script: Path) -> None:
        self("new-session", "-d", "-s", session, "-x", "110", "-y", "34", f"sh {script}")

    def screen(self, session: str) -> str:
        return self("capture-pane", "-p", "-t", session)

    def wait_for(self, session: str, seen: Callable[[str], bool], timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen(session)
            if seen(screen):
                return screen
            time.sleep(0.1)
        raise AssertionError(f"not on screen in time:\n{self.screen(session)}")

    def kill(self) -> None:
        socket = self("display-message", "-p", "#{socket_path}").strip()
        self("kill-server")
        if socket:  # tmux leaves its socket file behind
            Path(socket).unlink(missing_ok=True)


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("tmux is required in CI (.ci/run installs it)")
        pytest.skip("tmux is not installed (apt-get install tmux)")
    server = Tmux()
    yield server
    server.kill()


def _script(tmp_path: Path, name: str, endpoint: str, bucket: str) -> tuple[Path, str]:
    command = (
        f"s3stow upload src s3://{bucket}/photos --endpoint-url {endpoint} "
        "--ledger l.db --concurrency 2 --part-size 5MiB --multipart-threshold 5MiB"
    )
    exports = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in CREDENTIALS.items())
    script = tmp_path / f"{name}.sh"
    script.write_text(
        # an interactive shell outlives Ctrl+C: so does this one (its pane stays readable)
        f"trap true INT\ncd {shlex.quote(str(tmp_path))}\n{exports}"
        f"export AWS_CONFIG_FILE=/nonexistent AWS_SHARED_CREDENTIALS_FILE=/nonexistent\n"
        f"{shlex.quote(sys.executable)} -m {command}\n"
        "echo EXIT=$?\nsleep 60\n"
    )
    return script, command


def test_the_display_in_a_terminal_and_after_ctrl_c(
    tmux: Tmux,
    proxy,  # type: ignore[no-untyped-def]
    bucket: str,
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {"video/big.mov": 11 * 1024 * 1024})
    make_tree(tmp_path / "src", {f"2024/IMG_{i:04d}.jpg": 64 * 1024 for i in range(40)}, seed=2)
    slow = proxy.add(r"^PUT ", "delay", times=10_000, delay=0.3)
    script, command = _script(tmp_path, "first", proxy.url, bucket)
    tmux.run("first", script)
    running = tmux.wait_for("first", lambda s: " * " in s and "Transferring:" in s)
    lines = running.splitlines()
    totals = next(line for line in lines if line.startswith("Transferred:"))
    assert " / 13.5 MiB (" in totals, running  # bytes done of the total, in MiB
    assert "B/s, ETA " in totals, running
    files = next(line for line in lines if line.startswith("Files:"))
    assert " / 41 files" in files, running  # the walk is over: the total does not grow
    in_flight = [line for line in lines if line.startswith(" * ")]
    assert any("video/big.mov" in line or "2024/IMG_" in line for line in in_flight), running

    tmux("send-keys", "-t", "first", "C-c")
    stopped = tmux.wait_for("first", lambda s: "EXIT=" in s)
    assert "EXIT=130" in stopped, stopped
    assert "stopping: finishing in-flight requests (Ctrl+C again to quit at once)" in stopped
    assert "interrupted: run the same command again to resume:" in stopped, stopped
    flat = "".join(stopped.split())  # the command may wrap at the pane's width, anywhere
    assert "".join(command.split()) in flat, stopped
    assert "Transferring:" not in stopped  # the last frame keeps the totals only

    # resumed, then stopped at once by a second Ctrl+C: one line, the cursor back
    slow.delay = 5.0  # the requests in flight outlast the second Ctrl+C
    script, _ = _script(tmp_path, "second", proxy.url, bucket)
    tmux.run("second", script)
    tmux.wait_for("second", lambda s: " * " in s and "Transferring:" in s)
    tmux("send-keys", "-t", "second", "C-c")
    # as a person would: the second Ctrl+C once the first one's message is on screen
    tmux.wait_for("second", lambda s: "Ctrl+C again to quit at once" in s)
    tmux("send-keys", "-t", "second", "C-c")
    quit_screen = tmux.wait_for("second", lambda s: "EXIT=" in s)
    assert "EXIT=130" in quit_screen, quit_screen
    assert quit_screen.count("s3stow: stopped at once (second Ctrl+C)") == 1, quit_screen
    assert "runningitagain:" + "".join(command.split()) in "".join(quit_screen.split())
    assert "Transferring:" not in quit_screen, quit_screen  # the frame is erased
    assert "Transferred:" not in quit_screen, quit_screen
    assert tmux("display-message", "-p", "-t", "second", "#{cursor_flag}").strip() == "1"
