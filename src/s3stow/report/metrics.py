"""Prometheus metrics of a long run (``--metrics-port``): ``RunMetrics`` and ``/metrics``.

``RunMetrics`` is an ``Observer`` (files and bytes by outcome and group, failures by
error class, the time of the last success) and a ``RequestObserver`` of the store
(``store/observed.py``: request latency by operation, requests in flight). At scrape
time it also reads what the engine already counts: the limiter's current limit and
throttling answers, a restore's ranges in flight, the store's retried transient
errors, and for ``watch`` the backlog. ``prometheus_client`` (imported only here, only
when metrics are asked for) keeps the registry and serves the text format from a
daemon thread.

Metric names follow Prometheus conventions: the ``s3stow_`` prefix, base units
(``_bytes``, ``_seconds``) and ``_total`` for counters. Label values are bounded:
``group`` takes the first ``max_groups`` groups and ``(other)`` after them;
``error_class`` and ``operation`` are S3 error codes and operation names.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from s3stow import __version__
from s3stow.errors import ConfigError
from s3stow.models import (
    INFORMATIONAL_SKIPS,
    Decision,
    Reason,
    Skipped,
    SourceFile,
    Status,
    UploadResult,
)
from s3stow.report.observer import Observer

if TYPE_CHECKING:
    from s3stow.config import Settings
    from s3stow.transfer.limits import RequestLimiter

log = logging.getLogger(__name__)

# Request latency buckets (seconds): a HEAD takes milliseconds, a 128 MiB part minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_PENDING = "restore-pending"  # restore: a Glacier object whose copy is not ready yet


class Engine(Protocol):
    """What the metrics read of an ``Uploader`` or a ``Restorer``."""

    limiter: RequestLimiter
    store: Any

    def add_observer(self, observer: Observer) -> None: ...


Backlog = Callable[[], tuple[int, float | None]]  # (files waiting, when the oldest was seen)


class RunMetrics(Observer):
    """The metrics of one process's runs, in a registry of their own."""

    def __init__(self, *, command: str, done: str = "uploaded", max_groups: int = 50) -> None:
        import prometheus_client
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

        # no *_created series: each counter's creation time is noise on a dashboard
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]
        self.done = done  # what a transferred file's outcome is called: uploaded, restored
        self.max_groups = max_groups
        self._groups: set[str] = set()
        self._lock = threading.Lock()
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        r = self.registry
        info = Gauge("s3stow_info", "The version and command", ["version", "command"], registry=r)
        info.labels(__version__, command).set(1)
        self.discovered = Counter(
            "s3stow_discovered_files", "Files found to consider", ["group"], registry=r
        )
        self.discovered_bytes = Counter(
            "s3stow_discovered_bytes", "Bytes of the files found to consider", ["group"], registry=r
        )
        self.files = Counter(
            "s3stow_files",
            f"Files by outcome: {done}, skipped, failed, changed (during upload), pending",
            ["group", "outcome"],
            registry=r,
        )
        self.bytes = Counter(
            "s3stow_file_bytes",
            f"Bytes of the files counted in s3stow_files_total ({done}: bytes sent)",
            ["group", "outcome"],
            registry=r,
        )
        self.failures = Counter(
            "s3stow_failures",
            "Files that failed or changed, by error class",
            ["group", "error_class"],
            registry=r,
        )
        self.transferred = Counter(
            "s3stow_transferred_bytes",
            "Bytes acknowledged by S3 (or received, for a restore) as they arrive",
            registry=r,
        )
        self.last_success = Gauge(
            "s3stow_last_success_timestamp_seconds",
            "Unix time of the last file verified in S3 (or restored)",
            registry=r,
        )
        self.latency = Histogram(
            "s3stow_request_duration_seconds",
            "S3 request latency by operation (botocore's retries of a request included)",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.request_errors = Counter(
            "s3stow_request_errors",
            "S3 requests that failed after botocore's retries, by operation and error class",
            ["operation", "error_class"],
            registry=r,
        )
        self.in_flight = Gauge("s3stow_requests_in_flight", "S3 requests under way", registry=r)

    # ---- what the engine already counts ------------------------------------------------
    def attach(self, engine: Engine, *, backlog: Backlog | None = None) -> None:
        """Report ``engine``'s events here and read its limiter and store at scrape time."""
        from prometheus_client import Gauge

        engine.add_observer(self)
        limiter = engine.limiter
        store = engine.store
        r = self.registry
        Gauge(
            "s3stow_concurrency_limit",
            "Requests the limiter admits at once now (halved on throttling)",
            registry=r,
        ).set_function(lambda: limiter.limit)
        Gauge("s3stow_concurrency_max", "The configured concurrency", registry=r).set_function(
            lambda: limiter.maximum
        )
        Gauge(
            "s3stow_concurrency_ceiling",
            "How far the limit may grow past concurrency while files/s rises",
            registry=r,
        ).set_function(lambda: limiter.ceiling)
        Gauge(
            "s3stow_concurrency_peak", "The most requests in flight at once so far", registry=r
        ).set_function(lambda: limiter.peak)
        r.register(_Counted(limiter, store))
        streams: RequestLimiter | None = getattr(engine, "streams", None)  # a restore's
        if streams is not None:
            Gauge(
                "s3stow_ranges_in_flight_limit",
                "Ranged GETs of large objects admitted at once now (grown while bytes/s rise)",
                registry=r,
            ).set_function(lambda: streams.limit)
            Gauge(
                "s3stow_ranges_in_flight_peak",
                "The most ranged GETs in flight at once so far",
                registry=r,
            ).set_function(lambda: streams.peak)
        if backlog is not None:

            def oldest() -> float:
                first_seen = backlog()[1]
                return 0.0 if first_seen is None else max(0.0, time.time() - first_seen)

            Gauge(
                "s3stow_watch_backlog_files",
                "Files seen by watch and not yet verified in S3",
                registry=r,
            ).set_function(lambda: backlog()[0])
            Gauge(
                "s3stow_watch_oldest_waiting_seconds",
                "Age of the oldest file in the watch backlog (0 when it is empty)",
                registry=r,
            ).set_function(oldest)

    # ---- observer hooks ------------------------------------------------------------------
    def _group(self, name: str | None) -> str:
        name = name or "(none)"
        with self._lock:
            if name in self._groups:
                return name
            if len(self._groups) < self.max_groups:
                self._groups.add(name)
                return name
        return "(other)"

    def on_discovered(self, source: SourceFile) -> None:
        group = self._group(source.group)
        self.discovered.labels(group).inc()
        self.discovered_bytes.labels(group).inc(source.size)

    def on_skipped_path(self, skipped: Skipped) -> None:

        if skipped.error_class in INFORMATIONAL_SKIPS:  # the others fail, and arrive as results
            self.files.labels("(none)", "skipped").inc()

    def on_decision(self, decision: Decision) -> None:
        if decision.reason == Reason.LEDGER_DONE:  # done before: no result follows
            source = decision.item.source
            group = self._group(source.group)
            self.files.labels(group, "skipped").inc()
            self.bytes.labels(group, "skipped").inc(source.size)

    def on_bytes(self, source: SourceFile, count: int) -> None:
        if count > 0:  # a restore takes back the bytes of a failed attempt: they were sent
            self.transferred.inc(count)

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        if result.status == Status.PLANNED:  # interrupted before an outcome
            return
        group = self._group(source.group if source is not None else None)
        size = source.size if source is not None else result.size
        if result.status == Status.DONE and result.reason != Reason.REMOTE_MATCH:
            outcome, size = self.done, result.bytes_sent
            self.last_success.set(time.time())
        elif result.status in (Status.DONE, Status.SKIPPED):
            outcome = "skipped"
        elif result.status == Status.CHANGED:
            outcome = "changed"
        else:
            outcome = "pending" if result.error_class == _PENDING else "failed"
        self.files.labels(group, outcome).inc()
        self.bytes.labels(group, outcome).inc(size)
        if outcome in ("failed", "changed"):
            self.failures.labels(group, result.error_class or "Unknown").inc()

    # ---- request observer (store/observed.py) ---------------------------------------------
    def request_started(self, operation: str) -> None:
        self.in_flight.inc()

    def request_finished(self, operation: str, seconds: float, error: str | None) -> None:
        self.in_flight.dec()
        self.latency.labels(operation).observe(seconds)
        if error is not None:
            self.request_errors.labels(operation, error).inc()

    # ---- serving -----------------------------------------------------------------------------
    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve ``/metrics`` on ``host:port`` (port 0: a free one) from a daemon thread."""
        from prometheus_client import start_http_server

        try:
            httpd, thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
                hint="choose another --metrics-port (0 takes any free port) or --metrics-host",
            ) from None
        return MetricsServer(httpd, thread)


class _Counted:
    """Counters the engine keeps itself, read when Prometheus scrapes."""

    def __init__(self, limiter: RequestLimiter, store: Any) -> None:
        self.limiter = limiter
        self.store = store

    def collect(self) -> Iterable[Any]:
        from prometheus_client.core import CounterMetricFamily

        yield CounterMetricFamily(
            "s3stow_retries",
            "Transient error answers (5xx, throttling, timeouts, resets) that were retried",
            value=int(getattr(self.store, "transient_errors", 0)),
        )
        yield CounterMetricFamily(
            "s3stow_throttled_requests",
            "Throttling answers from the server (503 SlowDown, 429...): each halves the limit",
            value=self.limiter.throttle_events,
        )


class MetricsServer:
    """The running ``/metrics`` endpoint."""

    def __init__(self, httpd: Any, thread: threading.Thread) -> None:
        self.httpd = httpd
        self.thread = thread
        self.host, self.port = httpd.server_address[:2]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def metrics_for(settings: Settings, *, command: str, done: str = "uploaded") -> RunMetrics | None:
    """``RunMetrics`` when ``metrics_port`` is set, else ``None`` (nothing imported)."""
    if settings.metrics_port is None:
        return None
    return RunMetrics(command=command, done=done)


@contextmanager
def serving(
    metrics: RunMetrics | None,
    engine: Engine,
    settings: Settings,
    *,
    announce: bool = True,
    backlog: Backlog | None = None,
) -> Iterator[MetricsServer | None]:
    """Serve ``metrics`` of ``engine`` for the duration of the block (no-op without)."""
    if metrics is None or settings.metrics_port is None:
        yield None
        return
    metrics.attach(engine, backlog=backlog)
    server = metrics.serve(settings.metrics_host, settings.metrics_port)
    if announce:
        print(f"metrics: {server.url}", file=sys.stderr, flush=True)
    try:
        yield server
    finally:
        server.stop()
