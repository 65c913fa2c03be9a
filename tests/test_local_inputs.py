"""Local paths and patterns given on the command line, odd ones included: an empty path
(a shell variable left unset) or an invalid pattern is refused with its documented exit
code and a message naming it and the fix, never taken as something else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import make_tree


def _keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


def test_an_empty_local_path_is_refused_not_the_current_folder(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``upload "" s3://b/p`` (an unset variable) uploaded the current folder, exit 0;
    verify, watch, job plan and retry's --from, --base-dir took ``.`` the same way."""
    make_tree(tmp_path, {"a.txt": 3, "d/b.txt": 4})
    dest = f"s3://{bucket}/p"
    cases = {
        ("upload", "", dest): "the source path is empty",
        ("upload", "d", " ", dest): "the source path is empty",
        ("--json", "upload", "", dest): "the source path is empty",
        ("verify", "", dest): "the source path is empty",
        ("job", "plan", "", dest, "--job", "j"): "the source path is empty",
        ("watch", "", dest, "--once"): "the folder to watch is empty",
        ("watch", "d", dest, "--once", "--after-upload", "move:"): "move: is empty",
        ("retry", "--from", ""): "the file of --from is empty",
        ("retry", "--from", "f.jsonl", "--base-dir", ""): "the folder of --base-dir is empty",
    }
    for args, said in cases.items():
        result = cli(*args, "--ledger", "l.db")
        assert result.code == 2, (args, result.output)
        assert said in result.stderr, (args, result.stderr)
        assert "check the variable that should hold it" in result.stderr
        assert "Traceback" not in result.output
    assert _keys(s3, bucket) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "d"]


def test_an_include_or_exclude_that_could_match_nothing_is_refused(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``--include '['`` (a set never closed) selected nothing, silently: pathspec, as
    git, takes it as a pattern that matches nothing; ``--exclude '[z-a]'`` was a
    traceback. Each is refused (exit 2) naming the pattern and the fix."""
    make_tree(tmp_path / "src", {"a.txt": 3, "[x].txt": 4, "#n.txt": 5})
    dest = f"s3://{bucket}/p"
    cases = {
        ("--include", "["): ("--include '[' would match no path", "write \\[ (or [[])"),
        ("--exclude", "d/[ab"): ("--exclude 'd/[ab' would match no path", "close the set"),
        ("--include", "#n.txt"): ("a pattern starting with # is a comment", "write \\#n.txt"),
        ("--exclude", "[z-a]"): ("--exclude '[z-a]' is invalid", "[a-z]"),
    }
    for flags, (said, fix) in cases.items():
        for command in (
            ("upload", "src", dest),
            ("restore", dest, "out"),
            ("watch", "src", dest, "--once"),
        ):
            result = cli(*command, *flags, "--ledger", "l.db")
            assert result.code == 2, (command, flags, result.output)
            assert said in result.stderr, (command, result.stderr)
            assert fix in result.stderr, (command, result.stderr)
            assert "Traceback" not in result.output
    assert _keys(s3, bucket) == []
    # the literal forms the hints give select the names they spell
    for pattern in ("\\[x].txt", "[[]x].txt", "\\#n.txt"):
        result = cli("--json", "upload", "src", dest, "--include", pattern, "--ledger", "l.db")
        assert result.code == 0, (pattern, result.output)
    assert sorted(_keys(s3, bucket)) == ["p/#n.txt", "p/[x].txt"]


def test_a_source_given_twice_is_uploaded_once(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``upload d d s3://b/p`` (or ``d/a.txt`` beside ``d``) refused every file as
    colliding with itself ("is also the key of ; neither is uploaded"), exit 1."""
    make_tree(tmp_path / "d", {"a.txt": 3, "e/b.txt": 4})
    twice = cli("upload", "d", "./d", f"s3://{bucket}/p", "--ledger", "l.db")
    assert twice.code == 0, twice.output
    assert "./d names d again: taken once" in twice.stderr
    assert "2 uploaded, 0 skipped, 0 failed of 2 files" in twice.stdout
    inside = cli("upload", "d", "d/a.txt", f"s3://{bucket}/q", "--ledger", "l.db")
    assert inside.code == 0, inside.output
    assert "skipped: 1 deduplicated" in inside.stdout
    assert "KeyCollision" not in inside.output
    assert sorted(_keys(s3, bucket)) == ["p/a.txt", "p/e/b.txt", "q/a.txt", "q/e/b.txt"]
    checked = cli("verify", "d", "d", f"s3://{bucket}/p", "--ledger", "l.db")
    assert checked.code == 0, checked.output


def test_verify_refuses_a_report_it_cannot_write_and_a_negative_limit(
    cli, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``verify --report FOLDER`` (or a path below a file) ran the whole check, then
    ended in "unexpected IsADirectoryError ... please report it", exit 3; ``--limit -1``
    checked nothing and said "nothing to check", exit 0."""
    make_tree(tmp_path / "d", {"a.txt": 3})
    (tmp_path / "plain").write_text("a file")
    assert cli("upload", "d", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    cases = {
        ("--report", "d"): "cannot write the report d: it is a folder",
        ("--report", "plain/r.csv"): "cannot write the report plain/r.csv: plain is a file",
        ("--limit", "-1"): "--limit -1 is below 0",
    }
    for flags, said in cases.items():
        result = cli("verify", "d", f"s3://{bucket}/p", *flags, "--ledger", "l.db")
        assert result.code == 2, (flags, result.output)
        assert said in result.stderr, result.stderr
        assert "unexpected" not in result.output
    result = cli("verify", "d", f"s3://{bucket}/p", "--report", "new/r.csv", "--ledger", "l.db")
    assert result.code == 0, result.output
    assert (tmp_path / "new" / "r.csv").read_text().startswith("key,path,class")


def test_watch_refuses_a_status_file_it_cannot_write(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``watch --status-json FOLDER`` (or a path below a file) ended in "unexpected
    IsADirectoryError ... please report it", exit 3, as upload's did before."""
    make_tree(tmp_path / "d", {"a.txt": 3})
    (tmp_path / "plain").write_text("a file")
    cases = {
        "d": "cannot write the status file d: it is a folder",
        "plain/s.json": "cannot write the status file plain/s.json: plain is a file",
    }
    for path, said in cases.items():
        result = cli("watch", "d", f"s3://{bucket}/w", "--once", "--status-json", path)
        assert result.code == 2, (path, result.output)
        assert said in result.stderr, result.stderr
        assert "unexpected" not in result.output
