"""An endpoint that stops answering mid-run stops the run (``transfer/breaker.py``).

The client talks to a ``TcpProxy`` in front of the fault proxy in front of the server:
stopping the ``TcpProxy`` closes its port, so every later connection is refused, as
when the server is killed; starting one again on the same port brings the endpoint
back. The stop happens inside the fault proxy, at the n-th transfer (a ``callback``
rule), so no test depends on how fast the machine is.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PIN_ETAG_CHECK, Cli, ledger_rows, make_tree
from tests.faultproxy import FaultProxy
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.moto_only(
    "the proxies make the endpoint go away; the client's answer is the same on any server"
)

FILES = 120
STOP_AFTER = 20  # transfers answered before the endpoint goes away
CONCURRENCY = "4"  # the breaker's threshold: 4 files in a row
# short retries (botocore's and the file layer's), the limit kept at the concurrency
QUICK = {
    "S3STOW_RETRY_BASE_DELAY": "0.01",
    "S3STOW_RETRY_MAX_DELAY": "0.05",
    "S3STOW_MAX_ATTEMPTS": "2",
    "S3STOW_FILE_RETRIES": "1",
    "S3STOW_MAX_CONCURRENCY": CONCURRENCY,
}


class Endpoint:
    """A TCP endpoint in front of the fault proxy that the test can take away and
    bring back on the same port."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.tcp = TcpProxy(upstream_port=proxy.port)
        self.tcp.start()
        self.port = self.tcp.port
        self.gone = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def go_away(self) -> None:
        with self._lock:
            if not self.gone:
                self.gone = True
                self.tcp.stop()  # the port closed: connections refused

    def come_back(self) -> None:
        with self._lock:
            assert self.gone
            self.tcp = TcpProxy(upstream_port=self.proxy.port, port=self.port)
            self.tcp.start()
            self.gone = False

    def go_away_after(self, pattern: str, count: int) -> None:
        """Take the endpoint away once ``count`` requests matching ``pattern`` were
        answered."""
        seen = 0

        def counted(_line: str) -> None:
            nonlocal seen
            seen += 1
            if seen == count:
                self.go_away()

        self.proxy.add(pattern, "callback", times=10**6, callback=counted)


@pytest.fixture
def endpoint(proxy: FaultProxy) -> Iterator[Endpoint]:
    found = Endpoint(proxy)
    yield found
    if not found.gone:
        found.tcp.stop()


@pytest.fixture
def edge_cli(endpoint: Endpoint, tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(endpoint.url, tmp_path, defaults={**PIN_ETAG_CHECK, **QUICK})
    yield runner
    runner.kill_leftovers()


def _statuses(db: Path, table: str = "items") -> dict[str, int]:
    rows = ledger_rows(db, f"SELECT status, COUNT(*) FROM {table} GROUP BY status")
    return dict(rows)


def _put_keys(proxy: FaultProxy, bucket: str) -> list[str]:
    return [line.split()[1].split("?")[0] for line in proxy.requests(rf"^PUT /{bucket}/p/")]


def test_upload_stops_when_the_endpoint_goes_away_and_resumes(  # type: ignore[no-untyped-def]
    edge_cli: Cli, endpoint: Endpoint, proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    tree = make_tree(tmp_path / "src", {f"f{i:03}.txt": 64 for i in range(FILES)})
    endpoint.go_away_after(rf"^PUT /{bucket}/p/", STOP_AFTER)
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--concurrency", CONCURRENCY)

    first = edge_cli(*args)

    assert first.code == 3, first.output  # fatal, as a ledger that cannot be written
    assert f"the endpoint {endpoint.url}" in first.output, first.output
    assert "stopped answering" in first.output
    assert "EndpointConnectionError" in first.output  # the error class, said once
    assert "hint:" in first.output
    statuses = _statuses(tmp_path / "l.db")
    done, failed = statuses.get("done", 0), statuses.get("failed", 0)
    assert set(statuses) <= {"done", "failed"}, statuses
    assert done <= STOP_AFTER
    assert failed >= int(CONCURRENCY)  # the files in a row that tripped the breaker
    assert FILES - done - failed > FILES // 2, statuses  # most never started: pending
    run = ledger_rows(tmp_path / "l.db", "SELECT status FROM runs")
    assert run == [("failed",)]
    done_first = {
        f"/{bucket}/{key}"
        for (key,) in ledger_rows(tmp_path / "l.db", "SELECT key FROM items WHERE status='done'")
    }

    endpoint.come_back()
    proxy.reset()
    second = edge_cli(*args)

    assert second.code == 0, second.output
    assert _statuses(tmp_path / "l.db") == {"done": FILES}
    sent_again = set(_put_keys(proxy, bucket))
    assert not sent_again & done_first  # nothing done by the first run is sent again
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="p/")["Contents"]
    assert len(listed) == FILES
    for rel, data in tree.items():
        assert s3.get_object(Bucket=bucket, Key=f"p/{rel}")["Body"].read() == data


def test_restore_stops_when_the_endpoint_goes_away(  # type: ignore[no-untyped-def]
    edge_cli: Cli, endpoint: Endpoint, proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """``restore --run``: the run's items come from the ledger, so no listing is under
    way when the endpoint goes (a listing's failure ends a run as an error of its own)."""
    make_tree(tmp_path / "src", {f"f{i:03}.txt": 64 for i in range(FILES)})
    uploaded = edge_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert uploaded.code == 0, uploaded.output
    [(run,)] = ledger_rows(tmp_path / "l.db", "SELECT run_id FROM runs")
    endpoint.go_away_after(rf"^GET /{bucket}/p/", STOP_AFTER)
    args = ("restore", "--run", run, "dest", "--ledger", "l.db", "--concurrency", CONCURRENCY)

    first = edge_cli(*args)

    assert first.code == 3, first.output
    assert f"the endpoint {endpoint.url}" in first.output, first.output
    assert "stopped answering" in first.output
    statuses = _statuses(tmp_path / "l.db", "restores")
    done, failed = statuses.get("done", 0), statuses.get("failed", 0)
    assert failed >= int(CONCURRENCY)
    assert FILES - done - failed > FILES // 2, statuses

    endpoint.come_back()
    second = edge_cli(*args)
    assert second.code == 0, second.output
    assert _statuses(tmp_path / "l.db", "restores") == {"done": FILES}
    assert len(list((tmp_path / "dest").rglob("*.txt"))) == FILES


def test_a_server_answering_500_is_left_to_the_retries(  # type: ignore[no-untyped-def]
    edge_cli: Cli, endpoint: Endpoint, proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """Every PUT answered 500: each file fails on its own (exit 1), none is left pending
    and the run is not stopped: a server that answers is there."""
    make_tree(tmp_path / "src", {f"f{i:02}.txt": 64 for i in range(30)})
    proxy.add(rf"^PUT /{bucket}/p/", "status", times=10**6, status=500, code="InternalError")

    result = edge_cli(
        "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--concurrency", CONCURRENCY
    )

    assert result.code == 1, result.output
    assert "stopped answering" not in result.output
    assert _statuses(tmp_path / "l.db") == {"failed": 30}
    classes = ledger_rows(tmp_path / "l.db", "SELECT DISTINCT error_class FROM items")
    assert classes == [("InternalError",)]


def test_one_bad_file_does_not_stop_the_run(  # type: ignore[no-untyped-def]
    edge_cli: Cli, endpoint: Endpoint, proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """A file whose every PUT has its connection reset (a connection-level failure, as
    the endpoint's loss gives) among good ones: it fails alone, the rest are uploaded."""
    make_tree(tmp_path / "src", {f"f{i:02}.txt": 64 for i in range(30)})
    proxy.add(rf"^PUT /{bucket}/p/f07\.txt", "reset", times=10**6)

    result = edge_cli(
        "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--concurrency", CONCURRENCY
    )

    assert result.code == 1, result.output
    assert "stopped answering" not in result.output
    assert _statuses(tmp_path / "l.db") == {"done": 29, "failed": 1}
    failed = ledger_rows(tmp_path / "l.db", "SELECT key FROM items WHERE status='failed'")
    assert failed == [("p/f07.txt",)]
    assert len(s3.list_objects_v2(Bucket=bucket, Prefix="p/")["Contents"]) == 29


def test_only_a_missing_answer_counts_as_unreachable() -> None:
    """The classification the breaker counts by is the translation's: no answer at all
    (refused, closed, connect timed out) is ``unreachable``; an answer, a read timeout
    and a file's own errors are not."""
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    from s3stow.store.translate import translate

    url = "http://127.0.0.1:1"
    gone = [
        EndpointConnectionError(endpoint_url=url),
        ConnectionClosedError(endpoint_url=url),
        ConnectTimeoutError(endpoint_url=url),
        ConnectionRefusedError(111, "refused"),
    ]
    there = [
        ReadTimeoutError(endpoint_url=url),
        ClientError({"Error": {"Code": "InternalError"}}, "PutObject"),
        ClientError({"Error": {"Code": "SlowDown"}}, "PutObject"),
        PermissionError(13, "denied"),
    ]
    for exc in gone:
        assert getattr(translate(exc, bucket="b", key="k"), "unreachable", False), exc
    for exc in there:
        assert not getattr(translate(exc, bucket="b", key="k"), "unreachable", False), exc


def test_a_watch_outlasts_the_endpoint_going_away(  # type: ignore[no-untyped-def]
    edge_cli: Cli, endpoint: Endpoint, proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """``watch`` promises to keep files queued through an outage: the breaker is off
    there. The endpoint goes away after 2 uploads, long enough for more files than the
    breaker's threshold to fail, comes back, and the watch uploads the rest."""
    make_tree(tmp_path / "in", {f"f{i:02}.xml": 20 for i in range(12)})
    endpoint.go_away_after(rf"^PUT /{bucket}/p/", 2)
    process = edge_cli.start(
        "watch", "in", f"s3://{bucket}/p", "--settle", "0", "--ledger", "l.db",
        env={"S3STOW_CONCURRENCY": CONCURRENCY},
    )  # fmt: skip
    try:
        _wait_for(
            lambda: (
                process.poll() is not None
                or _statuses(tmp_path / "l.db").get("failed", 0) > int(CONCURRENCY)
            )
        )
        assert process.poll() is None, "the watch stopped when the endpoint went away"
        endpoint.come_back()
        _wait_for(
            lambda: (
                process.poll() is not None
                or len(s3.list_objects_v2(Bucket=bucket, Prefix="p/").get("Contents", [])) == 12
            )
        )
        assert process.poll() is None, "the watch stopped"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, out + err
    assert "stopped answering" not in out + err


def _wait_for(predicate: Any, timeout: float = 90) -> None:
    """Wait for ``predicate`` (a bound against a hang only: no time is asserted)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.1)
