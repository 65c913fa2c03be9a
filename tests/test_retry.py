"""``s3stow retry``: from the ledger, from a failures file, from an aws s3 log."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import make_tree

LOG = Path(__file__).parent / "data" / "aws-s3-sync-errors.log"
FAST = {"S3STOW_RETRY_BASE_DELAY": "0.01", "S3STOW_MAX_ATTEMPTS": "1", "S3STOW_FILE_RETRIES": "0"}


def _keys(s3, bucket: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


@pytest.mark.engines
def test_retry_from_ledger_completes_only_the_failures(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {f"f{i}.txt": 20 for i in range(8)})
    proxy.add(r"^PUT /[^/]+/p/f(2|5)\.txt", "status", times=100, status=503, code="SlowDown")
    first = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env=FAST)
    assert first.code == 1
    listing = proxied_cli("retry", "--ledger", "l.db", "--list")
    assert listing.code == 0
    assert "throttling" in listing.stdout
    assert "SlowDown" in listing.stdout
    still = proxied_cli("retry", "--ledger", "l.db", env=FAST)  # fault still there
    assert still.code == 1
    proxy.reset()
    result = proxied_cli("retry", "--ledger", "l.db", "--max-attempts", "3")
    assert result.code == 0, result.output
    assert "2 items retried, 2 now done" in result.stdout
    assert sorted(r.split("?")[0] for r in proxy.requests(r"^PUT ")) == [
        f"PUT /{bucket}/p/f2.txt",
        f"PUT /{bucket}/p/f5.txt",
    ]
    assert _keys(s3, bucket) == {f"p/f{i}.txt" for i in range(8)}
    with sqlite3.connect(tmp_path / "l.db") as db:
        attempts = dict(db.execute("SELECT key, attempts FROM items"))
        history = db.execute("SELECT COUNT(*) FROM attempts WHERE key = 'p/f2.txt'").fetchone()
    assert attempts["p/f2.txt"] == 3  # upload + failed retry + successful retry
    assert history == (2,)  # both failures stay visible
    again = proxied_cli("retry", "--ledger", "l.db")
    assert again.code == 0
    assert "nothing to retry" in again.stdout


def _run_shown(output: str) -> str:
    """The run id a human summary ends its counts line with (``; run ID``)."""
    found = re.search(r"; runs? (\S+)$", output, re.MULTILINE)
    assert found is not None, output
    return found.group(1)


def test_upload_retry_and_restore_say_their_run_id(
    proxied_cli, proxy, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A user needs a run's id for ``restore --run``, ``retry --run``, ``stats --run``:
    only ``--json`` said it. The summary's counts line ends with it (not a dry run's:
    it records no run; ``-q`` prints no summary)."""
    make_tree(tmp_path / "src", {f"f{i}.txt": 20 for i in range(3)})
    proxy.add(r"^PUT /[^/]+/p/f1\.txt", "status", times=100, status=503, code="SlowDown")
    up = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    dry = proxied_cli(*up, "--dry-run", env=FAST)
    assert dry.code == 0, dry.output
    assert "; run" not in dry.stdout
    first = proxied_cli(*up, env=FAST)
    assert first.code == 1
    run = _run_shown(first.stdout)
    assert proxied_cli("stats", "--ledger", "l.db", "--run", run).code == 0
    proxy.reset()
    assert "; run" not in proxied_cli("retry", "--ledger", "l.db", "--dry-run").stdout
    retried = proxied_cli("retry", "--ledger", "l.db", "--run", run)
    assert retried.code == 0, retried.output
    again = _run_shown(retried.stdout)
    assert again != run
    assert proxied_cli("stats", "--ledger", "l.db", "--run", again).code == 0
    back = proxied_cli("restore", f"s3://{bucket}/p", "out", "--ledger", "l.db", "--run", run)
    assert back.code == 0, back.output
    restored = _run_shown(back.stdout)
    stats = proxied_cli("--json", "stats", "--ledger", "l.db", "--run", restored)
    assert stats.code == 0, stats.output
    assert json.loads(stats.stdout)["restores"]["restored"] == 2  # f1 came from the retry
    quiet = proxied_cli("-q", *up)
    assert (quiet.code, quiet.stdout, quiet.stderr) == (0, "", "")


def test_a_retry_status_file_says_retry(proxied_cli, proxy, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A retry's ``--status-json`` said ``"command": "upload"``; ``s3stow status`` and
    the page named the run an upload."""
    from s3stow.report.statushtml import render_main

    make_tree(tmp_path / "src", {f"f{i}.txt": 20 for i in range(3)})
    proxy.add(r"^PUT /[^/]+/p/f1\.txt", "status", times=100, status=503, code="SlowDown")
    assert proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env=FAST).code == 1
    proxy.reset()
    result = proxied_cli("retry", "--ledger", "l.db", "--status-json", "st.json")
    assert result.code == 0, result.output
    status = json.loads((tmp_path / "st.json").read_text())
    assert status["command"] == "retry"
    assert (status["totals"]["uploaded"], status["totals"]["bytes_uploaded"]) == (1, 20)
    assert "s3stow retry: done" in render_main(status, path=tmp_path / "st.json")
    shown = proxied_cli("status", "st.json")
    assert shown.code == 0, shown.output
    assert "1 uploaded" in shown.stdout


def test_a_retry_of_many_runs_reports_them_all(proxied_cli, proxy, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Items of two runs are retried in two batches, each with its run's settings: each
    batch made its status file and failures file afresh, so both held the last batch's
    items only."""
    make_tree(tmp_path / "one", {"a.txt": 10})
    make_tree(tmp_path / "two", {"b.txt": 20})
    proxy.add(r"^PUT /[^/]+/p/[ab]\.txt", "status", times=1000, status=503, code="SlowDown")
    for folder in ("one", "two"):
        upload = proxied_cli("upload", folder, f"s3://{bucket}/p", "--ledger", "l.db", env=FAST)
        assert upload.code == 1, upload.output
    args = ("retry", "--ledger", "l.db", "--failures-file", "f.jsonl", "--status-json", "st.json")
    result = proxied_cli(*args, env=FAST)
    assert result.code == 1, result.output
    lines = [json.loads(line) for line in (tmp_path / "f.jsonl").read_text().splitlines()]
    assert sorted(line["key"] for line in lines) == ["p/a.txt", "p/b.txt"]
    totals = json.loads((tmp_path / "st.json").read_text())["totals"]
    assert (totals["files"], totals["failed"]) == (2, 2)


def _layout(tmp_path: Path, bucket: str) -> tuple[Path, Path]:
    make_tree(tmp_path / "astro", {"m31/andromeda 01.jpg": 300, "m42/orion.fits": 400})
    make_tree(tmp_path / "project", {"notes/log.txt": 50, "notes/extra.txt": 60})
    log = tmp_path / "errors.log"
    log.write_text(LOG.read_text().replace("BUCKET", bucket))
    return log, tmp_path / "project"


def test_retry_from_aws_log(proxied_cli, proxy, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, base = _layout(tmp_path, bucket)
    result = proxied_cli(
        "retry",
        "--from",
        str(log),
        "--base-dir",
        str(base),
        "--strip-prefix",
        "../astro/",
        "--prefix",
        "restored",
        "--ledger",
        "l.db",
    )
    assert result.code == 1  # the missing file is still failed
    assert "read 5 failed uploads" in result.stdout
    assert "1 line could not be parsed" in result.stdout
    assert "fatal error: An error occurred (AccessDenied)" in result.stdout
    assert "does not exist" in result.stdout
    assert "--base-dir" in result.stdout
    assert "missing.jpg" in result.stdout
    assert _keys(s3, bucket) == {
        "restored/m31/andromeda 01.jpg",
        "restored/m42/orion.fits",
        "restored/notes/log.txt",
        "restored/notes/extra.txt",
    }


def test_retry_refuses_keys_that_stay_unsafe(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    log, base = _layout(tmp_path, bucket)
    result = proxied_cli(
        "--json", "retry", "--from", str(log), "--base-dir", str(base), "--ledger", "l.db"
    )
    assert result.code == 1
    summary = json.loads(result.stdout.splitlines()[-1])
    classes = sorted(f["error_class"] for f in summary["failures"])
    assert classes == ["UnsafeKey", "UnsafeKey", "UnsafeKey"]
    assert _keys(s3, bucket) == {"notes/log.txt", "notes/extra.txt"}


def test_retry_dry_run_sends_no_write(proxied_cli, proxy, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log, base = _layout(tmp_path, bucket)
    result = proxied_cli(
        "retry",
        "--from",
        str(log),
        "--base-dir",
        str(base),
        "--strip-prefix",
        "../astro/",
        "--dry-run",
        "--ledger",
        "l.db",
    )
    assert "4 files would be uploaded" in result.stdout
    assert f"s3://{bucket}/m31/andromeda 01.jpg" in result.stdout
    assert proxy.requests(r"^(PUT|POST) ") == []


def test_retry_from_failures_file(proxied_cli, proxy, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 10, "b.txt": 10})
    proxy.add(r"^PUT /[^/]+/p/b\.txt", "status", times=100, status=500, code="InternalError")
    first = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--failures-file",
        "fail.jsonl",
        env=FAST,
    )
    assert first.code == 1
    proxy.reset()
    result = proxied_cli("retry", "--from", "fail.jsonl", "--ledger", "other.db")
    assert result.code == 0, result.output
    assert [r.split("?")[0] for r in proxy.requests(r"^PUT ")] == [f"PUT /{bucket}/p/b.txt"]


def test_retry_missing_log_exits_2(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("retry", "--from", "nope.log", "--ledger", "l.db")
    assert result.code == 2
    assert "does not exist" in result.stderr


def test_every_failure_of_a_run_is_listed_with_its_reason(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Failures found before any transfer (a name that is not UTF-8, two files taking
    one key) are in the ledger like any other: ``retry --list`` names them, and
    neither ``retry`` nor ``retry --from`` calls them an empty key or sends either of
    the two files that take one key."""
    import os

    import pytest

    contents = make_tree(tmp_path / "src", {"a/x.txt": 10, "b/x.txt": 20, "ok.txt": 5})
    try:
        with open(os.path.join(os.fsencode(tmp_path / "src"), b"bad\xff.txt"), "wb") as handle:
            handle.write(b"2")
    except OSError:
        pytest.skip("this filesystem refuses names that are not UTF-8")
    args = ("--ledger", "l.db")
    first = cli(
        "upload", "src", f"s3://{bucket}/p", "--key-template", "{name}", *args,
        "--failures-file", "failed.jsonl",
    )  # fmt: skip
    assert first.code == 1
    listed = cli("--json", "retry", "--list", *args)
    by_class = {row["error_class"]: row for row in json.loads(listed.stdout)["by_error"]}
    assert set(by_class) == {"InvalidName", "KeyCollision"}, listed.stdout
    assert "not valid UTF-8" in by_class["InvalidName"]["latest_message"]
    assert by_class["InvalidName"]["category"] == "key invalid"
    for command in (("retry", *args), ("retry", "--from", "failed.jsonl", *args)):
        again = cli("--json", *command)
        assert again.code == 1
        failures = json.loads(again.stdout.splitlines()[-1])["failures"]
        reasons = sorted(f"[{f['error_class']}] {f['error']}" for f in failures)
        assert "empty key" not in str(reasons)
        assert reasons[0].startswith("[InvalidName] name is not valid UTF-8")
        assert reasons[1].startswith("[KeyCollision] key 'p/x.txt' is also the key of")
    stored = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert stored == {"p/ok.txt": len(contents["ok.txt"])}  # neither colliding file is sent
    with sqlite3.connect(tmp_path / "l.db") as db:
        rows = dict(db.execute("SELECT key, status FROM items"))
    assert "p/x.txt" not in rows
    assert rows["p/ok.txt"] == "done"


def _options(*path: str) -> set[str]:
    """The option names of the command at ``path`` (``("job", "plan")``)."""
    import typer

    from s3stow.cli.app import app

    command: Any = typer.main.get_command(app)  # typer's own click
    for name in path:
        command = command.get_command(type(command).context_class(command), name)
        assert command is not None, name
    return {opt for param in command.params for opt in getattr(param, "opts", ())}


def test_every_key_shaping_option_of_upload_is_in_verify_retry_watch_and_job_plan() -> None:
    from s3stow.cli.keyoptions import KEY_OPTIONS, SELECTION_OPTIONS

    def flag(name: str) -> str:
        return "--" + name.replace("_", "-")

    upload = _options("upload")
    shaping = {flag(n) for n in KEY_OPTIONS}
    selecting = {flag(n) for n in SELECTION_OPTIONS}
    assert shaping | selecting <= upload
    assert {"--layout", "--key-template", "--strip-prefix", "--timestamp"} <= shaping
    for path in (("verify",), ("job", "plan")):
        assert shaping | selecting <= _options(*path), path
    for path in (("retry",), ("watch",)):
        assert shaping <= _options(*path), path


def test_retry_from_plans_keys_with_the_upload_options(
    proxied_cli, proxy, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    log, base = _layout(tmp_path, bucket)
    result = proxied_cli(
        "retry", "--from", str(log), "--base-dir", str(base), "--strip-prefix", "../astro/",
        "--prefix", "restored", "--key-template", "{prefix}{timestamp}/{rel_path}",
        "--custom-timestamp", "20250729_1615", "--ledger", "l.db",
    )  # fmt: skip
    assert result.code == 1  # the missing file is still failed
    assert _keys(s3, bucket) == {
        "restored/20250729_1615/m31/andromeda 01.jpg",
        "restored/20250729_1615/m42/orion.fits",
        "restored/20250729_1615/notes/log.txt",
        "restored/20250729_1615/notes/extra.txt",
    }
    from_ledger = proxied_cli("retry", "--layout", "date-folders", "--ledger", "l.db")
    assert from_ledger.code == 2
    assert "--layout plan the keys of what --from names" in from_ledger.stderr
    # --prefix is of --from too: without it, it was ignored without a word
    prefixed = proxied_cli("retry", "--prefix", "again", "--ledger", "l.db")
    assert prefixed.code == 2
    assert "--prefix plan the keys of what --from names" in prefixed.stderr


def test_a_ledger_that_does_not_exist_is_named_not_read_as_empty(
    cli,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """A mistyped ``--ledger`` of ``retry --list``, ``retry`` or ``stats`` created an
    empty ledger there and said "nothing is failed in the ledger" (exit 0) beside the
    real one that held failures. It is refused (exit 2) and nothing is created."""
    make_tree(tmp_path / "src", {"a.txt": 3})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    for command in (("retry", "--list"), ("retry",), ("stats",)):
        result = cli(*command, "--ledger", "ledgr.db")
        assert result.code == 2, (command, result.output)
        assert "no ledger at ledgr.db" in result.stderr
        assert not (tmp_path / "ledgr.db").exists()
    assert cli("stats", "--ledger", "l.db").code == 0
    assert cli("retry", "--list", "--ledger", "l.db").code == 0


def test_a_file_gone_is_reported_once_then_left_out_and_can_be_forgotten(
    proxied_cli, proxy, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A file deleted after its upload failed stayed in ``retry --list`` for ever, each
    retry failing it again as SourceMissing, with no way to drop it. A retry that finds
    it gone records ``SourceGone`` and says so that once; later retries and ``--list``
    leave it out (a line counts it) while it stays gone, a file put back is retried, and
    ``retry --forget`` (dry-run first) drops the ledger's row, its history kept."""
    make_tree(tmp_path / "src", {f"f{i}.txt": 20 for i in range(4)})
    proxy.add(r"^PUT /[^/]+/p/f[123]\.txt", "status", times=100, status=503, code="SlowDown")
    first = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env=FAST)
    assert first.code == 1
    proxy.reset()
    back = (tmp_path / "src" / "f3.txt").read_bytes()
    (tmp_path / "src" / "f1.txt").unlink()
    (tmp_path / "src" / "f3.txt").unlink()
    said = proxied_cli("retry", "--ledger", "l.db", "--failures-file", "still.jsonl")
    assert said.code == 1, said.output
    assert "f1.txt does not exist any more" in said.stdout  # reported, this once
    assert "retry --forget --error-class SourceGone" in said.stdout
    still = [json.loads(x) for x in (tmp_path / "still.jsonl").read_text().splitlines()]
    assert sorted(x["error_class"] for x in still) == ["SourceGone", "SourceGone"]
    assert _keys(s3, bucket) == {"p/f0.txt", "p/f2.txt"}
    listing = proxied_cli("--json", "retry", "--ledger", "l.db", "--list")
    assert listing.code == 0
    assert (json.loads(listing.stdout)["failed"], json.loads(listing.stdout)["gone"]) == (0, 2)
    human = proxied_cli("retry", "--ledger", "l.db", "--list")
    assert "2 items whose local file a retry found gone are left out" in human.stdout
    assert "SlowDown" not in human.stdout
    named = proxied_cli("retry", "--ledger", "l.db", "--list", "--error-class", "SourceGone")
    assert "source missing" in named.stdout  # listed when asked for by name
    before = len(proxy.requests(r"^PUT "))
    quiet = proxied_cli("retry", "--ledger", "l.db")
    assert quiet.code == 0, quiet.output  # nothing left to retry: not failed again
    assert "nothing to retry" in quiet.stdout
    assert "does not exist" not in quiet.output
    assert len(proxy.requests(r"^PUT ")) == before
    (tmp_path / "src" / "f3.txt").write_bytes(back)  # put back: retried
    again = proxied_cli("retry", "--ledger", "l.db")
    assert again.code == 0, again.output
    assert "1 item whose local file a retry found gone is left out" in again.stdout
    assert "p/f3.txt" in _keys(s3, bucket)
    dry = proxied_cli(
        "retry", "--ledger", "l.db", "--forget", "--dry-run", "--error-class", "SourceGone"
    )
    assert dry.code == 0, dry.output
    assert f"would forget  SourceGone  s3://{bucket}/p/f1.txt" in dry.stdout
    assert "nothing was changed (--dry-run)" in dry.stdout
    with sqlite3.connect(tmp_path / "l.db") as db:
        assert db.execute("SELECT status FROM items WHERE key = 'p/f1.txt'").fetchone()
    gone = proxied_cli(
        "--json", "retry", "--ledger", "l.db", "--forget", "--error-class", "SourceGone"
    )
    assert gone.code == 0, gone.output
    event = json.loads(gone.stdout)
    assert (event["forgotten"], event["dry_run"]) == (1, False)
    assert [item["key"] for item in event["items"]] == ["p/f1.txt"]
    with sqlite3.connect(tmp_path / "l.db") as db:
        assert db.execute("SELECT status FROM items WHERE key = 'p/f1.txt'").fetchone() is None
        history = db.execute("SELECT COUNT(*) FROM attempts WHERE key = 'p/f1.txt'").fetchone()
    assert history == (2,)  # SlowDown, then SourceGone: the history stays
    empty = proxied_cli("retry", "--ledger", "l.db", "--list")
    assert "nothing is failed in the ledger" in empty.stdout
    assert proxied_cli("retry", "--ledger", "l.db", "--forget", "--run", "nope").code == 2
    mixed = proxied_cli("retry", "--from", "still.jsonl", "--forget", "--ledger", "l.db")
    assert mixed.code == 2
    assert "--forget takes the ledger's failed items" in mixed.stderr


def test_retry_from_a_file_that_is_no_failures_file_is_a_usage_error(
    cli, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """The wrong file (a binary one, a text of escape sequences): "nothing to retry", exit
    0, after echoing its lines raw to the terminal (a clear-screen, a window title)."""
    binary = tmp_path / "junk.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    text = tmp_path / "notes.txt"
    text.write_text("hello\n\x1b[2J\x1b]0;title\x07\n")
    for wrong in (binary, text):
        result = cli("retry", "--from", str(wrong), "--ledger", "l.db")
        assert result.code == 2, result.output
        assert f"{wrong} is neither an s3stow failures file nor an aws s3 error log" in (
            result.stderr
        )
        assert "\x1b" not in result.output
    mixed = tmp_path / "mixed.log"  # a real failure beside junk: read, junk shown escaped
    mixed.write_text(
        f"\x1b[2Jjunk\nupload failed: ./a.txt to s3://{bucket}/x/a.txt An error occurred\n"
    )
    result = cli("retry", "--from", str(mixed), "--ledger", "l.db", "--dry-run")
    assert "read 1 failed upload" in result.stdout, result.output
    assert "line 1: \\x1b[2Jjunk" in result.stdout
    assert "\x1b" not in result.output


def test_an_unsafe_key_and_a_class_that_matches_nothing_are_said_as_they_are(
    cli, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A ledger retry told an unsafe key to "repair it with --strip-prefix/--prefix",
    which a ledger retry refuses (exit 2); ``--list --error-class Typo`` said "nothing is
    failed in the ledger" with failures in it."""
    make_tree(tmp_path / "src", {"ok.txt": 3, "new\nline.txt": 4})
    first = cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert first.code == 1, first.output
    again = cli("retry", "--ledger", "l.db")
    assert again.code == 1, again.output
    assert "rename the file, or upload it again with another --key-template" in again.stdout
    assert "--strip-prefix" not in again.stdout
    listed = cli("retry", "--list", "--ledger", "l.db", "--error-class", "UnsafeKye")
    assert listed.code == 0, listed.output
    assert "no failed upload of class UnsafeKye (failed classes: UnsafeKey)" in listed.stdout
    assert "nothing is failed" not in listed.stdout
