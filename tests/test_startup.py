"""Startup stays light (lazy imports) and every command's help renders."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from s3stow import __version__
from s3stow.cli.app import COMMANDS
from s3stow.devserver.moto import LocalS3Server

HEAVY = (
    "boto3",
    "botocore",
    "sqlalchemy",
    "pydantic",
    "yaml",
    "watchdog",
    "awscrt",
    "moto",
    "prometheus_client",
)
PROBE = """
import sys
from s3stow.cli.app import main
try:
    main({argv!r})
except SystemExit as exit:
    code = exit.code
print("HEAVY:" + ",".join(m for m in {heavy!r} if m in sys.modules))
print("CODE:", code)
"""


def _probe(argv: list[str]) -> tuple[str, list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    lines = done.stdout.splitlines()
    heavy = next(line for line in lines if line.startswith("HEAVY:"))[6:]
    code = next(line for line in lines if line.startswith("CODE:"))[5:].strip()
    return done.stdout, [h for h in heavy.split(",") if h], code


@pytest.mark.parametrize("argv", [["--version"], ["--help"]])
def test_version_and_help_import_nothing_heavy(argv: list[str]) -> None:
    output, heavy, code = _probe(argv)
    assert heavy == [], f"{argv} imported {heavy}"
    assert code in ("0", "None")
    if argv == ["--version"]:
        assert f"s3stow {__version__}" in output
    else:
        for command in ("upload", "retry", "verify", "stats", "status", "bucket", "doctor"):
            assert command in output


COMMAND_LINES = [
    ["upload"],
    ["restore"],
    ["retry"],
    ["verify"],
    ["stats"],
    ["status"],
    ["bucket", "setup"],
    ["bucket", "check"],
    ["doctor"],
    ["archive", "run"],
    ["archive", "restore"],
    ["archive", "init-demo"],
    ["watch"],
    ["job", "plan"],
    ["job", "work"],
    ["job", "status"],
    ["dev-server"],
    ["completion"],
]


@pytest.mark.parametrize("command", COMMAND_LINES, ids=" ".join)
def test_every_command_help_renders(command: list[str]) -> None:
    output, heavy, code = _probe([*command, "--help"])
    assert code in ("0", "None"), output
    assert "Usage:" in output
    assert "Traceback" not in output
    # typer builds a pydantic adapter for each option it processes; the global options
    # and -h/--help are s3stow's own plain options, so no help imports pydantic
    assert heavy == [], f"{command} --help imported {heavy}"


def test_help_lists_every_command_in_order() -> None:
    output, _, code = _probe(["--help"])
    assert code in ("0", "None")
    section = output.split("Commands:")[1]
    listed = re.findall(r"^  (\S+)  ", section, flags=re.MULTILINE)
    assert listed == list(COMMANDS)
    assert set(COMMANDS) == {command[0] for command in COMMAND_LINES}


LOADED = """
import sys
from s3stow.cli.app import main
try:
    main({argv!r})
except SystemExit:
    pass
print("CLI:" + ",".join(sorted(m[len("s3stow.cli."):] for m in sys.modules
                               if m.startswith("s3stow.cli.") and m != "s3stow.cli.app")))
"""


def test_a_command_builds_only_its_own_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LOADED.format(argv=["upload", "--help"])],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    loaded = next(line for line in done.stdout.splitlines() if line.startswith("CLI:"))[4:]
    # no other command's module; shared option definitions and the help style are no command
    assert set(loaded.split(",")) & set(COMMANDS.values()) == {"upload"}
    assert set(loaded.split(",")) <= {
        "collector",
        "upload",
        "keyoptions",
        "runoptions",
        "globalopts",
        "helptext",
        "plainparams",
    }


def test_a_mistyped_command_is_suggested_from_every_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "s3stow", "arhcive"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "No such command 'arhcive'. Did you mean 'archive'?" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


# What a one-file upload must not import: boto3 and its transfer manager (the client is
# botocore's), SQLAlchemy (a SQLite ledger is stdlib sqlite3), and whatever only another
# command or option needs.
NOT_IN_AN_UPLOAD = (
    "pydantic",  # the settings are s3stow's own dataclass (about 0.08 s of every start)
    "typing_extensions",
    "boto3",
    "s3transfer",
    "multiprocessing",
    "sqlalchemy",
    "yaml",
    "watchdog",
    "moto",
    "prometheus_client",
    "psycopg",
    "keyring",
    "http.server",
    "puremagic",
)
# sys.modules after a one-file upload: 556 on Python 3.11 (2026-12, issue 21; 618 before,
# with boto3 and s3transfer). A new import that pushes it past the bound is start-up
# every run pays: make it lazy, or raise the bound saying why.
MODULE_BOUND = 600
UPLOAD = """
import gc, json, sys
sys.argv = ["s3stow", *json.loads(sys.argv[1])]
from s3stow.cli.app import main
collections = []  # at each collection: had the command line's imports begun?
gc.callbacks.append(
    lambda phase, info: phase == "start" and collections.append("typer" in sys.modules)
)
try:
    main()  # as the program: argv from sys.argv
except SystemExit as exit:
    code = exit.code
import os
print("RESULT:" + json.dumps({"code": code, "modules": sorted(sys.modules),
    "gc_enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
    "collections": len(collections)}))
"""


def _upload(
    argv: list[str], cache: Path, *, codes: tuple[int | None, ...] = (0, None)
) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", UPLOAD, json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "XDG_CACHE_HOME": str(cache)},
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT:")), None)
    assert line is not None, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(line[len("RESULT:") :])
    assert result["code"] in (0, None), done.stdout + done.stderr
    return result


def test_a_one_file_upload_imports_only_what_it_needs(
    s3_server: LocalS3Server, tmp_path: Path
) -> None:
    from tests.conftest import s3_client

    bucket = f"t-{uuid.uuid4().hex[:20]}"
    s3_client(s3_server.endpoint_url).create_bucket(Bucket=bucket)
    (tmp_path / "one.txt").write_bytes(b"x" * 1024)
    cache = tmp_path / "cache"
    runs = []
    for n in range(2):  # the first run fills botocore's model cache, the second reads it
        argv = [
            *(["-q"] if n else []),
            "--endpoint-url",
            s3_server.endpoint_url,
            "upload",
            str(tmp_path / "one.txt"),
            f"s3://{bucket}/run{n}",
            "--ledger",
            str(tmp_path / f"ledger{n}.db"),
        ]
        runs.append(_upload(argv, cache))
    assert list(cache.glob("s3stow/botocore/botocore-*/*.json")), "no model was cached"
    assert "rich" in runs[0]["modules"]  # the summary is printed with rich
    assert "rich" not in runs[1]["modules"]  # -q prints no summary: no rich
    # -q draws no progress and no run here writes a status file: neither is imported
    assert "s3stow.report.progress" in runs[0]["modules"]
    assert not {"s3stow.report.progress", "s3stow.report.status"} & set(runs[1]["modules"])
    for result in runs:
        modules = set(result["modules"])
        assert "botocore.client" in modules  # it did send through botocore
        present = [m for m in NOT_IN_AN_UPLOAD if m in modules]
        assert present == [], f"a one-file upload imported {present}"
        assert len(modules) <= MODULE_BOUND, (
            f"{len(modules)} modules imported (bound {MODULE_BOUND}): a new import at start-up?"
        )
        # the collector was held during start-up and runs again, with start-up frozen
        assert result["gc_enabled"]
        assert result["frozen"] > 10_000
        # held until the run decided about its file (StartupOver): not through botocore's
        # import and the client's creation (about 90 collections when released with the
        # settings), only for the request and the ledger after it (about 10)
        assert result["collections"] < 40, result["collections"]
    assert s3_client(s3_server.endpoint_url).head_object(Bucket=bucket, Key="run1/one.txt")
    # the same upload again: the ledger settles it, so no request, and no botocore client
    # or response parser is even imported (about 0.1 s of a no-op re-run's CPU)
    again = set(_upload(argv, cache)["modules"])
    assert not {"botocore.client", "botocore.parsers", "botocore.session"} & again
    # --force: decided before any request, the upload still holds the collector until
    # its transfer made the client (released at that decision: about 90 collections)
    forced = _upload([*argv, "--force"], cache)
    assert "botocore.client" in forced["modules"]
    assert forced["collections"] < 40, forced["collections"]


def test_a_retry_holds_the_collector_until_its_client_is_made(
    s3_server: LocalS3Server, tmp_path: Path
) -> None:
    """``retry`` decides every item before any request (as ``upload --force``), so it
    keeps the start-up collector held until its transfer made the client; released with
    the settings, botocore's import and the client ran with about 90 collections."""
    from tests.conftest import s3_client

    bucket = f"t-{uuid.uuid4().hex[:20]}"
    s3 = s3_client(s3_server.endpoint_url)
    s3.create_bucket(Bucket=bucket)
    (tmp_path / "one.txt").write_bytes(b"x" * 1024)
    log = tmp_path / "errors.log"
    log.write_text(
        f"upload failed: ./one.txt to s3://{bucket}/one.txt An error occurred (SlowDown) "
        "when calling the PutObject operation (reached max retries: 4): Please reduce "
        "your request rate.\n"
    )
    argv = ["-q", "--endpoint-url", s3_server.endpoint_url, "retry", "--from", str(log)]
    argv += ["--base-dir", str(tmp_path), "--ledger", str(tmp_path / "l.db")]
    result = _upload(argv, tmp_path / "cache")
    assert "botocore.client" in result["modules"]
    assert result["gc_enabled"]
    assert result["collections"] < 40, result["collections"]
    assert s3.head_object(Bucket=bucket, Key="one.txt")["ContentLength"] == 1024


def test_archive_run_and_restore_hold_the_collector_until_the_client_is_made(
    s3_server: LocalS3Server, tmp_path: Path
) -> None:
    """``archive run`` decides its rows' files before any request and ``archive
    restore`` is a restore: both keep the start-up collector held until their transfer
    made the client (released with the settings: about 90 collections more)."""
    from s3stow.archive.demo import init_demo
    from tests.conftest import s3_client

    bucket = f"t-{uuid.uuid4().hex[:20]}"
    s3_client(s3_server.endpoint_url).create_bucket(Bucket=bucket)
    db, root = tmp_path / "demo.db", tmp_path / "media"
    init_demo(db, root)
    with sqlite3.connect(db) as conn:  # the demo's rows without a file: a refusal releases it
        conn.execute(
            "DELETE FROM post_media WHERE media_id IN ('med-0007', 'med-0027', 'med-0047')"
        )
    common = ["-q", "--endpoint-url", s3_server.endpoint_url, "archive"]
    for argv in (
        [*common, "run", f"s3://{bucket}", "--db", str(db), "--media-root", str(root)],
        [*common, "restore", "--db", str(db), "--media-root", str(tmp_path / "back")],
    ):
        result = _upload([*argv, "--ledger", str(tmp_path / "l.db")], tmp_path / "cache")
        assert "botocore.client" in result["modules"], argv
        assert result["gc_enabled"]
        assert result["collections"] < 40, (argv, result["collections"])


def test_settings_defaults_are_fresh_for_every_instance() -> None:
    from s3stow.config import Settings

    settings = Settings()
    assert settings.include == []
    assert settings.metadata == {}
    assert settings.include is not Settings().include  # a new list for every instance
    assert settings.folder_types is not Settings().folder_types
    assert "gis_data" in settings.folder_types


def test_a_restore_imports_only_what_it_needs(s3_server: LocalS3Server, tmp_path: Path) -> None:
    """``restore -q`` prints no summary and draws no progress: no rich, as for ``upload
    -q`` (about 50 modules); without ``-q`` the summary is printed with rich."""
    from tests.conftest import s3_client

    bucket = f"t-{uuid.uuid4().hex[:20]}"
    s3 = s3_client(s3_server.endpoint_url)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="p/one.txt", Body=b"x" * 1024)
    runs = []
    for n in range(2):
        argv = [
            *(["-q"] if n else []),
            "--endpoint-url",
            s3_server.endpoint_url,
            "restore",
            f"s3://{bucket}/p",
            str(tmp_path / f"out{n}"),
            "--ledger",
            str(tmp_path / f"ledger{n}.db"),
        ]
        runs.append(_upload(argv, tmp_path / "cache"))
        assert (tmp_path / f"out{n}" / "one.txt").read_bytes() == b"x" * 1024
    assert "rich" in runs[0]["modules"]  # the summary is printed with rich
    assert "rich" not in runs[1]["modules"]  # -q: no summary, no progress, no rich
    for result in runs:
        modules = set(result["modules"])
        present = [m for m in NOT_IN_AN_UPLOAD if m in modules]
        assert present == [], f"a restore imported {present}"
        assert result["collections"] < 40, result["collections"]  # held as an upload's
        assert len(modules) <= MODULE_BOUND, f"{len(modules)} modules (bound {MODULE_BOUND})"


HELD = """
import gc, runpy, sys
import s3stow  # as runpy imports the package before its __main__
collections = []  # at each collection: had the command line's imports begun?
gc.callbacks.append(
    lambda phase, info: phase == "start" and collections.append("typer" in sys.modules)
)
sys.argv = ["s3stow", "--version"]
try:
    runpy.run_module("s3stow", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print("COLLECTIONS:", sum(collections), "ENABLED:", gc.isenabled())
"""


def test_the_program_holds_the_collector_from_its_first_import() -> None:
    """``python -m s3stow`` (and the console script, ``s3stow.__main__:main``) holds the
    collector before importing the command line (typer and click: about 30
    collections), not only from ``cli.app.main`` on; it runs again at the end. Counted:
    the collections once typer's import has begun (before it, compiling s3stow's own
    first modules without a bytecode cache may run one)."""
    done = subprocess.run(
        [sys.executable, "-c", HELD], capture_output=True, text=True, timeout=60, check=False
    )
    assert "s3stow " in done.stdout, done.stdout + done.stderr
    assert "COLLECTIONS: 0 ENABLED: True" in done.stdout, done.stdout


def test_the_collector_held_by_upload_and_restore_runs_once_a_client_is_made() -> None:
    """``settings(keep_held=True)`` leaves the collector held until ``make_client`` has
    made a client (or ``StartupOver`` sees the first decision): botocore's import and
    the client's creation run without collections, and are frozen with start-up."""
    import gc

    from s3stow.cli import collector
    from s3stow.cli.globalopts import GlobalOptions
    from s3stow.store import modelcache
    from s3stow.store.client import make_client

    was, cache = gc.isenabled(), modelcache._DIRECTORY["path"]
    try:
        collector.hold_collector()
        assert not gc.isenabled()
        settings = GlobalOptions(endpoint_url="http://127.0.0.1:9").settings(keep_held=True)
        assert not gc.isenabled()  # still held: no client yet
        make_client(settings)
        assert gc.isenabled()
        assert not collector._COLLECTOR["held"]
        collector.hold_collector()
        GlobalOptions().settings()  # any other command: released with the settings
        assert gc.isenabled()
    finally:
        collector.release_collector()
        gc.unfreeze()
        modelcache.use_directory(cache)  # settings() turned the model cache on
        if not was:
            gc.disable()


def test_commands_that_run_long_release_the_collector() -> None:
    """The collector held at start-up comes back once the settings are resolved; the
    commands that run long without settings release it themselves."""
    from s3stow.cli import collector, globalopts

    assert globalopts.release_collector is collector.release_collector
    source = Path(globalopts.__file__).read_text()
    assert "release_collector()" in source.split("def settings(", 1)[1].split("\n    def ", 1)[0]
    cli = Path(globalopts.__file__).parent
    for module in set(COMMANDS.values()) - {"completion"}:
        text = (cli / f"{module}.py").read_text()
        assert ".settings(" in text or "release_collector()" in text, module
    serve = (cli / "status.py").read_text().split("def _serve(", 1)[1]
    assert serve.index("release_collector()") < serve.index("serve_status(path")
