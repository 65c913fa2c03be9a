"""The restore pipeline and its library API: ``Restorer``, beside ``Uploader``.

list (or a run's items from the ledger, or explicit items) -> plan paths
(``plan.py``, ``paths.py``; in batches of 16, 32, ... up to 256) -> decide from the
ledger and the disk -> fetch and verify
(``worker.py``, ``download.py``, ``check.py``; archived objects through
``glacier.py``) -> record (``ledger/restores.py``) -> report (the upload's observers,
``RestoreSummary``). The listing streams in batches, so the first download starts
while the bucket is still being listed; at most the limit plus ``concurrency``
files are in flight. A restore shares an upload's machinery: the file threads
(``FileThreads``; while their queue is full the main thread waits for half of the
files queued ahead) and a part pool of ``concurrency`` threads (file threads more as
the limit grows), one
``RequestLimiter`` over both (AIMD on throttling; slow start, judged by the median
GET of a round, and growth past
``concurrency`` up to ``max_concurrency`` while files/s rises, as an upload's),
file-level retries over botocore's, the same stop event and fatal-error policy. The
ranged GETs of large objects also pass the run's ``StreamLimiter`` (``streams``): it
starts at ``download.START_STREAMS`` ranges in flight and grows towards
``concurrency`` while the bytes per second rise with it; throttling halves both.
"""

from __future__ import annotations

import itertools
import logging
import operator
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from s3stow.config import Settings
from s3stow.errors import ConfigError, S3StowError
from s3stow.ledger import Ledger
from s3stow.ledger.restores import RestoreEntry, RestoreLedger, RestoreRecord, is_restore_run
from s3stow.models import Decision, Reason, SourceFile, Status, Target, UploadResult
from s3stow.plan.keys import checked_target, parse_target
from s3stow.plan.ownfiles import working_files
from s3stow.plan.select import Selector
from s3stow.report.observer import Fanout, Observer
from s3stow.restore import glacier
from s3stow.restore.download import START_STREAMS
from s3stow.restore.paths import Folders, PathRules, folds_case
from s3stow.restore.plan import RestoreItem, RestorePlanner, RestoreRefusal, decide
from s3stow.restore.report import RestoreSummary
from s3stow.restore.worker import RestoreOptions, RestoreWorker, for_restore, since_run
from s3stow.store.base import ObjectInfo, ObjectStore
from s3stow.store.layers import run_store
from s3stow.store.observed import RequestObserver
from s3stow.transfer.context import TransferContext, transfer_context
from s3stow.transfer.engine import new_run_id
from s3stow.transfer.filethreads import FileThreads
from s3stow.transfer.limits import RequestLimiter, StreamLimiter

log = logging.getLogger(__name__)
_BATCH = 256  # objects planned and decided together (one ledger lookup per batch)
_FIRST_BATCH = 16  # the first batch; each next one doubles up to _BATCH
Found = RestoreItem | RestoreRefusal | UploadResult | None
# the file threads run ``function(*args)`` (``operator.call``): a file's ``_work``, a
# dry run's ``since_run``, a waiting object's ``poll``; each outcome comes back with
# its item
_Files = FileThreads[RestoreItem, object]


@dataclass(frozen=True, slots=True)
class _Worked:
    """A file's outcome from its thread, with its ledger row read there: the row's
    ``stat`` of the restored file (``RestoreItem.record``) is made in the file's thread,
    so the main thread, which plans, hands out and records every file, does not give
    up the GIL and wait to take it back from the file pool's threads once per file."""

    result: UploadResult
    record: RestoreRecord | None


class Restorer:
    """Restores objects to local files, verified, recorded and resumable."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: ObjectStore | None = None,
        ledger: Ledger | None = None,
        observers: Iterable[Observer] = (),
        options: RestoreOptions | None = None,
        rules: PathRules | None = None,
        request_observer: RequestObserver | None = None,
    ) -> None:
        self.settings = settings
        self.options = options or RestoreOptions()
        self.rules = rules or PathRules.for_this_os()
        self._os_rules = rules is None  # the destination's file system may fold case
        # small objects' GETs: slow start judged by a round's median GET (a GET costs
        # the client little: its quickest stays quick while most queue for the cores),
        # then growth past concurrency while it pays
        self.limiter = RequestLimiter(
            settings.concurrency,
            ceiling=settings.concurrency_ceiling,
            slow_start=True,
            slow_start_by="median",
        )
        # ranges in flight: a few, more while they pay (download.py)
        self.streams = StreamLimiter(START_STREAMS, ceiling=settings.concurrency)
        self.store: ObjectStore = run_store(
            settings,
            store=store,
            on_throttle=self._on_throttle,
            request_observer=request_observer,  # --metrics-port
        )
        self.ledger = ledger
        # read in a dry run too (what is restored already is skipped), written only for real
        self.restores = RestoreLedger(ledger) if ledger is not None else None
        self.observer = Fanout(list(observers))
        self.stop = threading.Event()
        self.worker = RestoreWorker(
            options=self.options,
            observer=self.observer,
            stop=self.stop,
            restores=self.restores,
            streams=self.streams,
        )
        self._waiting: list[RestoreItem] = []
        self._received = _Received()
        self._made: list[Path] = []  # the folders _root created, deepest first

    def _on_throttle(self) -> None:
        self.limiter.on_throttle()
        self.streams.on_throttle()

    # ---- public API -----------------------------------------------------------------
    def add_observer(self, observer: Observer) -> None:
        self.observer.observers.append(observer)

    def request_stop(self) -> None:
        """Stop starting new work; in-flight requests finish (first Ctrl+C)."""
        self.stop.set()

    @property
    def fatal_error(self) -> S3StowError | None:
        """The fatal (auth/bucket) error that stopped the run, if any."""
        return self.worker.fatal_error

    def restore_tree(
        self, source: str | Target, dest: str | Path, *, run_id: str | None = None
    ) -> RestoreSummary:
        """Restore every object under ``s3://bucket/prefix`` into ``dest`` (a single
        object when ``prefix`` names one and nothing lies below it)."""
        target = checked_target(source) if isinstance(source, Target) else parse_target(source)
        root = self._root(dest)
        with self._dest_kept_if_written():
            return self._restore_tree(target, root, run_id=run_id)

    def _restore_tree(self, target: Target, root: Path, *, run_id: str | None) -> RestoreSummary:
        planner = self._planner(root)

        def found() -> Iterator[Found]:
            listed = False
            for info in self.store.list_objects_detailed(target.bucket, target.prefix):
                listed = True
                yield planner.plan(target.bucket, target.prefix, info)
            if not listed and target.prefix:  # s3://bucket/path/to/one-object
                key = target.prefix.rstrip("/")
                single = self.store.stat_object(target.bucket, key)
                if single is not None:
                    folder = key.rpartition("/")[0]
                    yield planner.plan(target.bucket, folder + "/" if folder else "", single)

        summary = self._run(
            target, root, found(), command="restore", run_id=run_id, planner=planner
        )
        if not summary.files and not summary.interrupted:
            self._nothing(planner, f"no object at or under {target.url.rstrip('/')}")
        return summary

    def restore_run(
        self,
        upload_run: str,
        dest: str | Path,
        *,
        source: str | Target | None = None,
        run_id: str | None = None,
    ) -> RestoreSummary:
        """Restore what the upload run ``upload_run`` stored (the ledger's items it left
        done; a watch's id: those of every batch it recorded), under ``source``'s prefix
        when given, else the run's own prefix."""
        if self.ledger is None:
            raise ConfigError("restore --run reads the ledger", hint="pass --ledger")
        info = self.ledger.run_info(upload_run)
        runs = [upload_run]
        if info is None:  # a watch's id: its batches are runs of their own, <id>.<n>
            batches = self.ledger.batches(upload_run)
            if not batches:
                raise ConfigError(
                    f"no run {upload_run!r} in the ledger",
                    hint="`s3stow stats --by run` lists them",
                )
            info, runs = batches[0], [str(batch["run_id"]) for batch in batches]
        if is_restore_run(info["command"]):
            raise ConfigError(
                f"run {upload_run!r} is a restore", hint="give the id of an upload run"
            )
        target = Target(str(info["bucket"]), str(info["prefix"]))
        if source is not None:
            target = checked_target(source) if isinstance(source, Target) else parse_target(source)
            if target.bucket != info["bucket"]:
                raise ConfigError(
                    f"run {upload_run!r} uploaded to bucket {info['bucket']!r}, not "
                    f"{target.bucket!r}",
                    hint=f"give s3://{info['bucket']}/PREFIX as the source, or leave the "
                    "source out to restore everything the run stored",
                )
        root = self._root(dest)
        with self._dest_kept_if_written():
            return self._restore_run(
                upload_run, runs, target, root, listed=source is not None, run_id=run_id
            )

    def _restore_run(
        self,
        upload_run: str,
        runs: list[str],
        target: Target,
        root: Path,
        *,
        listed: bool,
        run_id: str | None,
    ) -> RestoreSummary:
        planner = self._planner(root, run=upload_run)
        ledger = self.ledger
        assert ledger is not None  # restore_run refused a run without it

        def found() -> Iterator[Found]:
            for run in runs:
                for entry in ledger.items(run_id=run, statuses=[Status.DONE]):
                    if entry.bucket == target.bucket and entry.key.startswith(target.prefix):
                        listed = ObjectInfo(entry.key, entry.size, entry.etag or "")
                        yield planner.plan(target.bucket, target.prefix, listed)

        summary = self._run(
            target, root, found(), command="restore-run", run_id=run_id, planner=planner
        )
        if not summary.files and not summary.interrupted:
            where = f"under {target.url}" if listed else "in the ledger"
            self._nothing(planner, f"upload run {upload_run} left no object done {where}")
        return summary

    def restore_items(
        self,
        items: Iterable[RestoreItem | RestoreRefusal | UploadResult],
        dest: str | Path,
        *,
        command: str = "archive-restore",
        run_id: str | None = None,
        buckets: Sequence[str] | None = None,
    ) -> RestoreSummary:
        """Restore explicit (object, local path) items, e.g. the media table's rows; a
        result among them is a refusal found while producing them, and is reported.
        The run's target (the status file's, the ledger's run row) is where the bytes are
        read, as for ``restore_tree``: ``buckets``, every bucket the items come from
        (several: each named, ``several_buckets``), else the first item's bucket."""
        root = self._root(dest)
        with self._dest_kept_if_written():
            return self._restore_items(items, root, command=command, run_id=run_id, buckets=buckets)

    def _restore_items(
        self,
        items: Iterable[RestoreItem | RestoreRefusal | UploadResult],
        root: Path,
        *,
        command: str,
        run_id: str | None,
        buckets: Sequence[str] | None,
    ) -> RestoreSummary:
        found = iter(items)
        if buckets is not None and len(set(buckets)) > 1:
            target, label = several_buckets(buckets)
            return self._run(target, root, found, command=command, run_id=run_id, label=label)
        first = next(found, None)
        target = Target("", "")
        if first is not None:
            bucket = first.result.bucket if isinstance(first, RestoreRefusal) else first.bucket
            target = Target(bucket, "")
            found = itertools.chain([first], found)
        return self._run(target, root, found, command=command, run_id=run_id)

    def _nothing(self, planner: RestorePlanner, found: str) -> None:
        """Say why a run found nothing to restore (a mistyped prefix, a pattern that
        selects nothing): as an upload says of an --include that matched no file."""
        if planner.not_selected:
            log.warning(
                "--include/--exclude selected none of the %d object(s): nothing to restore "
                "(the patterns match the path below the prefix)",
                planner.not_selected,
            )
        else:
            log.warning("%s: nothing to restore (check the bucket and the prefix)", found)

    # ---- pipeline -------------------------------------------------------------------
    def _planner(self, root: Path, *, run: str | None = None) -> RestorePlanner:
        selector = Selector.build(include=self.settings.include, exclude=self.settings.exclude)
        rules = self.rules
        if self._os_rules and not rules.fold_case and not self.settings.dry_run:
            # Linux writing to FAT, exFAT or an SMB share: "A.txt" and "a.txt" would be
            # one file, the second restore replacing the first
            rules = replace(rules, fold_case=folds_case(root))
        own = working_files(self.settings, self.ledger)
        return RestorePlanner(root, rules=rules, selector=selector, run=run, own=own)

    def prepare_root(self, dest: str | Path) -> Path:
        """``dest`` created (unless a dry run) and resolved: where the paths are planned.
        The folders it creates are removed again, if still empty, by the restore that
        follows or by ``drop_unused_dest``."""
        return self._root(dest)

    def drop_unused_dest(self) -> None:
        """Remove the folders ``_root`` created for DEST (DEST and the parents it lacked)
        that are still empty: a restore that failed, or found nothing, before its first
        file leaves no new empty folder behind. Created, not found: a folder that existed
        before the run is never removed; ``rmdir`` removes no folder holding anything."""
        made, self._made = self._made, []
        for folder in made:  # deepest first
            try:
                folder.rmdir()
            except OSError:  # not empty (a file restored, a partial download kept), gone
                return

    @contextmanager
    def _dest_kept_if_written(self) -> Iterator[None]:
        try:
            yield
        finally:
            self.drop_unused_dest()

    def _root(self, dest: str | Path) -> Path:
        if isinstance(dest, str) and not dest.strip():  # Path("") is "."
            raise ConfigError(
                f"the destination folder is empty ({dest!r}): nothing restored",
                hint="name the folder to restore into (. for the current folder; check the "
                "variable that should hold it)",
            )
        path = Path(dest).expanduser()
        if path.exists() and not path.is_dir():
            raise ConfigError(f"{path} exists and is not a folder", hint="restore into a folder")
        if path.is_symlink() and not path.exists():  # mkdir would say "File exists"
            raise ConfigError(
                f"{path} is a symbolic link to {path.readlink()}, which does not exist",
                hint="create the folder it points to, or restore into another folder",
            )
        if not self.settings.dry_run:
            whole = path.absolute()
            missing = [p for p in (whole, *whole.parents) if not os.path.lexists(p)]
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create {path}: {exc.strerror or exc}") from exc
            self._made.extend(missing)
            if not os.access(path, os.W_OK | os.X_OK):  # else every object fails alike
                self.drop_unused_dest()
                raise ConfigError(
                    f"cannot write in {path}: "
                    + ("a read-only file system" if _read_only(path) else "permission denied"),
                    hint="restore into a folder this user can write",
                )
        return path.resolve()

    def _run(
        self,
        target: Target,
        root: Path,
        found: Iterator[Found],
        *,
        command: str,
        run_id: str | None,
        planner: RestorePlanner | None = None,
        label: str | None = None,
    ) -> RestoreSummary:
        summary = RestoreSummary(run_id or new_run_id())
        self._received = _Received()
        started = time.monotonic()
        self.worker.folders = Folders()  # each run checks its folders afresh
        errors_before = getattr(self.store, "transient_errors", 0)
        shown = label or (target.url if target.bucket else str(root))
        self.observer.on_start(summary.run_id, shown)
        if self.ledger is not None and not self.settings.dry_run:
            self.ledger.start_run(
                summary.run_id,
                command=command,
                bucket=target.bucket,
                prefix=target.prefix,
                sources=[str(root)],
                settings=self.settings.dump(json=True),
            )
        try:
            self._pipeline(found, summary)
        except S3StowError as exc:  # e.g. the listing: a missing bucket, no permission
            summary.fatal = str(for_restore(exc))
            raise
        finally:
            summary.elapsed = time.monotonic() - started
            summary.transient_errors = getattr(self.store, "transient_errors", 0) - errors_before
            summary.throttled = self.limiter.throttle_events
            summary.concurrency = self.limiter.limit
            summary.concurrency_peak = self.limiter.peak
            summary.streams = self.streams.limit
            summary.streams_peak = self.streams.peak
            summary.interrupted = self.stop.is_set() and self.fatal_error is None
            summary.not_selected = planner.not_selected if planner is not None else 0
            self._received.close(summary)
            if self.fatal_error is not None:
                summary.fatal = str(self.fatal_error)
            if self.restores is not None and not self.settings.dry_run:
                self.restores.flush()
            if self.ledger is not None and not self.settings.dry_run:
                status = (
                    "interrupted" if summary.interrupted else ("done" if summary.ok else "failed")
                )
                self.ledger.finish_run(summary.run_id, status=status, summary=summary.totals())
            self.observer.on_finish(summary)
        return summary

    def _pipeline(self, found: Iterator[Found], summary: RestoreSummary) -> None:
        budget = self.settings.limit
        limiter, ahead = self.limiter, self.settings.concurrency
        with (
            self._pools(summary.run_id) as ctx,
            _Files(operator.call, self.settings.concurrency) as files,
        ):

            def submit(decision: Decision, item: RestoreItem, entry: RestoreEntry | None) -> None:
                room = files.room(limiter.limit, ahead)
                if files.in_flight >= room:  # full: wait for half of the files queued ahead
                    low = room - max(1, ahead // 2)
                    while files.in_flight > low and not self.stop.is_set():
                        self._drain(files, summary, block=True, want=files.in_flight - low)
                files.grow(limiter.limit)  # one thread per request the limit admits
                files.submit((self._work, ctx, decision, item, entry), item)

            for batch in _batched(found):
                if self.stop.is_set():
                    break
                checks: list[tuple[Decision, RestoreItem]] = []
                items = self._admit(batch, summary)
                # found by the listing so far (the progress display's walk), refusals too
                self.observer.on_walk(summary.files, summary.bytes_total, False)
                for item, (decision, entry) in zip(
                    items, decide(items, ledger=self.restores), strict=True
                ):
                    if decision.upload and budget is not None:
                        if budget <= 0:  # left for the next run, not skipped
                            decision = Decision(decision.item, False, Reason.LIMIT)
                        budget -= 1
                    self.observer.on_decision(decision)
                    if decision.reason == Reason.LIMIT:
                        summary.not_started += 1
                        continue
                    if not decision.upload:
                        summary.skipped += 1
                        summary.count_group(item.source.group, "skipped")
                        continue
                    if self.settings.dry_run:
                        if item.run is not None and decision.reason != Reason.LOCAL_EXISTS:
                            # --run: is the object still the run's? (a HEAD, read-only)
                            checks.append((decision, item))
                        else:
                            summary.would_restore.append(decision)
                        continue
                    if self.stop.is_set():
                        break
                    submit(decision, item, entry)
                checked = _each(files, since_run, ctx, [item for _, item in checks])
                for (decision, item), refused in zip(checks, checked, strict=True):
                    if isinstance(refused, BaseException):
                        raise refused
                    if refused is None:
                        summary.would_restore.append(decision)
                    else:
                        assert isinstance(refused, UploadResult)
                        self._settle(summary, refused, item)
                self._drain(files, summary, block=False)
            else:
                self.observer.on_walk(summary.files, summary.bytes_total, True)
            while files.in_flight:
                self._drain(files, summary, block=True)
            backoff = glacier.Backoff(self.options.glacier.poll_interval)
            while self._waiting and not self.stop.wait(backoff.next()):
                for item in self._poll(ctx, files, summary):
                    submit(Decision(item.planned, True, Reason.ARCHIVED), item, None)
                while files.in_flight:
                    self._drain(files, summary, block=True)
        for item in self._waiting:  # stopped while waiting: still pending
            message = glacier.message(item, glacier.PENDING, self.options.glacier)
            self._settle(summary, item.failed(glacier.PENDING, message), item, wait=False)
        self._waiting = []

    def _admit(self, batch: list[Found], summary: RestoreSummary) -> list[RestoreItem]:
        """Count a batch's objects; report its refusals; return the items to decide."""
        items = []
        for thing in batch:
            if thing is None:
                continue
            summary.files += 1
            if isinstance(thing, UploadResult):  # refused with no local path to name
                self._settle(summary, thing, None)
                continue
            summary.bytes_total += thing.source.size
            self.observer.on_discovered(thing.source)
            if isinstance(thing, RestoreRefusal):  # counted in its folder's group
                self._settle(summary, thing.result, None, source=thing.source)
                continue
            items.append(thing)
        return items

    def _poll(
        self, ctx: TransferContext, files: _Files, summary: RestoreSummary
    ) -> list[RestoreItem]:
        """HEAD every waiting object once; return those now readable."""
        waiting, self._waiting = self._waiting, []
        ready = []
        for item, readable in zip(
            waiting, _each(files, self.worker.poll, ctx, waiting), strict=True
        ):
            if isinstance(readable, S3StowError):
                code = getattr(readable, "code", type(readable).__name__)
                self._settle(summary, item.failed(code, str(readable).splitlines()[0]), item)
                continue
            if isinstance(readable, BaseException):
                raise readable
            if readable:
                ready.append(item)
            else:
                self._waiting.append(item)
        if ready:
            log.info("%d restored object(s) now readable", len(ready))
        return ready

    def _drain(self, files: _Files, summary: RestoreSummary, *, block: bool, want: int = 1) -> None:
        """Record every finished item; with ``block``, wait for at least one (for
        ``want``, while that many are in flight, unless half a second passes first).
        A file's work that raised raises here, as it did from its future."""
        for item, worked in files.collect(block=block, want=want):
            if isinstance(worked, BaseException):
                raise worked
            assert isinstance(worked, _Worked)
            self._settle(summary, worked.result, item, worked=worked)

    def _settle(
        self,
        summary: RestoreSummary,
        result: UploadResult,
        item: RestoreItem | None,
        *,
        wait: bool = True,
        source: SourceFile | None = None,
        worked: _Worked | None = None,
    ) -> None:
        """Record and count one outcome (or keep an object waiting for Glacier);
        ``source``: a refusal's would-be file, when there is no item; ``worked``: the
        outcome with its ledger row, read in the file's thread (``_work``)."""
        if result.status == Status.PLANNED:  # interrupted before an outcome
            return
        pending = result.error_class == glacier.PENDING
        waits = wait and item is not None and self.options.glacier.wait
        if pending and waits and item is not None and not self.stop.is_set():
            self._waiting.append(item)
            return
        if self.restores is not None and item is not None and not self.settings.dry_run:
            record = worked.record if worked is not None else item.record(result)
            if record is not None:
                self.restores.record(record, run_id=summary.run_id)
        source = item.source if item is not None else source
        summary.count(result, source.group if source is not None else "(none)")
        self.observer.on_result(result, source)

    def _work(
        self,
        ctx: TransferContext,
        decision: Decision,
        item: RestoreItem,
        entry: RestoreEntry | None,
    ) -> _Worked:
        """One file's outcome and, when the ledger records it, its row (``_Worked``)."""
        result = self.worker.process(ctx, decision, item, entry)
        recorded = self.restores is not None and not self.settings.dry_run
        record = item.record(result) if recorded and result.status != Status.PLANNED else None
        return _Worked(result, record)

    def _pools(self, run_id: str) -> AbstractContextManager[TransferContext]:
        received, observer = self._received, self.observer

        def on_bytes(source: SourceFile, count: int) -> None:
            received.add(source, count)
            observer.on_bytes(source, count)

        def on_resumed(source: SourceFile, count: int) -> None:
            received.add_resumed(count)
            observer.on_resumed(source, count)

        return transfer_context(
            self.settings,
            store=self.store,
            ledger=self.ledger if not self.settings.dry_run else None,
            limiter=self.limiter,
            stop=self.stop,
            run_id=run_id,
            on_bytes=on_bytes,
            on_resumed=on_resumed,
        )


class _Received:
    """The bytes a run received, by group, as the status file counts them (a range that
    fails halfway taken back), objects finished or not: an interrupted run's summary
    says what it fetched, as an upload's says what it sent; and apart from them the
    ranges of earlier runs a resumed download kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_group: dict[str, int] = {}
        self.resumed = 0

    def add(self, source: SourceFile, count: int) -> None:
        with self._lock:
            self.by_group[source.group] = self.by_group.get(source.group, 0) + count

    def add_resumed(self, count: int) -> None:
        with self._lock:
            self.resumed += count

    def close(self, summary: RestoreSummary) -> None:
        with self._lock:
            for group, count in self.by_group.items():
                summary.add_sent(group, count)
            summary.bytes_resumed += self.resumed


def _each(
    files: _Files,
    function: Callable[[TransferContext, RestoreItem], object],
    ctx: TransferContext,
    items: list[RestoreItem],
) -> list[object]:
    """``function(ctx, item)`` for every item on the file threads (nothing else in flight:
    a dry run submits no file, and the polls wait for the files to be done); the
    outcomes in the items' order, an exception raised as the outcome."""
    if not items:
        return []
    assert not files.in_flight
    for item in items:
        files.submit((function, ctx, item), item)
    outcomes: dict[int, object] = {}
    while files.in_flight:
        for item, outcome in files.collect(block=True, want=files.in_flight):
            outcomes[id(item)] = outcome
    return [outcomes[id(item)] for item in items]


def _batched(found: Iterator[Found]) -> Iterator[list[Found]]:
    """Batches of 16, 32, 64, 128, then 256 objects: the first GETs go out as soon as
    the first 16 objects are listed (the first listing page, a short one while the
    fast path learns), not once 256 are; later batches are large, so the ledger is
    asked once per 256 objects."""
    size = _FIRST_BATCH
    while batch := list(itertools.islice(found, size)):
        yield batch
        size = min(_BATCH, size * 2)


BUCKET_COLUMN = 255  # the ledger's runs.bucket (schema)


def several_buckets(buckets: Sequence[str]) -> tuple[Target, str]:
    """A run that reads from several buckets (``archive restore`` of rows pointing at
    more than one): the ledger's run row names them all, comma-separated (a comma is in
    no bucket name, so ``stats --bucket`` never takes it for one), or ``N buckets``
    when the names do not fit its column; the status file's and ``--json`` start
    event's target is each bucket's ``s3://`` URL, comma-separated."""
    names = sorted(set(buckets))
    joined = ",".join(names)
    recorded = joined if len(joined) <= BUCKET_COLUMN else f"{len(names)} buckets"
    return Target(recorded, ""), ", ".join(Target(name, "").url for name in names)


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False
