"""What every command that runs an engine shares once it runs: the ledger it opens
(``default_ledger``, ``ledger_for``, ``existing_ledger``), its observers (progress, JSON
events, heartbeat, failures file: ``observers_for``; ``StartupOver``, which releases the
collector held during start-up), its signal handlers (``install_signal_handlers``: a
first Ctrl+C stops starting work, a second quits at once, ``quit_now``) and the command
line that resumes it (``resume_command``), and its exit code (``exit_for``).

``upload``, ``restore``, ``retry``, ``verify``, ``watch``, ``job work``, ``archive``
and ``stats`` import it inside their command functions: no ``--help`` loads it.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

import typer

from s3stow.cli.app import GlobalOptions, check_at_exit
from s3stow.cli.collector import release_collector
from s3stow.errors import ConfigError, ExitCode, S3StowError
from s3stow.models import Decision, RunSummary, SourceFile, UploadResult
from s3stow.report.observer import Observer

if TYPE_CHECKING:
    from s3stow.config import Settings
    from s3stow.ledger import Ledger


class Engine(Protocol):
    """What the signal handlers and the exit code need of an ``Uploader`` or ``Restorer``."""

    def request_stop(self) -> None: ...

    @property
    def fatal_error(self) -> S3StowError | None: ...


def default_ledger() -> str:
    """The default ledger: ``ledger.db`` in the user's state directory."""
    from platformdirs import user_state_dir

    return str(Path(user_state_dir("s3stow")) / "ledger.db")


def ledger_for(settings: Settings) -> Ledger | None:
    """The ledger of an ``upload`` or ``restore``; none for a dry run whose SQLite
    ledger does not exist yet (a dry run writes nothing, not even a new ledger file)."""
    from s3stow.ledger import open_ledger

    path = settings.ledger or default_ledger()
    if settings.dry_run and "://" not in path and not Path(path).exists():
        return None
    return open_ledger(path)


def existing_ledger(target: str | None) -> str:
    """The ledger of a command that reads what runs recorded (``stats``, ``retry``): a
    SQLite file that does not exist is a mistyped path, refused (exit 2), not a new empty
    ledger of which the command says that nothing is failed."""
    path = target or default_ledger()
    if "://" not in path and not Path(path).exists():
        raise ConfigError(
            f"no ledger at {path}: no run has recorded anything there",
            hint="check --ledger (or S3STOW_LEDGER, ledger in the config file): the "
            "path the upload was given",
        )
    return path


class StartupOver(Observer):
    """Releases the collector held during the program's start-up (``cli.collector``)
    when the run decides about its first file without a transfer to follow, has a
    result or ends, if the S3 client was not made before (``settings(keep_held=True)``
    releases it then): a run that needs no client (the ledger settles every file)
    holds it no longer than that. A decision to upload keeps it held: the transfer
    makes the client (``--force``, or a file the ledger knows as changed, is decided
    before any request), so botocore's import and the client's creation still run
    without collections and are frozen with start-up. Released at the first
    decision, the collector ran some 90 young collections during botocore's import
    and the client's creation, and the interpreter's finalization walked all of
    botocore. ``plan``: a dry run, whose decisions to upload transfer nothing. A
    no-op once released (and in a host, whose collector is never held)."""

    def __init__(self, *, plan: bool = False) -> None:
        self._plan = plan

    def on_decision(self, decision: Decision) -> None:
        if not decision.upload or self._plan:
            release_collector()

    def on_result(self, result: UploadResult, source: SourceFile | None) -> None:
        release_collector()

    def on_finish(self, summary: RunSummary) -> None:
        release_collector()


def observers_for(
    options: GlobalOptions, settings: Settings, *, batches: bool = False, command: str = "upload"
) -> list[Observer]:
    """Progress, JSON events, heartbeat and failures file for a run; ``batches``: the
    uploader runs many (a job worker), so no frame is left behind each; ``command``: the
    one the status file names (``retry``, ``archive``)."""
    from s3stow.report.console import FailureLines, FailuresFile, JsonEvents

    # progress and the heartbeat are imported where they are used: -q and --json
    # draw no progress, and most runs write no status file (about 4 ms a start)
    plan = settings.dry_run
    observers: list[Observer] = [StartupOver(plan=plan)]
    if options.json:
        observers.append(JsonEvents(sys.stdout, plan=plan))
    elif options.quiet:  # -q: failures only, each when it happens; no summary
        observers.append(FailureLines(sys.stderr))
    else:
        from s3stow.report.progress import LiveProgress, PlainProgress

        if sys.stderr.isatty():
            from rich.console import Console

            console = Console(file=sys.stderr)
            observers.append(LiveProgress(console, plan=plan, transient=batches))
        else:
            interval = settings.progress_interval
            observers.append(PlainProgress(sys.stderr, interval=interval, plan=plan))
    if settings.status_json is not None:
        from s3stow.report.status import StatusHeartbeat

        grouped_by_type = settings.layout == "project" or bool(settings.include_types)
        heartbeat = StatusHeartbeat(
            settings.status_json,
            interval=settings.status_interval,
            group_key="folder_types" if grouped_by_type else "folders",
            command=command,
            log_final_failure=False,  # said last instead, exit 3
        )
        check_at_exit(lambda: heartbeat.final_error)
        observers.append(heartbeat)
    if settings.failures_file is not None:
        observers.append(FailuresFile(settings.failures_file))
    return observers


def resume_command() -> str:
    """The command line that resumes this run: the same one, its secrets redacted as in
    every log line (a password in ``--ledger postgresql://u:pw@db/x``, ``--db`` or
    ``--endpoint-url`` is shown as ``***``: the user who typed it knows it)."""
    from s3stow.logs import redact

    return redact("s3stow " + shlex.join(sys.argv[1:]))


def install_signal_handlers(uploader: Engine, *, resume: str | None = None) -> Any:
    """First SIGINT/SIGTERM: stop starting work; second: exit at once (130), leaving
    the terminal clean with one line that says so (and ``resume``, the command that
    resumes the run)."""
    seen = {"count": 0}
    line = "s3stow: stopped at once (second Ctrl+C); what was in flight is resumed by " + (
        f"running it again: {resume}" if resume else "running the same command again"
    )

    def stop() -> None:
        uploader.request_stop()  # first: once this is said, nothing new starts
        print(
            "\nstopping: finishing in-flight requests (Ctrl+C again to quit at once)",
            file=sys.stderr,
            flush=True,
        )

    def handler(signum: int, frame: FrameType | None) -> None:
        seen["count"] += 1
        if seen["count"] > 1:
            quit_now(uploader, line)
            os._exit(int(ExitCode.INTERRUPTED))
        # Not here: the handler runs on the main thread between two bytecodes, possibly
        # inside ``Event.wait`` holding the event's lock (``set`` would then deadlock) or
        # inside a write to stderr (a reentrant write raises). A thread does both safely.
        threading.Thread(target=stop, name="stop", daemon=True).start()

    names = ["SIGINT", "SIGTERM", "SIGBREAK"]  # SIGBREAK: Ctrl+Break on Windows
    previous = {}
    for name in names:
        number = getattr(signal, name, None)
        if number is not None:
            try:
                previous[number] = signal.signal(number, handler)
            except (ValueError, OSError):  # not the main thread, or unsupported
                continue

    def restore() -> None:
        for number, old in previous.items():
            signal.signal(number, old)

    return restore


def quit_now(uploader: Engine, line: str) -> None:
    """Leave ``line`` on stderr before an immediate exit: through the live display when
    there is one (it erases its frame and shows the cursor), else as it is."""
    from s3stow.report.progress import LiveProgress

    observers = getattr(getattr(uploader, "observer", None), "observers", [])
    for observer in observers:
        if isinstance(observer, LiveProgress):
            observer.quit_now(line)
            return
    with contextlib.suppress(OSError, ValueError):  # no usable stderr: exit all the same
        os.write(sys.stderr.fileno(), f"\n{line}\n".encode("utf-8", "replace"))


def exit_for(summary: RunSummary, uploader: Engine) -> None:
    """End a command that ran the engine with the documented exit code."""
    if uploader.fatal_error is not None:
        raise uploader.fatal_error
    if summary.interrupted:
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    if not summary.ok:
        raise typer.Exit(int(ExitCode.SOME_FAILED))


__all__ = [
    "Engine",
    "StartupOver",
    "default_ledger",
    "existing_ledger",
    "exit_for",
    "install_signal_handlers",
    "ledger_for",
    "observers_for",
    "quit_now",
    "resume_command",
]
