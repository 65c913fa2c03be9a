"""The command line a sysadmin expects: global options before or after the command
name, help that teaches, and shell completion."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from s3stow.config import Settings
from s3stow.units import parse_size
from tests.conftest import make_tree
from tests.test_startup import COMMAND_LINES


def s3stow(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "s3stow", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def _keys(s3: Any, bucket: str) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


# ---- global options anywhere ----------------------------------------------------------
def test_global_options_work_after_the_command_name(s3_server, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "d", {"a.txt": 10})
    done = s3stow(
        "upload",
        "d",
        f"s3://{bucket}/p",
        "--endpoint-url",
        s3_server.endpoint_url,
        "--ledger",
        "l.db",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert _keys(s3, bucket) == {"p/a.txt"}
    assert '"event": "summary"' in done.stdout  # --json after the command too
    # a command of a group: bucket check, with the endpoint after it
    checked = s3stow("bucket", "check", bucket, "--endpoint-url", s3_server.endpoint_url, "--json")
    assert checked.returncode == 0, checked.stderr
    assert '"objects": 1' in checked.stdout


def test_a_global_option_given_twice_with_different_values_names_both(tmp_path: Path) -> None:
    make_tree(tmp_path / "d", {"a.txt": 1})
    done = s3stow(
        "--region", "eu-west-1", "upload", "d", "s3://bucket/p", "--region", "us-east-1",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert (
        "--region is given twice with different values: before the command (eu-west-1) "
        "and after 'upload' (us-east-1)" in done.stderr
    )
    assert "Traceback" not in done.stderr
    grouped = s3stow("--json", "bucket", "--profile", "a", "check", "b", "--profile", "b")
    assert grouped.returncode == 2
    assert "after 'bucket' (a) and after 'bucket check' (b)" in grouped.stderr


def test_the_same_value_twice_is_accepted_and_verbose_counts_add_up(
    s3_server,  # type: ignore[no-untyped-def]
    bucket: str,
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "d", {"a.txt": 10})
    done = s3stow(
        "-v", "--endpoint-url", s3_server.endpoint_url,
        "upload", "d", f"s3://{bucket}/p", "--ledger", "l.db",
        "--endpoint-url", s3_server.endpoint_url, "-v",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert " DEBUG " in done.stderr  # -v before and -v after: -vv


def test_no_command_option_shadows_a_global_one() -> None:
    from s3stow.cli.app import COMMANDS, _build_command
    from s3stow.cli.globalopts import GLOBAL_PARAMS

    global_names = {o for p in GLOBAL_PARAMS for o in (*p.opts, *p.secondary_opts)}
    commands = [_build_command(name) for name in COMMANDS]
    while commands:
        command = commands.pop()
        commands.extend(getattr(command, "commands", {}).values())
        for param in command.params:
            names = {*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])}
            assert not names & global_names, f"{command.name}: {names & global_names}"


# ---- help that teaches -----------------------------------------------------------------
def _help(command: list[str]) -> str:
    done = s3stow(*command, "--help", env={"COLUMNS": "100"})
    assert done.returncode == 0, done.stderr
    return done.stdout


GROUPS = [["bucket"], ["archive"], ["job"]]


@pytest.mark.parametrize(
    "command", [[], *GROUPS, *COMMAND_LINES], ids=lambda c: " ".join(c) or "s3stow"
)
def test_help_reads_as_a_user_types(command: list[str]) -> None:
    text = _help(command)
    usage = text.splitlines()[0]
    assert usage.startswith(f"Usage: {' '.join(['s3stow', *command])} [OPTIONS]"), usage
    assert "{" not in usage  # not {SRC... s3://BUCKET[/PREFIX]}...
    # no Python types: metavars a user reads
    assert not re.search(r"<(str|int|float|path|list\[\w+\]|bool)>", text), text
    # one way to show a default: [default: X] (never "[16]" or "[mirror]" in a sentence)
    for line in text.splitlines()[1:]:  # the usage line brackets optional arguments
        for bracket in re.findall(r"\[([^\]/]+)\]", line):
            assert bracket.startswith(("default: ", "required", "OPTIONS", "ARGS")), line
    assert "..." not in re.sub(r"\w\.\.\.|\[ARGS\]\.\.\.", "", text)  # nothing cut off
    # it ends with real examples, each a command line
    examples = text.split("\nExamples:\n")[1]
    lines = [line.strip() for line in examples.splitlines() if line.startswith("    s3stow ")]
    assert len(lines) >= 2, examples
    if command:
        assert "accepted after the command name as well as before it" in text


def test_a_command_list_shows_whole_descriptions() -> None:
    text = _help([])
    assert "Upload files and directory trees to S3, verified and resumable." in text
    retry = text.split("\n  retry ")[1].split("\n  verify ")[0]
    assert " ".join(retry.split()).endswith("or from a failures file or aws s3 log.")


def test_defaults_in_the_help_are_the_settings_defaults() -> None:
    from s3stow.cli.app import COMMANDS, _build_command
    from s3stow.cli.helptext import option_record

    fields = {f.name: f for f in dataclasses.fields(Settings)}
    checked = 0
    for name in COMMANDS:
        stack = [_build_command(name)]
        while stack:
            command = stack.pop()
            stack.extend(getattr(command, "commands", {}).values())
            for param in command.params:
                if param.param_type_name != "option" or param.name not in fields:
                    continue
                shown = re.search(r"\[default: ([^\]]+)\]$", option_record(param)[1])
                if not shown:
                    continue
                default = fields[param.name].default
                text = shown.group(1)
                if isinstance(default, int | float) and not isinstance(default, bool):
                    value = parse_size(text) if text[-1].isalpha() else float(text)
                    assert value == default, (command.name, param.name, text, default)
                elif default is not None:
                    assert text == str(default), (command.name, param.name, text, default)
                checked += 1
    assert checked >= 8


# ---- completion ------------------------------------------------------------------------
@pytest.mark.parametrize("shell", ["bash", "zsh", "fish", "powershell"])
def test_completion_script_for_each_shell(shell: str) -> None:
    done = s3stow("completion", shell)
    assert done.returncode == 0, done.stderr
    assert "_S3STOW_COMPLETE" in done.stdout


def test_completion_offers_commands_and_global_options_after_a_command() -> None:
    command = s3stow(
        env={"_S3STOW_COMPLETE": "complete_bash", "COMP_WORDS": "s3stow up", "COMP_CWORD": "1"}
    )
    assert command.stdout.split() == ["upload"]
    option = s3stow(
        env={
            "_S3STOW_COMPLETE": "complete_bash",
            "COMP_WORDS": "s3stow upload ./d s3://b --endpoint",
            "COMP_CWORD": "4",
        }
    )
    assert option.stdout.split() == ["--endpoint-url"]
    fish = s3stow(
        env={
            "_S3STOW_COMPLETE": "complete_fish",
            "_TYPER_COMPLETE_ARGS": "s3stow watch --incl",
            "_TYPER_COMPLETE_FISH_ACTION": "get-args",
        }
    )
    assert fish.stdout.startswith("--include"), fish.stdout


def test_completion_of_an_unknown_shell_names_the_choices() -> None:
    done = s3stow("completion", "tcsh")
    assert done.returncode == 2
    assert "s3stow completion bash|zsh|fish|powershell" in done.stderr


def test_one_table_style_everywhere() -> None:
    """Every table comes from report.console.table: no borders, bold header, numbers
    right-aligned; no command draws its own."""
    import s3stow.cli

    for module in Path(s3stow.cli.__file__).parent.glob("*.py"):
        assert "rich.table" not in module.read_text(encoding="utf-8"), module.name


def test_a_status_table_has_no_box(tmp_path: Path) -> None:
    status = tmp_path / "s.json"
    status.write_text(
        '{"phase": "uploading", "started_at": 0, "last_update": 0, "totals": {"files": 2, '
        '"uploaded": 1, "skipped": 0, "failed": 0, "bytes_uploaded": 5}, "folders": {"a": '
        '{"planned": 2, "uploaded": 1, "skipped": 0, "failed": 0, "bytes": 5}}}'
    )
    done = s3stow("status", str(status))
    assert done.returncode == 0, done.stderr
    assert not set("┃━┏┡│─") & set(done.stdout), done.stdout
    assert re.search(r"^group\s+planned\s+uploaded", done.stdout, flags=re.MULTILINE), done.stdout


# ---- warnings and dry-run listings ----------------------------------------------------
def test_a_warning_about_many_files_is_said_once_with_a_count(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {f"file{i:03d}.txt": 1 for i in range(60)})
    args = ("upload", "src", f"s3://{bucket}/p", "--layout", "date-folders", "--dry-run")
    done = cli(*args, "--ledger", "l.db")
    assert done.code == 0, done.output
    each = [line for line in done.stderr.splitlines() if "has no YYYYMMDD timestamp" in line]
    assert len(each) == 1, done.stderr  # the first as it happens ...
    assert (
        "60 files have no YYYYMMDD timestamp in their name: their mtime gave the date (e.g. "
        "file000.txt, file001.txt, file002.txt; -v lists every one)" in done.stderr
    )  # ... then how many in all
    # piped, a dry run lists every file (not "... and 10 more")
    planned = [line for line in done.stdout.splitlines() if line.startswith("  new ")]
    assert len(planned) == 60, done.stdout
    verbose = cli(*args, "--ledger", "l.db", "-v")
    each = [line for line in verbose.stderr.splitlines() if "has no YYYYMMDD timestamp" in line]
    assert len(each) == 60


def test_a_destination_named_like_its_file_is_said_to_be_a_prefix(cli, bucket, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``aws s3 cp report.pdf s3://b/docs/report.pdf`` writes the key ``docs/report.pdf``;
    s3stow's destination is a prefix, so the same words store
    ``docs/report.pdf/report.pdf``: a warning says so and how to get the other."""
    make_tree(tmp_path, {"report.pdf": 3, "dir/report.pdf": 3})
    done = cli("upload", "report.pdf", f"s3://{bucket}/docs/report.pdf", "--ledger", "l.db")
    assert done.code == 0, done.output
    assert (
        f"warning: report.pdf is stored as s3://{bucket}/docs/report.pdf/report.pdf: the "
        "destination is a bucket and prefix, under which a file keeps its name; give "
        f"s3://{bucket}/docs/ to store it as s3://{bucket}/docs/report.pdf"
    ) in done.stderr
    for quiet in (
        ("upload", "report.pdf", f"s3://{bucket}/docs/"),  # what the warning advises
        ("upload", "dir", f"s3://{bucket}/report.pdf"),  # a directory: a prefix is meant
        ("-q", "upload", "report.pdf", f"s3://{bucket}/report.pdf"),
    ):
        assert "warning" not in cli(*quiet, "--ledger", "l.db", "--dry-run").stderr, quiet


def test_a_dry_run_on_a_terminal_lists_the_first_files_and_says_how_to_see_all() -> None:
    from io import StringIO

    from rich.console import Console

    from s3stow.models import Decision, PlannedUpload, Reason, RunSummary, SourceFile
    from s3stow.report.console import print_summary

    summary = RunSummary("r", files=60)
    for i in range(60):
        src = SourceFile(Path(f"/d/f{i}"), f"f{i}", 1, 0, Path("/d"))
        summary.would_upload.append(Decision(PlannedUpload(src, "b", f"p/f{i}"), True, Reason.NEW))
    for list_all, shown in ((False, 50), (True, 60)):
        out = StringIO()
        print_summary(summary, Console(file=out, width=200), resume_hint=None, list_all=list_all)
        lines = out.getvalue().splitlines()
        assert len([line for line in lines if line.startswith("  new ")]) == shown
        pointer = "  ... and 10 more: -v lists every one, --json gives them as JSON lines"
        assert any(line.startswith(pointer) for line in lines) != list_all


def test_every_value_names_what_it_takes() -> None:
    """A metavar a user reads (PATTERN, SIZE, N, FILE|URL) on every option that takes a
    value and every argument, never one derived from a parameter's name."""
    from s3stow.cli.app import COMMANDS, _build_command

    for name in COMMANDS:
        stack = [_build_command(name)]
        while stack:
            command = stack.pop()
            stack.extend(getattr(command, "commands", {}).values())
            for param in command.params:
                takes_value = param.param_type_name == "argument" or not (
                    param.is_flag or param.count  # type: ignore[attr-defined]
                )
                assert not takes_value or param.metavar, f"{command.name} {param.name}"


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        (["upload"], "s3stow upload [OPTIONS] SRC... s3://BUCKET[/PREFIX]"),
        (["restore"], "s3stow restore [OPTIONS] [s3://BUCKET[/PREFIX]] DEST"),
        (["watch"], "s3stow watch [OPTIONS] DIR s3://BUCKET[/PREFIX]"),
        (["bucket", "setup"], "s3stow bucket setup [OPTIONS] BUCKET"),
        (["completion"], "s3stow completion [OPTIONS] [bash|zsh|fish|powershell]"),
    ],
)
def test_usage_lines_read_as_typed(command: list[str], usage: str) -> None:
    assert _help(command).splitlines()[0] == f"Usage: {usage}"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("upload", "d", "s3://bkt/a//b"), "the prefix of 's3://bkt/a//b' has an empty segment"),
        (("retry", "--from", "f.jsonl", "--prefix", "a//b"), "--prefix 'a//b' has an empty"),
        (("retry", "--from", "f.jsonl", "--prefix", "/a"), "--prefix '/a' starts with /"),
        (("bucket", "check", "bkt", "--prefix", "a//b"), "--prefix 'a//b' has an empty"),
        (("bucket", "setup", "bkt", "--prefix", "/logs"), "--prefix '/logs' starts with /"),
        (("bucket", "check", "bkt", "--prefix", "a/../b"), "--prefix 'a/../b' has a '..'"),
    ],
    ids=["upload-url", "retry", "retry-leading", "bucket-check", "bucket-setup", "dots"],
)
def test_a_prefix_option_is_as_strict_as_a_url(
    tmp_path: Path, args: tuple[str, ...], named: str
) -> None:
    """``retry --prefix`` and ``bucket --prefix`` took ``a//b`` as ``a/b/`` (and ``/a`` as
    ``a/``) where ``upload s3://b/a//b`` refused it: one rule now, exit 2 with the fix,
    before any request (the endpoint here answers nothing)."""
    make_tree(tmp_path / "d", {"a.txt": 1})
    (tmp_path / "f.jsonl").write_text(
        '{"path": "d/a.txt", "bucket": "bkt", "key": "x/a.txt", "status": "failed"}\n'
    )
    done = s3stow(
        "--endpoint-url",
        "http://127.0.0.1:9",
        *args,
        "--ledger" if args[0] != "bucket" else "-q",
        *(["l.db"] if args[0] != "bucket" else []),
        cwd=tmp_path,
        env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"},
    )
    assert done.returncode == 2, done.stderr
    assert named in done.stderr
    assert "hint: write " in done.stderr
    assert "Traceback" not in done.stderr
