"""The ``--status-json`` heartbeat: an atomically replaced JSON file.

Schema (the large-file uploader's, seed 004): ``started_at``, ``command`` (``upload``,
``retry``, ``archive``, ``watch``, ``job work``, or ``restore``, ``archive restore``: a
restore names its counters ``restored`` and ``bytes_restored``, as its ``--json``
summary and the ledger do;
``fields_of``), ``phase``, ``current_<group>``, ``current_file``, ``current_file_bytes``,
``current_file_size``, ``totals`` {files, uploaded, skipped, failed, not_started
(``--limit``), bytes_uploaded}, per-group counters under ``<groups>``, ``last_update``; and for
the status page (``s3stow status --serve``): ``history`` (``Trend``: time, bytes
and files done at each write, for the throughput chart) and ``failures`` (the
latest, with their reasons). ``bytes_uploaded`` counts the bytes this run sent (parts
as S3 acknowledges them); ``current_file_bytes`` also counts the parts of a resumed
upload an earlier run sent. Written at most every ``interval`` seconds and always at
the end.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s3stow.errors import ConfigError
from s3stow.localfiles import atomic_write_text, output_problem
from s3stow.logs import redact, warn_each
from s3stow.models import Decision, RunSummary, SourceFile, Status, UploadResult
from s3stow.report.observer import Observer

log = logging.getLogger(__name__)


class Trend:
    """``[time, bytes, files done]`` at each write, for a chart of throughput over the
    whole run: when ``size`` points are held, every other older one is dropped."""

    def __init__(self, size: int = 240) -> None:
        self.size = size
        self.points: list[list[float]] = []

    def add(self, when: float, sent: int, done: int) -> None:
        self.points.append([round(when, 2), sent, done])
        if len(self.points) > self.size:
            self.points = self.points[::-2][::-1]  # the newest kept


class RecentFailures:
    """The latest failed or changed files with their reasons (secrets redacted)."""

    def __init__(self, size: int = 20) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)

    def add(self, result: UploadResult) -> None:
        if result.status in (Status.FAILED, Status.CHANGED):
            self._items.append(
                {
                    "path": str(result.path),
                    "key": result.key,
                    "status": result.status.value,
                    "error_class": result.error_class,
                    "error": redact(result.error or ""),
                    "at": round(time.time(), 2),
                }
            )

    def items(self) -> list[dict[str, Any]]:
        return list(self._items)


@dataclass(frozen=True, slots=True)
class Fields:
    """What a status file calls the files done and their bytes, and the bytes' verb:
    an upload's names, or a restore's (those of its ``--json`` summary and ledger)."""

    done: str
    bytes: str
    moved: str  # what happened to the bytes, in words


UPLOAD = Fields("uploaded", "bytes_uploaded", "sent")
RESTORE = Fields("restored", "bytes_restored", "received")


def fields_of(status: dict[str, Any]) -> Fields:
    """The names a status file uses (a restore's says ``command``; one written before
    it did has the upload's names)."""
    return RESTORE if "restore" in str(status.get("command") or "") else UPLOAD


def check_writable(path: Path) -> None:
    """A status file that can never be written (a folder, a file where its folder should
    be) is a usage error (exit 2) before the run starts, not an unexpected error at its
    first write."""
    problem = output_problem(path)
    if problem is not None:
        raise ConfigError(
            f"cannot write the status file {path}: {problem}",
            hint="give --status-json (S3STOW_STATUS_JSON) a file name in a folder that can "
            "be written",
        )


class StatusHeartbeat(Observer):
    """Keeps the status file current; thread-safe and throttled."""

    def __init__(
        self,
        path: Path,
        *,
        interval: float,
        group_key: str = "folder_types",
        busy_phase: str = "uploading",
        command: str = "upload",
        pending_class: str | None = None,
        log_final_failure: bool = True,
    ) -> None:
        self.path = path
        # the last write (a run's end) failed: its message, until a later write succeeds
        # (a job worker's next batch); the command line says it last and exits 3
        # (``log_final_failure=False``), a library caller gets it logged as an error too
        self.final_error: str | None = None
        self._log_final_failure = log_final_failure
        check_writable(path)
        self.busy_phase = busy_phase
        self.interval = interval
        self.group_key = group_key
        self.fields = RESTORE if "restore" in command else UPLOAD
        done, sent = self.fields.done, self.fields.bytes
        # a restore: the error class of an object waiting for Glacier, counted under
        # "pending" (as its summary counts it), not "failed"
        self.pending_class = pending_class
        self._counters = (done, "skipped", "failed", *(("pending",) if pending_class else ()))
        self._lock = threading.Lock()
        self._last_write = 0.0
        self._groups: dict[str, dict[str, Any]] = {}
        self._trend = Trend()
        self._failures = RecentFailures()
        self._done = 0
        self._state: dict[str, Any] = {
            "started_at": time.time(),
            "command": command,  # upload, restore: the names of the counters (fields_of)
            "phase": "starting",
            f"current_{group_key[:-1] if group_key.endswith('s') else group_key}": None,
            "current_file": None,
            "current_file_bytes": 0,
            "current_file_size": 0,
            "totals": {
                "files": 0,
                **dict.fromkeys(self._counters, 0),
                "not_started": 0,  # left for the next run by --limit, as in the summary
                sent: 0,
                "unfinished": 0,  # found, left without an outcome by an interrupt (at the end)
            },
            group_key: self._groups,
            "last_update": None,
        }
        self._current_key = next(k for k in self._state if k.startswith("current_"))

    def _group(self, source: SourceFile) -> dict[str, Any]:
        name = source.group or "default"
        group = self._groups.get(name)
        if group is None:
            group = {
                "planned_files": 0,
                "planned_bytes": 0,
                **dict.fromkeys(self._counters, 0),
                "not_started": 0,
                self.fields.bytes: 0,
                "started_at": time.time(),
                "completed_at": None,
            }
            self._groups[name] = group
        return group

    def on_start(self, run_id: str, target: str) -> None:
        with self._lock:
            self._state["phase"] = "discovering"
            self._state["run_id"] = run_id
            self._state["target"] = target
        self._write(force=True)

    def on_discovered(self, source: SourceFile) -> None:
        with self._lock:
            self._state["totals"]["files"] += 1
            group = self._group(source)
            group["planned_files"] += 1
            group["planned_bytes"] += source.size
        self._write()

    def on_decision(self, decision: Decision) -> None:
        field = {"ledger-done": "skipped", "limit": "not_started"}.get(decision.reason.value)
        if field is not None:
            with self._lock:
                self._state["totals"][field] += 1
                self._group(decision.item.source)[field] += 1
                if field == "skipped":
                    self._done += 1
            self._write()

    def on_file_start(self, source: SourceFile, key: str) -> None:
        with self._lock:
            self._state["phase"] = self.busy_phase
            self._state[self._current_key] = source.group or "default"
            self._state["current_file"] = str(source.path)
            self._state["current_file_bytes"] = 0
            self._state["current_file_size"] = source.size
        self._write()

    def on_bytes(self, source: SourceFile, count: int) -> None:
        with self._lock:
            self._state["totals"][self.fields.bytes] += count
            self._group(source)[self.fields.bytes] += count
            if self._state["current_file"] == str(source.path):
                self._state["current_file_bytes"] += count
        self._write()

    def on_resumed(self, source: SourceFile, count: int) -> None:
        with self._lock:  # the current file's progress, not bytes this run sent
            if self._state["current_file"] == str(source.path):
                self._state["current_file_bytes"] += count
        self._write()

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        done = self.fields.done
        field = {Status.DONE: done, Status.SKIPPED: "skipped"}.get(result.status, "failed")
        if self.pending_class is not None and result.error_class == self.pending_class:
            field = "pending"
        if result.reason is not None and result.reason.value == "remote-match":
            field = "skipped"
        with self._lock:
            self._state["totals"][field] += 1
            if source is not None:
                self._group(source)[field] += 1
            else:  # failed before it was discovered (a name that is not UTF-8): the
                self._state["totals"]["files"] += 1  # summary's files count it too
            self._done += 1
            self._failures.add(result)
        self._write()

    def on_finish(self, summary: RunSummary) -> None:
        with self._lock:
            self._state["phase"] = (
                "interrupted" if summary.interrupted else ("failed" if summary.fatal else "done")
            )
            now = time.time()
            for group in self._groups.values():
                group["completed_at"] = group["completed_at"] or now
            self._state[self._current_key] = None
            self._state["current_file"] = None
            # the summary's: found but without an outcome (an interrupted run's)
            self._state["totals"]["unfinished"] = summary.unfinished
        self._write(force=True, final=True)

    def _write(self, *, force: bool = False, final: bool = False) -> None:
        now = time.time()
        with self._lock:
            if not force and now - self._last_write < self.interval:
                return
            self._last_write = now
            self._state["last_update"] = now
            self._trend.add(now, self._state["totals"][self.fields.bytes], self._done)
            self._state["history"] = self._trend.points
            self._state["failures"] = self._failures.items()
            text = json.dumps(self._state, indent=2)
            try:
                atomic_write_text(self.path, text)
                self.final_error = None  # the file shows this write
            except OSError as exc:
                why = exc.strerror or str(exc)
                if final:  # the run is over: its summary must still be printed
                    self.final_error = (
                        f"cannot write the status file {self.path} at the end of the run: "
                        f"{why} (it still shows the run as it was at the last write)"
                    )
                    if self._log_final_failure:
                        log.error("%s", self.final_error)
                    return
                if force:  # the first: a status file that cannot be written, before the run
                    raise ConfigError(
                        f"cannot write the status file {self.path}: {why}",
                        hint="give --status-json a file on a file system with room, that "
                        "this user can write",
                    ) from exc
                # during the run, a write that fails (on Windows: a reader holding the
                # file past the retries) must not fail the file being uploaded: the next
                # write tries again
                warn_each(
                    log, "status-write", "cannot write the status file %s: %s", self.path,
                    exc.strerror or exc, example=str(self.path), many="status file writes failed",
                )  # fmt: skip
