"""``Watcher``: upload files as they appear in a directory, once each, forever.

Filesystem notifications (watchdog) say which paths changed; a periodic rescan is the
safety net for lost notifications and for files that arrived while s3stow was down (the
backlog is uploaded at start, oldest first). A file is *ready* when its size and mtime
have not changed for ``settle`` seconds (a scanned file whose mtime is older than that
is ready at once; reads are not changes); the settings' ``include``/``exclude`` select
files as in ``upload`` (gitignore patterns on the path relative to the watched
directory), and temporary and hidden names (``DEFAULT_IGNORE``) are always excluded
first (a ``!pattern`` exclude takes one back); a file still changing after ``max_wait``
is reported and not uploaded half-written. Ready files go through the same engine as
``upload`` (keys by the same planner, verified, recorded in the ledger), so a restart
never uploads a file twice. ``after_upload`` (``keep``, ``delete`` or ``move:DIR``) acts
only on files whose object is verified. Transient outages keep files queued and retried
with backoff; an authentication or permission error stops the watcher (exit 3).

This module owns the backlog: what is tracked, when it is ready, the batches handed to
the engine and what each outcome does to it. What watchdog says is in
``watchevents.py``, the after-upload actions in ``afterupload.py``, the totals, the
terminal line and the status file in ``watchstatus.py``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from s3stow.errors import ConfigError, SourceError
from s3stow.models import (
    INFORMATIONAL_SKIPS,
    Decision,
    PlannedUpload,
    Reason,
    Skipped,
    SourceFile,
    Status,
    Target,
    UploadResult,
    new_run_id,
)
from s3stow.plan.collisions import KeyClaims
from s3stow.plan.discover import INVALID_NAME, NOT_UTF8, discover
from s3stow.plan.ownfiles import working_files
from s3stow.plan.planner import Duplicate, Planner, Refused
from s3stow.report.observer import Observer
from s3stow.report.status import RecentFailures
from s3stow.tools.afterupload import AfterUpload
from s3stow.tools.watchevents import Notifications
from s3stow.tools.watchstatus import WatchStats, WatchStatus
from s3stow.transfer.engine import Uploader

log = logging.getLogger(__name__)
DEFAULT_IGNORE = ("*.tmp", "*.part", ".*")


@dataclass
class _Waiting:
    size: int
    mtime_ns: int
    first_seen: float
    last_change: float
    not_before: float = 0.0  # backoff after a transient failure
    failures: int = 0
    reported: bool = False


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class _Outcomes(Observer):
    """Sees each verified (or failed) file of a batch."""

    def __init__(self, watcher: Watcher) -> None:
        self.watcher = watcher

    def on_decision(self, decision: Decision) -> None:
        if decision.reason == Reason.LEDGER_DONE:  # uploaded before a restart
            source = decision.item.source
            self.watcher._finished(
                source.path,
                done=True,
                transient=False,
                skipped=True,
                uploaded=(source.size, source.mtime_ns),
            )

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        done = result.status == Status.DONE
        transient = result.status == Status.FAILED and result.error_class not in (
            "UnsafeKey",
            "KeyCollision",
        )
        if done and result.reason != Reason.REMOTE_MATCH:
            self.watcher.stats.bytes_uploaded += result.bytes_sent
        self.watcher.failures.add(result)
        self.watcher._finished(
            result.path,
            done=done,
            transient=transient,
            changed=result.status == Status.CHANGED,
            skipped=result.reason == Reason.REMOTE_MATCH,
            uploaded=(source.size, source.mtime_ns) if source is not None else None,
        )


class Watcher:
    """Watches ``directory`` and uploads ready files to ``target`` through ``uploader``."""

    def __init__(
        self,
        uploader: Uploader,
        directory: Path,
        target: Target,
        *,
        settle: float = 5.0,
        max_wait: float = 3600.0,
        rescan: float = 30.0,
        after_upload: str = "keep",
        status_json: Path | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        if uploader.settings.dry_run:  # nothing would go up, so nothing would leave the backlog
            raise ConfigError(
                "watch has no dry run: the setting dry_run is true (S3STOW_DRY_RUN or "
                "dry_run in the config file)",
                hint="unset it for watch; `s3stow upload DIR s3://BUCKET/PREFIX --dry-run` "
                "lists what a watch would send first",
            )
        self.uploader = uploader
        self.directory = directory
        self.target = target
        self.settle = settle
        self.max_wait = max_wait
        self.rescan = rescan
        settings = uploader.settings
        excluded = [*DEFAULT_IGNORE, *settings.exclude]  # the user's "!x" can take one back
        self.planner = Planner(settings.replace(exclude=excluded), target)
        self.own = working_files(uploader.settings, uploader.ledger)  # never uploaded
        if status_json is not None:
            self.own.add(status_json, "the watch heartbeat (--status-json)")
            self.own.add_pattern(status_json.parent, f".{status_json.name}.", "", "its temp file")
        self.stats = WatchStats()
        self.notifications = Notifications(directory)
        self.failures = RecentFailures()  # for the status file: the latest, with reasons
        # One id for the watch; each batch is a ledger run "<id>.<n>" (stats --by run).
        self.run_id = new_run_id()
        self.status = WatchStatus(
            self.stats,
            self.failures,
            backlog=self.backlog,
            run_id=self.run_id,
            target=target.url,
            status_json=status_json,
            interval=settings.status_interval,
            on_progress=on_progress,
        )
        self._batches = 0
        self._waiting: dict[str, _Waiting] = {}
        # Each file this watch finished, with its size and mtime then: a rescan passes it
        # by until it changes (it went through the engine again at every rescan, and
        # counted as "already done" each time).
        self._done: dict[str, tuple[int, int]] = {}
        # What a scan found and cannot upload (a name that is not UTF-8, a folder it
        # cannot read, a broken symlink followed), each said once, as upload says it: a
        # failure goes through the engine with the next batch (the ledger, retry --list,
        # the failure lines), a symlink or special file is named under -v.
        self._told: set[str] = set()
        self._unreadable: list[UploadResult] = []
        self._stop = uploader.stop
        # An outage keeps files queued and retried (above): the endpoint breaker, which
        # stops an upload run whose endpoint stopped answering, is not for a watch.
        uploader.worker.breaker.enabled = False
        self._once = False  # with --once a failure (after the engine's retries) is final
        uploader.add_observer(_Outcomes(self))
        self.after_upload = AfterUpload(after_upload, directory)  # its move folder made

    def stop(self) -> None:
        self.uploader.request_stop()

    def run(self, *, once: bool = False) -> WatchStats:
        """Upload the backlog, then (unless ``once``) watch until stopped."""
        self.uploader.check_bucket_access(self.target.bucket)
        self._once = once
        self._scan()
        self.status.report_progress()  # the backlog found at start
        if once:
            while self._waiting and not self._stop.is_set():
                self._tick(time.time(), final=True)
            self.status.write("done")
            return self.stats
        try:
            self.notifications.start()
        except OSError as exc:  # gone since it was checked: "unexpected FileNotFoundError"
            raise SourceError(
                f"cannot watch {self.directory}: {exc.strerror or exc}",
                hint="check that the folder exists and this user can read it",
            ) from None
        try:
            last_scan = time.monotonic()
            while not self._stop.is_set():
                if time.monotonic() - last_scan >= self.rescan:
                    self._scan()
                    last_scan = time.monotonic()
                self._drain_inbox()
                self._tick(time.time(), final=False)
                self._stop.wait(min(0.2, self.settle / 4))
        finally:
            self.notifications.stop()
            self.status.write("stopped")
        return self.stats

    # ---- bookkeeping -------------------------------------------------------------------
    def _wanted(self, path: Path) -> bool:
        """Whether the include/exclude patterns take ``path`` (checked before it is even
        tracked, so excluded temporary files never enter the backlog)."""
        try:
            rel = path.relative_to(self.directory).as_posix()
        except ValueError:
            return False
        own = self.own.what(path)
        if own is not None:
            log.debug("not uploading %s: it is %s", path, own)
            return False
        if self.after_upload.holds(path):
            log.debug("not uploading %s: it is in the --after-upload folder", path)
            return False
        return self.planner.selector.takes_path(rel) is None

    def _track(self, path: Path, now: float, *, scanned: bool = False) -> None:
        if not self._wanted(path):
            return
        try:
            info = path.stat()
        except OSError:
            self._waiting.pop(str(path), None)
            return
        if not path.is_file():
            return
        if not _utf8(path.relative_to(self.directory).as_posix()):  # notified: a scan's
            self._waiting.pop(str(path), None)  # discovery says it (and the engine
            self._skipped(Skipped(path, NOT_UTF8, INVALID_NAME))  # could not take it)
            return
        entry = self._waiting.get(str(path))
        if entry is None and self._done.get(str(path)) == (info.st_size, info.st_mtime_ns):
            return
        if entry is None:
            # Found by a scan (the backlog, or a lost notification), a file has been
            # unchanged since its mtime: one modified longer than ``settle`` ago is ready
            # now. A notified file has just changed, so its wait starts now. (A file that
            # still changes is caught by the engine's source-change check and waits again.)
            changed = min(now, info.st_mtime_ns / 1e9) if scanned else now
            self._waiting[str(path)] = _Waiting(info.st_size, info.st_mtime_ns, now, changed)
        elif (entry.size, entry.mtime_ns) != (info.st_size, info.st_mtime_ns):
            entry.size, entry.mtime_ns, entry.last_change = info.st_size, info.st_mtime_ns, now

    def _scan(self) -> None:
        now = time.time()
        found = []
        lost = False
        for item in discover([self.directory]):
            if isinstance(item, Skipped):
                lost = lost or item.path == self.directory
                self._skipped(item)
            else:
                found.append(item)
        if not lost:  # readable (again): said again should it go again
            self._told.discard(str(self.directory))
        for source in sorted(found, key=lambda f: f.mtime_ns):  # oldest first
            self._track(source.path, now, scanned=True)

    def _lost_folder(self, why: str) -> None:
        """The watched folder itself cannot be read: said once (again once it was back),
        not as a failure of a file; its hidden-name rule (``.``) had kept it unsaid."""
        if str(self.directory) in self._told:
            return
        self._told.add(str(self.directory))
        log.error(
            "cannot read the watched folder: %s; nothing is uploaded until it is back "
            "(each rescan looks for it)",
            why,
        )

    def _skipped(self, item: Skipped) -> None:
        if item.path == self.directory:
            self._lost_folder(f"{item.path}: {item.reason}")
            return
        if str(item.path) in self._told or not self._wanted(item.path):
            return
        self._told.add(str(item.path))
        if item.error_class in INFORMATIONAL_SKIPS:
            log.info("not uploading %s: %s", item.path, item.reason)
            return
        self._unreadable.append(
            UploadResult(
                item.path,
                self.target.bucket,
                "",  # it has no key: the ledger knows it by its path
                Status.FAILED,
                error_class=item.error_class,
                error=item.reason,
            )
        )

    def _drain_inbox(self) -> None:
        paths = self.notifications.drain()
        now = time.time()
        for path in paths:
            self._track(path, now)

    def _tick(self, now: float, *, final: bool) -> None:
        for path in list(self._waiting):
            self._track(Path(path), now)
        ready: list[PlannedUpload | UploadResult] = [*self._unreadable]
        self._unreadable.clear()
        for path, entry in sorted(self._waiting.items(), key=lambda i: i[1].mtime_ns):
            if now < entry.not_before:
                continue
            if now - entry.last_change < self.settle:
                if now - entry.first_seen > self.max_wait and not entry.reported:
                    entry.reported = True
                    self.stats.too_busy.append(path)
                    log.warning(
                        "%s is still changing after %.0f s; not uploading it half-written",
                        path,
                        self.max_wait,
                    )
                    if self._once:  # --once: reported, and this run is done with it
                        self._waiting.pop(path, None)
                continue
            item = self._plan(Path(path), entry)
            if isinstance(item, Duplicate):
                if item.first in self._waiting:  # its twin is not verified yet: after it
                    entry.not_before = now + max(self.settle, 1.0)
                    continue
                # Sent again to its content-addressed key (the same bytes): the watcher
                # acts after upload only on a file whose own upload it saw verified.
                item = PlannedUpload(item.source, self.target.bucket, item.key)
            if item is not None:
                ready.append(item)
        if ready:
            self._batches += 1
            self.uploader.upload_planned(
                ready,
                self.target,
                command="watch",
                run_id=f"{self.run_id}.{self._batches}",
                claims=KeyClaims(content_addressed=self.planner.claims.content_addressed),
            )
        elif final and self._waiting:
            time.sleep(min(0.2, self.settle / 4))
        self.status.write("watching")

    def _plan(self, path: Path, entry: _Waiting) -> PlannedUpload | UploadResult | Duplicate | None:
        try:
            rel = path.relative_to(self.directory).as_posix()
        except ValueError:
            return None
        group = rel.split("/", 1)[0] if "/" in rel else "(root)"
        source = SourceFile(path, rel, entry.size, entry.mtime_ns, self.directory, group)
        planned = self.planner.plan(source)
        if planned is None:
            self._waiting.pop(str(path), None)
            return None
        if isinstance(planned, Refused):
            self._waiting.pop(str(path), None)
            return planned.result(self.target.bucket)
        # Who owns the key, for as long as the watch runs (the ledger's holder is
        # checked again with each batch, by the engine).
        _, others = self.planner.claims.settle([planned], {})
        if not others:
            return planned
        if isinstance(others[0], Duplicate):
            return others[0]
        self._waiting.pop(str(path), None)
        return others[0].result(self.target.bucket)

    def _finished(
        self,
        path: Path,
        *,
        done: bool,
        transient: bool,
        changed: bool = False,
        skipped: bool = False,
        uploaded: tuple[int, int] | None = None,  # the size and mtime the upload had
    ) -> None:
        entry = self._waiting.get(str(path))
        if uploaded is None and entry is not None:
            uploaded = (entry.size, entry.mtime_ns)
        if done:
            self._waiting.pop(str(path), None)
            if uploaded is not None:
                self._done[str(path)] = uploaded
            if skipped:
                self.stats.skipped += 1
            else:
                self.stats.uploaded += 1
            if self.after_upload.act(path, uploaded):
                self._done.pop(str(path), None)
        elif changed and entry is not None:
            entry.last_change = time.time()  # still being written: wait for it to settle
        elif transient and entry is not None and not self._once:
            entry.failures += 1
            entry.not_before = time.time() + min(60.0, 0.5 * 2**entry.failures)
            self.stats.failed += 1
        else:
            self._waiting.pop(str(path), None)
            self.stats.failed += 1

    def backlog(self) -> tuple[int, float | None]:
        """Files waiting (seen, not yet verified in S3) and when the oldest was first
        seen; safe to call from another thread (``--metrics-port`` scrapes it)."""
        for _ in range(3):
            try:
                entries = list(self._waiting.values())  # a copy: the loop may change it
            except RuntimeError:  # changed size while it was copied
                continue
            return len(entries), min((e.first_seen for e in entries), default=None)
        return len(self._waiting), None
