"""The ``Observer`` interface through which the engine reports a run.

The engine calls these hooks from its worker threads; implementations must be
thread-safe and cheap (they run on the hot path).
"""

from __future__ import annotations

from s3stow.models import Decision, RunSummary, Skipped, SourceFile, UploadResult


class Observer:
    """Base observer: every hook is a no-op; subclasses override what they need."""

    def on_start(self, run_id: str, target: str) -> None:
        """A run started."""

    def on_discovered(self, source: SourceFile) -> None:
        """Discovery found a file (totals grow while discovery runs)."""

    def on_walk(self, files: int, size: int, finished: bool) -> None:
        """Discovery, running ahead, has found ``files`` selected files of ``size`` bytes
        so far; ``finished``: the walk is over and these are the run's totals."""

    def on_skipped_path(self, skipped: Skipped) -> None:
        """Discovery skipped a path (symlink, special file, unreadable...)."""

    def on_decision(self, decision: Decision) -> None:
        """The compare stage decided about one file."""

    def on_file_start(self, source: SourceFile, key: str) -> None:
        """A file's transfer started."""

    def on_bytes(self, source: SourceFile, count: int) -> None:
        """``count`` more bytes of ``source`` were sent by this run and acknowledged by S3."""

    def on_resumed(self, source: SourceFile, count: int) -> None:
        """``count`` bytes of ``source`` are parts an earlier run sent (not sent again)."""

    def on_hashed(self, source: SourceFile, count: int) -> None:
        """``count`` more bytes of ``source`` were read to hash the whole file (before
        sending it, or to prove S3 already has it): a large file's slow first step."""

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        """A file reached its outcome for this run."""

    def on_finish(self, summary: RunSummary) -> None:
        """The run ended (normally, by interrupt or fatally)."""


class Fanout(Observer):
    """Forwards every hook to several observers."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers

    def on_start(self, run_id: str, target: str) -> None:
        for o in self.observers:
            o.on_start(run_id, target)

    def on_discovered(self, source: SourceFile) -> None:
        for o in self.observers:
            o.on_discovered(source)

    def on_walk(self, files: int, size: int, finished: bool) -> None:
        for o in self.observers:
            o.on_walk(files, size, finished)

    def on_skipped_path(self, skipped: Skipped) -> None:
        for o in self.observers:
            o.on_skipped_path(skipped)

    def on_decision(self, decision: Decision) -> None:
        for o in self.observers:
            o.on_decision(decision)

    def on_file_start(self, source: SourceFile, key: str) -> None:
        for o in self.observers:
            o.on_file_start(source, key)

    def on_bytes(self, source: SourceFile, count: int) -> None:
        for o in self.observers:
            o.on_bytes(source, count)

    def on_resumed(self, source: SourceFile, count: int) -> None:
        for o in self.observers:
            o.on_resumed(source, count)

    def on_hashed(self, source: SourceFile, count: int) -> None:
        for o in self.observers:
            o.on_hashed(source, count)

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        for o in self.observers:
            o.on_result(result, source)

    def on_finish(self, summary: RunSummary) -> None:
        for o in self.observers:
            o.on_finish(summary)
