"""Startup stays light (lazy imports) and every command's help renders."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from s3stow import __version__
from s3stow.cli.app import COMMANDS

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
        "upload",
        "keyoptions",
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
