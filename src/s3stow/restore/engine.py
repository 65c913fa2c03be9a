"""The restore's library API: ``Restorer``, beside ``Uploader``.

list (or a run's items from the ledger, or explicit items) -> plan paths
(``plan.py``, ``paths.py``) -> decide from the ledger and the disk -> fetch and verify
(``worker.py``, ``download.py``, ``check.py``; archived objects through
``glacier.py``) -> record (``outcomes.py``, ``ledger/restores.py``) -> report (the
upload's observers, ``RestoreSummary``). ``Restorer`` owns what its runs share: the
settings, the store, the ledger, the observers, the stop event and fatal error, one
``RequestLimiter`` (AIMD on throttling; slow start, judged by the median GET of a
round, and growth past ``concurrency`` up to ``max_concurrency`` while files/s rises,
as an upload's) and one ``StreamLimiter`` for the ranged GETs of large objects (from
``download.START_STREAMS`` ranges in flight towards ``concurrency`` while the bytes per
second rise with it; throttling halves both); and what a call restores: a prefix
(``restore_tree``), what an upload run stored (``restore_run``), explicit items
(``restore_items``), into DEST (``destroot.py``). Each call is one run
(``pipeline.RestoreRun``: batches, the file threads, waiting for Glacier).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from s3stow.config import Settings
from s3stow.errors import ConfigError, S3StowError
from s3stow.ledger import Ledger
from s3stow.ledger.restores import RestoreLedger, is_restore_run
from s3stow.models import Status, Target, UploadResult, new_run_id
from s3stow.plan.keys import checked_target, parse_target
from s3stow.plan.ownfiles import working_files
from s3stow.plan.select import Selector
from s3stow.report.observer import Fanout, Observer
from s3stow.restore.destroot import DestRoot
from s3stow.restore.download import START_STREAMS
from s3stow.restore.paths import PathRules, folds_case
from s3stow.restore.pipeline import Found, RestoreRun
from s3stow.restore.plan import RestoreItem, RestorePlanner, RestoreRefusal
from s3stow.restore.report import RestoreSummary
from s3stow.restore.worker import RestoreOptions, RestoreWorker
from s3stow.store.base import ObjectInfo, ObjectStore
from s3stow.store.layers import run_store
from s3stow.store.observed import RequestObserver
from s3stow.transfer.breaker import EndpointBreaker
from s3stow.transfer.limits import RequestLimiter, StreamLimiter

log = logging.getLogger(__name__)


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
            breaker=EndpointBreaker(
                settings.concurrency, store=self.store, endpoint=settings.endpoint_url
            ),
        )
        self._dest = DestRoot()  # the folders made for DEST, removed again if unused

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
        """Remove the folders made for DEST (DEST and the parents it lacked) that are
        still empty (``DestRoot.drop_unused``)."""
        self._dest.drop_unused()

    @contextmanager
    def _dest_kept_if_written(self) -> Iterator[None]:
        try:
            yield
        finally:
            self.drop_unused_dest()

    def _root(self, dest: str | Path) -> Path:
        return self._dest.prepare(dest, dry_run=self.settings.dry_run)

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
        run = RestoreRun(self, RestoreSummary(run_id or new_run_id()), planner=planner)
        return run.run(target, root, found, command=command, label=label)


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
