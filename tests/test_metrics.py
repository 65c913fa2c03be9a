"""``--metrics-port``: Prometheus metrics scraped from real runs, compared with the summary."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from s3stow.config import load_settings
from s3stow.ledger import open_ledger
from s3stow.models import RunSummary
from s3stow.report.metrics import RunMetrics
from s3stow.store.probes import CHECKSUM_VALIDATION, STORES
from s3stow.transfer.engine import Uploader
from tests.conftest import make_tree
from tests.faultproxy import FaultProxy

FAST = {"S3STOW_RETRY_BASE_DELAY": "0.01", "S3STOW_MAX_ATTEMPTS": "2", "S3STOW_FILE_RETRIES": "0"}

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Every sample of ``/metrics``, parsed by prometheus_client's own parser."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        text = answer.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def by_label(samples: Samples, name: str, label: str, **labels: str) -> dict[str, float]:
    found: dict[str, float] = {}
    wanted = set(labels.items())
    for (n, ls), v in samples.items():
        if n == name and wanted <= ls:
            key = dict(ls)[label]
            found[key] = found.get(key, 0) + v
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(predicate: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = predicate()
        except OSError:  # the endpoint is not up yet
            found = None
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _check_against(samples: Samples, summaries: list[RunSummary]) -> None:
    """The counters equal the summaries' figures, in total and per group."""
    for outcome in ("uploaded", "skipped", "failed"):
        assert value(samples, "s3stow_files_total", outcome=outcome) == sum(
            getattr(s, outcome) for s in summaries
        ), outcome
        per_group = by_label(samples, "s3stow_files_total", "group", outcome=outcome)
        expected: dict[str, float] = {}
        for summary in summaries:
            for group, counts in summary.groups.items():
                if counts[outcome]:
                    expected[group] = expected.get(group, 0) + counts[outcome]
        assert {g: n for g, n in per_group.items() if n} == expected, outcome
    assert value(samples, "s3stow_file_bytes_total", outcome="uploaded") == sum(
        s.bytes_uploaded for s in summaries
    )
    assert value(samples, "s3stow_retries_total") == sum(s.transient_errors for s in summaries)
    assert value(samples, "s3stow_throttled_requests_total") == sum(s.throttled for s in summaries)
    assert value(samples, "s3stow_concurrency_limit") == summaries[-1].concurrency
    assert value(samples, "s3stow_requests_in_flight") == 0


def test_metrics_after_runs_equal_the_summaries(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    make_tree(
        tmp_path / "src",
        {"a/big.bin": 11 * 1024 * 1024, "a/s.txt": 10, "b/t.txt": 20, "b/bad.txt": 30, "top": 5},
    )
    # one throttling answer (retried), one file that fails for good
    proxy.add(r"^PUT /[^/]+/p/a/s\.txt", "status", times=1, status=503, code="SlowDown")
    proxy.add(r"^PUT /[^/]+/p/b/bad\.txt", "status", times=2, status=500, code="InternalError")
    settings = load_settings(
        env=FAST,
        flags={
            "endpoint_url": proxy.url,
            "part_size": "5MiB",
            "multipart_threshold": "5MiB",
            "concurrency": 4,
        },
    )
    metrics = RunMetrics(command="upload")
    ledger = open_ledger(str(tmp_path / "l.db"))
    uploader = Uploader(settings, ledger=ledger, request_observer=metrics)
    uploader.probes.pin(CHECKSUM_VALIDATION, bucket, STORES)  # moto's answer: no probe PUT
    metrics.attach(uploader)
    server = metrics.serve("127.0.0.1", 0)
    try:
        started = time.time()
        first = uploader.upload_tree([tmp_path / "src"], f"s3://{bucket}/p")
        assert (first.uploaded, first.failed, first.throttled) == (4, 1, 1)
        after = scrape(server.url)
        _check_against(after, [first])
        assert by_label(after, "s3stow_failures_total", "error_class") == {"InternalError": 1}
        assert value(after, "s3stow_failures_total", group="b") == 1
        # every store call timed once, by its S3 operation (a failed one too)
        count = by_label(after, "s3stow_request_duration_seconds_count", "operation")
        assert count["PutObject"] == 4  # top, a/s.txt, b/t.txt, b/bad.txt
        assert count["CreateMultipartUpload"] == 1
        assert count["UploadPart"] == 3
        assert count["CompleteMultipartUpload"] == 1
        assert value(after, "s3stow_request_errors_total", operation="PutObject") == 1
        assert value(after, "s3stow_discovered_files_total") == first.files
        assert value(after, "s3stow_transferred_bytes_total") >= first.bytes_uploaded
        assert started <= value(after, "s3stow_last_success_timestamp_seconds") <= time.time()
        assert value(after, "s3stow_info", command="upload") == 1

        # the same process, a second run: counters accumulate across runs
        second = uploader.upload_tree([tmp_path / "src"], f"s3://{bucket}/p")
        assert (second.uploaded, second.skipped, second.failed) == (1, 4, 0)
        _check_against(scrape(server.url), [first, second])
    finally:
        server.stop()
        ledger.close()


def test_upload_serves_metrics_during_the_run(
    proxied_cli: Any, proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", {f"d{i % 2}/f{i}.txt": 100 + i for i in range(8)})
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.3)
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    process = proxied_cli.start(
        "--json",
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--concurrency",
        "1",
        env={"S3STOW_METRICS_PORT": str(port)},  # the setting, from the environment
    )
    seen: list[Samples] = []

    def some_done() -> bool:
        samples = scrape(url)
        seen.append(samples)
        return 0 < value(samples, "s3stow_files_total", outcome="uploaded") < 8

    during = wait_for(some_done) and seen[-1]
    assert value(during, "s3stow_concurrency_max") == 1
    assert value(during, "s3stow_requests_in_flight") in (0, 1)
    assert value(during, "s3stow_discovered_files_total") == 8
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    summary = json.loads(out.splitlines()[-1])
    assert summary["uploaded"] == 8
    assert f"metrics: {url}" in err
    # the last scrape saw no more than the run did, and counters never went down
    uploads = [value(s, "s3stow_files_total", outcome="uploaded") for s in seen]
    assert uploads == sorted(uploads)
    assert uploads[-1] <= summary["uploaded"]
    assert value(seen[-1], "s3stow_file_bytes_total") <= summary["bytes_uploaded"]


def test_watch_metrics_show_the_backlog_and_match_its_summary(
    proxied_cli: Any, proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    (tmp_path / "in").mkdir()
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    process = proxied_cli.start(
        "watch",
        "in",
        f"s3://{bucket}/w",
        "--settle",
        "0.2",
        "--ledger",
        "l.db",
        "--metrics-port",
        str(port),
        env=FAST,
    )
    try:
        empty = wait_for(lambda: scrape(url))
        assert value(empty, "s3stow_watch_backlog_files") == 0
        assert value(empty, "s3stow_watch_oldest_waiting_seconds") == 0
        proxy.add(r"^PUT /[^?]*slow\.xml", "delay", times=1, delay=3.0)
        make_tree(tmp_path / "in", {"a.xml": 10, "slow.xml": 20})

        def waiting() -> Samples | None:
            samples = scrape(url)
            uploaded = value(samples, "s3stow_files_total", outcome="uploaded")
            oldest = value(samples, "s3stow_watch_oldest_waiting_seconds")
            return samples if uploaded == 1 and oldest > 0 else None

        during = wait_for(waiting)
        assert value(during, "s3stow_watch_backlog_files") == 1  # slow.xml, still being sent
        assert value(during, "s3stow_requests_in_flight") == 1
        make_tree(tmp_path / "in", {"b.xml": 30})
        after = wait_for(
            lambda: (
                (s := scrape(url))
                and value(s, "s3stow_files_total", outcome="uploaded") == 3
                and value(s, "s3stow_watch_backlog_files") == 0
                and s
            )
        )
        assert value(after, "s3stow_watch_oldest_waiting_seconds") == 0
        assert value(after, "s3stow_file_bytes_total", outcome="uploaded") == 60
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert "watch: 3 uploaded, 0 failed attempts" in out


def test_a_busy_metrics_port_is_a_usage_error(cli: Any, bucket: str, tmp_path: Path) -> None:
    make_tree(tmp_path / "src", {"a.txt": 1})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("upload", "src", f"s3://{bucket}/p", "--metrics-port", str(port))
    assert result.code == 2
    assert f"cannot serve metrics on 127.0.0.1:{port}" in result.stderr
    assert "--metrics-port" in result.stderr
    assert "Traceback" not in result.output
    bad = cli("upload", "src", f"s3://{bucket}/p", "--metrics-port", "70000")
    assert bad.code == 2
    assert "metrics_port" in bad.stderr


PROBE = """
import sys
from s3stow.cli.app import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    print("CODE", exit.code)
print("PROMETHEUS", "prometheus_client" in sys.modules)
"""


def test_prometheus_client_is_imported_only_for_metrics(
    s3_server: Any, bucket: str, tmp_path: Path
) -> None:
    make_tree(tmp_path / "src", {"a.txt": 10})

    def run(*extra: str) -> str:
        argv = ["--endpoint-url", s3_server.endpoint_url, "upload", str(tmp_path / "src")]
        argv += [f"s3://{bucket}/m", "--ledger", str(tmp_path / "l.db"), *extra]
        done = subprocess.run(
            [sys.executable, "-c", PROBE, *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert "CODE 0" in done.stdout or "CODE None" in done.stdout, done.stderr
        return done.stdout

    assert "PROMETHEUS False" in run()
    assert "PROMETHEUS True" in run("--metrics-port", "0", "--force")


def test_request_observer_sees_a_failed_call(s3_server: Any, tmp_path: Path) -> None:
    """A call that raises is timed and reported with its error class, and in flight
    goes back to zero (the store's own wrapper, against a real server)."""
    from s3stow.errors import BucketMissingError

    calls: list[tuple[str, str | None]] = []
    lock = threading.Lock()

    class Recorder:
        def request_started(self, operation: str) -> None:
            pass

        def request_finished(self, operation: str, seconds: float, error: str | None) -> None:
            with lock:
                calls.append((operation, error))

    settings = load_settings(env={}, flags={"endpoint_url": s3_server.endpoint_url})
    uploader = Uploader(settings, request_observer=Recorder())
    with contextlib.suppress(BucketMissingError):
        uploader.check_bucket_access("no-such-bucket-here")
    assert calls == [("HeadBucket", "BucketMissingError")]


def test_job_work_counts_split_files(
    cli: Any, s3_server: Any, bucket: str, postgres_url: str, tmp_path: Path
) -> None:
    """A file split across workers is counted when it is completed, like any other."""
    import uuid

    from s3stow.job.db import JobDatabase
    from s3stow.job.ledger import JobLedger
    from s3stow.job.queue import JobQueue
    from s3stow.job.worker import JobWorker
    from s3stow.ledger.opening import open_ledger_database
    from s3stow.models import Target
    from s3stow.plan.retries import run_settings

    tree = make_tree(tmp_path / "src", {"big.bin": 11 * 1024 * 1024, "a.txt": 10, "b.txt": 20})
    job = f"metrics-{uuid.uuid4().hex[:8]}"
    env = {"S3STOW_PART_SIZE": "5MiB", "S3STOW_MULTIPART_THRESHOLD": "5MiB"}
    planned = cli(
        "job",
        "plan",
        str(tmp_path / "src"),
        f"s3://{bucket}/j",
        "--job",
        job,
        "--ledger",
        postgres_url,
        "--split-above",
        "5MiB",
        env=env,
    )
    assert planned.code == 0, planned.output
    database = open_ledger_database(postgres_url)
    db = JobDatabase(database.engine(), patience=30)
    ledger = JobLedger(database, db=db)
    queue = JobQueue(db, job)
    info = queue.info()
    assert info is not None
    base = load_settings(
        env={}, flags={"endpoint_url": s3_server.endpoint_url, "ledger": postgres_url}
    )
    settings = run_settings(info["settings"], base=base, overrides={})
    metrics = RunMetrics(command="job work")
    uploader = Uploader(settings, ledger=ledger, request_observer=metrics)
    metrics.attach(uploader)
    server = metrics.serve("127.0.0.1", 0)
    try:
        worker = JobWorker(
            queue, uploader, Target(info["bucket"], info["prefix"]), split_above=5 * 1024 * 1024
        )
        stats = worker.run()
        assert (stats.done, stats.failed, stats.parts_sent) == (3, 0, 3)
        after = scrape(server.url)
    finally:
        server.stop()
        ledger.close()
    assert value(after, "s3stow_files_total", outcome="uploaded") == 3
    assert value(after, "s3stow_file_bytes_total", outcome="uploaded") == sum(
        len(data) for data in tree.values()
    )
    count = by_label(after, "s3stow_request_duration_seconds_count", "operation")
    assert (count["UploadPart"], count["CompleteMultipartUpload"]) == (3, 1)
