"""What a progress display shows, as rclone's ``-P`` shows it: a run counted, and in words.

``Progress`` follows a run through the observer hooks and answers ``snapshot()``
(``Snapshot``, with ``InFlight`` per file): files and bytes done of the total, the
rate over the last seconds and the time left, the files in flight with their own
progress (a large file's whole-file hashing included), and, while discovery is still
walking the tree, what it has found so far apart from any total (the total and the
time left appear when the walk ends, so the bar never jumps back). Bytes are those
this run sends: a file skipped, failed or resumed from an earlier run's parts leaves
the total with what it will not send, so the rate and the time left are this run's
own. ``files_text``, ``bytes_text``, ``rate_text``, ``eta_text`` and ``plain_line`` put
a snapshot in words; sizes and rates use binary units (MiB, MiB/s), as the summary
does. The displays that draw it are in ``progress.py``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from s3stow.models import Decision, SourceFile, Status, UploadResult
from s3stow.report.observer import Observer
from s3stow.units import format_size

RATE_WINDOW = 10.0  # seconds of history the rate is averaged over
SHOWN_IN_FLIGHT = 6


@dataclass
class _File:
    name: str
    size: int
    started: float
    sent: int = 0  # acknowledged by S3 in this run
    resumed: int = 0  # parts an earlier run sent
    hashed: int = 0


@dataclass(frozen=True)
class InFlight:
    """One file being worked on."""

    name: str
    size: int
    done: int  # bytes sent (or resumed), or hashed while hashing
    hashing: bool
    rate: float
    seconds: float  # since its transfer (or hashing) started
    receiving: bool = False  # a restore: bytes come from S3

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.size if self.size else 100.0

    def text(self) -> str:
        """``45% of 48.0 MiB, 12.1 MiB/s``; ``hashing 35% of 1.0 GiB, ...``; a file whose
        bytes S3 has not acknowledged yet (one request): ``sending 1.2 MiB, 3s``."""
        if self.hashing:
            return (
                f"hashing {self.percent:.0f}% of {format_size(self.size)}, {rate_text(self.rate)}"
            )
        if not self.done:
            verb = "receiving" if self.receiving else "sending"
            return f"{verb} {format_size(self.size)}, {eta_text(self.seconds)}"
        if self.done >= self.size:  # every part acknowledged: completing, checking
            return f"verifying {format_size(self.size)}"
        return f"{self.percent:.0f}% of {format_size(self.size)}, {rate_text(self.rate)}"


@dataclass(frozen=True)
class Snapshot:
    """What the display shows at one moment."""

    elapsed: float
    walking: bool  # discovery is still finding files: no total yet
    stopped: bool  # the run ended before the walk did (interrupted): no total ever
    found_files: int
    found_bytes: int
    files_done: int
    skipped: int
    failed: int
    not_started: int
    sent: int
    total: int  # bytes this run will send, once the walk is over
    rate: float
    eta: float | None
    in_flight: list[InFlight] = field(default_factory=list)
    more_in_flight: int = 0
    receiving: bool = False

    @property
    def partial(self) -> bool:
        """No total is known: the walk goes on, or was stopped."""
        return self.walking or self.stopped

    @property
    def percent(self) -> float | None:
        if self.partial:
            return None
        return 100.0 * self.sent / self.total if self.total else 100.0


class Progress(Observer):
    """The counts a progress display needs, thread-safe; ``snapshot`` reads them."""

    def __init__(
        self,
        *,
        plan: bool = False,
        receiving: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.plan = plan  # a dry run: a planned upload is done once decided
        self.receiving = receiving  # a restore: the bytes are received, not sent
        self._clock = clock
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        """Zero every count: each run (a watch or job batch is one) is shown on its own."""
        self._started = self._clock()
        self._walking = True
        self._stopped = False
        self._found_files = self._found_bytes = 0
        self._discovered_files = self._discovered_bytes = 0  # when no walk is reported
        self._files_done = self._skipped = self._failed = self._not_started = 0
        self._sent = 0
        self._unsent = 0  # bytes of finished files this run did not send
        self._files: dict[str, _File] = {}
        self._samples: deque[tuple[float, int]] = deque()

    # ---- observer hooks ---------------------------------------------------------------
    def on_start(self, run_id: str, target: str) -> None:
        with self._lock:
            self._reset()

    def on_discovered(self, source: SourceFile) -> None:
        with self._lock:
            self._discovered_files += 1
            self._discovered_bytes += source.size

    def on_walk(self, files: int, size: int, finished: bool) -> None:
        with self._lock:
            self._found_files, self._found_bytes = files, size
            self._walking = not finished

    def on_decision(self, decision: Decision) -> None:
        reason = decision.reason.value
        if decision.upload and not self.plan:
            return
        if reason in ("ledger-done", "limit") or decision.upload:
            with self._lock:
                self._finish(decision.item.source, None)
                if reason == "ledger-done":
                    self._skipped += 1
                elif reason == "limit":
                    self._not_started += 1

    def on_file_start(self, source: SourceFile, key: str) -> None:
        with self._lock:
            self._file(source)

    def on_bytes(self, source: SourceFile, count: int) -> None:
        with self._lock:
            self._sent += count
            self._file(source).sent += count

    def on_resumed(self, source: SourceFile, count: int) -> None:
        with self._lock:  # in S3 already: the file's progress, not this run's bytes
            self._file(source).resumed += count
            self._unsent += count

    def on_hashed(self, source: SourceFile, count: int) -> None:
        with self._lock:
            self._file(source).hashed += count

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        if source is None:  # a path discovery skipped: in the summary, not in the totals
            return
        with self._lock:
            self._finish(source, result)

    # ---- counting ---------------------------------------------------------------------
    def _file(self, source: SourceFile) -> _File:
        key = str(source.path)
        entry = self._files.get(key)
        if entry is None:
            entry = self._files[key] = _File(source.rel_path, source.size, self._clock())
        return entry

    def _finish(self, source: SourceFile, result: UploadResult | None) -> None:
        entry = self._files.pop(str(source.path), None)
        handled = (entry.sent + entry.resumed) if entry is not None else 0
        self._unsent += max(0, source.size - handled)
        self._files_done += 1
        if result is None:
            return
        if result.status in (Status.FAILED, Status.CHANGED):
            self._failed += 1
        elif result.status == Status.SKIPPED or (
            result.reason is not None and result.reason.value == "remote-match"
        ):
            self._skipped += 1

    # ---- reading ----------------------------------------------------------------------
    def snapshot(self, *, whole_run: bool = False) -> Snapshot:
        """The state now (call it about as often as the display refreshes); the rate is
        that of the last seconds, or of the ``whole_run`` (the last frame, as the
        summary has it)."""
        with self._lock:
            now = self._clock()
            self._samples.append((now, self._sent))
            while len(self._samples) > 2 and now - self._samples[1][0] >= RATE_WINDOW:
                self._samples.popleft()
            then, sent_then = self._samples[0]
            if whole_run or now - then < 1.0:  # the whole run, or too short a window
                then, sent_then = self._started, 0
            rate = (self._sent - sent_then) / (now - then) if now > then else 0.0
            found_files, found_bytes = self._found_files, self._found_bytes
            if self._walking and not found_files:  # nothing reports a walk: what was seen
                found_files, found_bytes = self._discovered_files, self._discovered_bytes
            total = max(found_bytes - self._unsent, self._sent)
            eta = None
            if not (self._walking or self._stopped) and rate > 0:
                eta = max(0.0, (total - self._sent) / rate)
            # the largest first: their progress is what a long run is waiting for
            files = sorted(self._files.values(), key=lambda f: (-f.size, f.started))
            shown = [self._in_flight(f, now, self.receiving) for f in files[:SHOWN_IN_FLIGHT]]
            return Snapshot(
                elapsed=now - self._started,
                walking=self._walking and not self._stopped,
                stopped=self._stopped,
                found_files=found_files,
                found_bytes=found_bytes,
                files_done=self._files_done,
                skipped=self._skipped,
                failed=self._failed,
                not_started=self._not_started,
                sent=self._sent,
                total=total,
                rate=rate,
                eta=eta,
                in_flight=shown,
                more_in_flight=max(0, len(files) - SHOWN_IN_FLIGHT),
                receiving=self.receiving,
            )

    @staticmethod
    def _in_flight(entry: _File, now: float, receiving: bool) -> InFlight:
        hashing = entry.hashed > 0 and entry.sent == 0 and entry.hashed < entry.size
        took = now - entry.started  # hashing is a file's first step
        if hashing:
            rate = _per(entry.hashed, took)
            return InFlight(entry.name, entry.size, entry.hashed, True, rate, took, receiving)
        done = entry.sent + entry.resumed
        rate = _per(entry.sent, took)
        return InFlight(entry.name, entry.size, done, False, rate, took, receiving)

    def end(self) -> None:
        """The run is over; a walk not finished by now was stopped (interrupted)."""
        with self._lock:
            self._stopped = self._walking


def _per(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


# ---- wording ---------------------------------------------------------------------------
def rate_text(rate: float) -> str:
    return f"{format_size(rate)}/s"


def eta_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def files_text(snap: Snapshot) -> str:
    """``1,203 / 5,003 files (17 skipped, 3 failed)``, or the count found so far."""
    extra = [
        f"{n:,} {what}"
        for n, what in (
            (snap.skipped, "skipped"),
            (snap.failed, "failed"),
            (snap.not_started, "not started"),
        )
        if n
    ]
    if snap.walking:
        text = f"{snap.files_done:,} done, {snap.found_files:,} found so far (walking)"
    elif snap.stopped:
        text = f"{snap.files_done:,} done of {snap.found_files:,} found (the walk was stopped)"
    else:
        text = f"{snap.files_done:,} / {snap.found_files:,} files"
    return text + (f" ({', '.join(extra)})" if extra else "")


def bytes_text(snap: Snapshot) -> str:
    """``1.2 GiB / 4.8 GiB (25%)``, or what was sent while the total is unknown."""
    if snap.partial:
        so_far = " so far" if snap.walking else ""
        verb = "received" if snap.receiving else "sent"
        return f"{format_size(snap.sent)} {verb} of {format_size(snap.found_bytes)} found{so_far}"
    return f"{format_size(snap.sent)} / {format_size(snap.total)} ({snap.percent:.0f}%)"


def plain_line(snap: Snapshot) -> str:
    """The periodic line off a terminal."""
    return (
        f"progress: {files_text(snap)}, {bytes_text(snap)}, {rate_text(snap.rate)}, "
        f"ETA {eta_text(snap.eta)}, elapsed {eta_text(snap.elapsed)}"
    )


def shorten(name: str, width: int) -> str:
    """``name`` cut in the middle to ``width`` characters."""
    if len(name) <= width:
        return name
    keep = max(1, width - 1)
    return name[: keep // 2] + "…" + name[len(name) - (keep - keep // 2) :]
