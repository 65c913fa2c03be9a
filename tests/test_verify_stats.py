"""``s3stow verify`` classifies every path with its tier; ``s3stow stats`` adds up."""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from s3stow.ledger import open_ledger
from s3stow.ledger.queries import totals_by
from s3stow.models import Status, UploadResult
from tests.conftest import ledger_rows, make_tree


def _classes(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {f["key"]: f["class"] for f in json.loads(result.stdout)["findings"]}


@pytest.mark.engines
def test_clean_tree_verifies_ok(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 10, "d/b.bin": 6 * 1024 * 1024, "d/c.json": 5})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    result = cli("--json", "verify", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert result.code == 0, result.output
    data = json.loads(result.stdout)
    assert data["summary"] == {"ok": 3}
    assert {f["tier"] for f in data["findings"]} == {"ledger"}
    deep = cli("--json", "verify", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--deep")
    assert deep.code == 0
    assert {f["tier"] for f in json.loads(deep.stdout)["findings"]} == {"checksum"}


@pytest.mark.engines
def test_a_file_the_upload_refuses_is_not_uploadable(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A local file ``upload`` refuses is not in S3, so the tree is not ok: a control
    character in its name (an unsafe key) and two names with one NFC form (one key:
    the upload refuses both) are each named with the reason, and verify exits 1."""
    make_tree(
        tmp_path / "src",
        {"a.txt": 10, "tab\tx.txt": 5, "caf\u00e9.txt": 3, "cafe\u0301.txt": 4},
    )
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 1
    result = cli("--json", "verify", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert result.code == 1, result.output
    data = json.loads(result.stdout)
    assert data["summary"] == {"ok": 1, "not-uploadable": 3}
    refused = {
        Path(f["path"]).name: f["detail"]
        for f in data["findings"]
        if f["class"] == "not-uploadable"
    }
    assert "control character" in refused.pop("tab\tx.txt")
    assert set(refused) == {"caf\u00e9.txt", "cafe\u0301.txt"}
    assert all("KeyCollision" in detail for detail in refused.values()), refused
    # what people read: the key escaped, on one line
    human = cli("verify", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert "not-uploadable  p/tab\\tx.txt" in human.output, human.output


def test_a_ledger_inside_the_tree_is_not_a_missing_file(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``upload`` leaves out its own ledger (and its -wal/-shm) when it lives in the
    tree; ``verify`` does too, instead of calling them missing (it did, exit 1)."""
    make_tree(tmp_path / "src", {"a.txt": 10})
    ledger = str(Path("src") / "ledger.db")
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", ledger).code == 0
    result = cli("--json", "verify", "src", f"s3://{bucket}/p", "--ledger", ledger)
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["summary"] == {"ok": 1}


def test_keys_are_shown_as_they_are_not_as_markup(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A key that looks like rich markup is printed whole in verify's table (it was
    shown as ``p/b.txt``, in bold, which is another key)."""
    make_tree(tmp_path / "src", {"[bold]b.txt": 3})
    result = cli("verify", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert result.code == 1
    assert "missing  p/[bold]b.txt" in result.output, result.output


def test_each_problem_is_classified(proxied_cli, proxy, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tree = make_tree(tmp_path / "src", {f"f{i}.txt": 100 for i in range(6)})
    assert proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    s3.delete_object(Bucket=bucket, Key="p/f0.txt")  # missing (ledger says done)
    s3.put_object(Bucket=bucket, Key="p/f1.txt", Body=b"x" * 100)  # same size, other bytes
    s3.put_object(Bucket=bucket, Key="p/f2.txt", Body=b"short")  # size mismatch
    (tmp_path / "src" / "f3.txt").unlink()  # local file gone
    later = time.time() + 100
    os.utime(tmp_path / "src" / "f4.txt", (later, later))  # changed locally
    s3.put_object(Bucket=bucket, Key="p/extra.txt", Body=b"orphan")  # orphan
    (tmp_path / "src" / "new.txt").write_bytes(b"never uploaded")  # missing
    proxy.log.clear()
    result = proxied_cli(
        "--json", "verify", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--report", "report.csv"
    )
    assert result.code == 1
    classes = _classes(result)
    assert classes == {
        "p/f0.txt": "ledger-done-but-gone",
        "p/f1.txt": "ok",
        "p/f2.txt": "size-mismatch",
        "p/f3.txt": "local-missing",
        "p/f4.txt": "changed-locally",
        "p/f5.txt": "ok",
        "p/extra.txt": "orphan",
        "p/new.txt": "missing",
    }
    assert len(proxy.requests(r"^GET .*list-type=2")) == 1
    assert proxy.requests(r"^HEAD /[^?]+/p/") == []  # the ledger settled the rest
    findings = json.loads(result.stdout)["findings"]
    assert findings[0]["class"] != "ok"  # problems first
    with open(tmp_path / "report.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 8
    deep = proxied_cli("--json", "verify", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--deep")
    assert _classes(deep)["p/f1.txt"] == "checksum-mismatch"  # only --deep sees it
    fixed = proxied_cli("verify", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--deep", "--fix")
    assert "fix: 4 re-uploaded" in fixed.stdout  # f4 was touched, same bytes: ok by --deep
    assert fixed.code == 1  # the orphan and the local file gone are no --fix's to fix
    again = proxied_cli("--json", "verify", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--deep")
    left = {k: c for k, c in _classes(again).items() if c != "ok"}
    assert left == {"p/f3.txt": "local-missing", "p/extra.txt": "orphan"}
    assert s3.get_object(Bucket=bucket, Key="p/f1.txt")["Body"].read() == tree["f1.txt"]


def test_stats_match_hand_computed_numbers(tmp_path: Path, cli) -> None:  # type: ignore[no-untyped-def]
    db = tmp_path / "l.db"
    ledger = open_ledger(str(db))
    rows = [
        ("a/1.jpg", Status.DONE, 100, "a"),
        ("a/2.jpg", Status.DONE, 50, "a"),
        ("a/3.png", Status.FAILED, 10, "a"),
        ("b/4.jpg", Status.DONE, 1, "b"),
        ("b/5.txt", Status.CHANGED, 7, "b"),
    ]
    for key, status, size, group in rows:
        error = "SlowDown" if status == Status.FAILED else None
        ledger.record(
            UploadResult(
                Path(key),
                "bkt",
                key,
                status,
                size=size,
                error_class=error,
                error="slow" if error else None,
            ),
            mtime_ns=1,
            run_id="r1",
            group=group,
        )
    ledger.flush()
    by_group = {g.name: g for g in totals_by(ledger, "group")}
    assert (by_group["a"].items, by_group["a"].done, by_group["a"].bytes) == (3, 2, 160)
    assert (by_group["b"].done_bytes, by_group["b"].changed) == (1, 1)
    by_ext = {g.name: g.items for g in totals_by(ledger, "ext")}
    assert by_ext == {"jpg": 3, "png": 1, "txt": 1}
    ledger.close()
    result = cli("--json", "stats", "--ledger", str(db), "--by", "status")
    data = json.loads(result.stdout)
    assert data["overall"]["items"] == 5
    assert data["overall"]["done"] == 3
    assert data["overall"]["percent_done"] == 60.0
    assert data["failures"][0]["error_class"] == "SlowDown"
    assert data["failures"][0]["category"] == "throttling"
    text = cli("stats", "--ledger", str(db))
    assert "Overall" in text.stdout
    assert max(len(line) for line in text.stdout.splitlines()) < 200  # piped: no wide rule
    assert "throttling" in text.stdout
    assert cli("stats", "--ledger", str(db), "--by", "colour").code == 2


def test_stats_after_upload_groups_by_folder(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"x/a.txt": 1, "x/b.txt": 2, "y/c.txt": 3})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    data = json.loads(cli("--json", "stats", "--ledger", "l.db", "--bucket", bucket).stdout)
    assert {g["name"]: g["items"] for g in data["groups"]} == {"x": 2, "y": 1}
    with sqlite3.connect(tmp_path / "l.db") as conn:
        assert conn.execute("SELECT COUNT(*) FROM items WHERE grp IS NULL").fetchone() == (0,)


def test_stats_of_a_run_that_is_no_upload_says_so(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``--run`` with a mistyped id printed a table of zeros (exit 0); ``restore --run``
    says "no run" for the same id. A restore's id shows what that restore restored."""
    make_tree(tmp_path / "src", {"a.txt": 3})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    assert cli("restore", f"s3://{bucket}/p", "out", "--ledger", "l.db").code == 0
    runs = {
        command: run
        for run, command in ledger_rows(tmp_path / "l.db", "SELECT run_id, command FROM runs")
    }
    upload = cli("--json", "stats", "--run", runs["upload"], "--ledger", "l.db")
    assert upload.code == 0, upload.output
    assert json.loads(upload.stdout)["overall"]["done"] == 1
    assert json.loads(upload.stdout)["restores"] is None  # an upload run restored nothing
    for flags in ((), ("--json",)):
        result = cli(*flags, "stats", "--run", "no-such-run", "--ledger", "l.db")
        assert result.code == 2, result.output
        assert "no run 'no-such-run' in the ledger" in result.stderr
        assert result.stdout == ""
    restore = cli("--json", "stats", "--run", runs["restore"], "--ledger", "l.db")
    assert restore.code == 0, restore.output
    data = json.loads(restore.stdout)
    assert data["restores"] == {
        "items": 1, "bytes": 3, "restored": 1, "bytes_restored": 3, "failed": 0, "in_progress": 0
    }  # fmt: skip
    assert data["overall"]["items"] == 0
    text = cli("stats", "--run", runs["restore"], "--ledger", "l.db")
    assert text.code == 0, text.output
    assert f"run {runs['restore']} is a restore" in text.stdout
    assert "restores" in text.stdout


def test_stats_counts_restores_beside_uploads(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``stats`` counted uploads only: a ledger's restores were nowhere to be seen."""
    make_tree(tmp_path / "src", {"a.txt": 3, "b.txt": 5, "c.txt": 7})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    before = json.loads(cli("--json", "stats", "--ledger", "l.db").stdout)
    assert before["restores"]["items"] == 0
    assert "restores" not in cli("stats", "--ledger", "l.db").stdout  # none: no section
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.txt").write_bytes(b"different")  # kept: local-exists, failed
    assert cli("restore", f"s3://{bucket}/p", "out", "--ledger", "l.db").code == 1
    data = json.loads(cli("--json", "stats", "--ledger", "l.db").stdout)
    assert data["overall"]["done"] == 3
    assert data["restores"]["restored"] == 2
    assert data["restores"]["bytes_restored"] == 10
    assert data["restores"]["failed"] == 1
    text = cli("stats", "--ledger", "l.db")
    assert text.code == 0
    assert "restores" in text.stdout
    assert "restored" in text.stdout


def test_stats_shows_restore_failures_by_error_class(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``stats`` counted the restores that failed but, unlike the uploads' failures, not
    by error class: what went wrong (a local file kept, an object deleted since its
    upload run) was only in the restore's own output."""
    make_tree(tmp_path / "src", {"a.txt": 3, "b.txt": 5, "c.txt": 7, "d.txt": 9})
    up = cli("--json", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert up.code == 0, up.output
    run = json.loads(up.stdout.splitlines()[-1])["run_id"]
    s3.delete_object(Bucket=bucket, Key="p/c.txt")  # gone since the run stored it
    (tmp_path / "out").mkdir()
    for name in ("b.txt", "d.txt"):  # kept: local-exists, twice
        (tmp_path / "out" / name).write_bytes(b"different")
    back = cli("--json", "restore", "--run", run, "out", "--ledger", "l.db")
    assert back.code == 1, back.output
    restore_run = json.loads(back.stdout.splitlines()[-1])["run_id"]
    expected = [
        {"error_class": "local-exists", "category": "local file kept", "items": 2},
        {"error_class": "NoSuchKey", "category": "object changed", "items": 1},
    ]
    for flags in ((), ("--run", restore_run), ("--bucket", bucket)):
        data = json.loads(cli("--json", "stats", "--ledger", "l.db", *flags).stdout)
        assert data["restores"]["failed"] == 3
        failures = data["restore_failures"]
        assert [{k: f[k] for k in ("error_class", "category", "items")} for f in failures] == (
            expected
        ), flags
        assert "pass --overwrite to replace it" in failures[0]["latest_message"]
    upload_only = json.loads(cli("--json", "stats", "--ledger", "l.db", "--run", run).stdout)
    assert upload_only["restore_failures"] is None  # an upload run's id: its uploads only
    text = cli("stats", "--ledger", "l.db")
    assert text.code == 0, text.output
    shown = text.stdout.split("restores still failed, by error class")
    assert len(shown) == 2, text.stdout
    lines = shown[1].strip("\n").splitlines()
    assert re.match(r"^  local file kept +local-exists +2  \S", lines[0]), text.stdout
    assert re.match(r"^  object changed +NoSuchKey +1  s3://", lines[1]), text.stdout
    assert cli("restore", "--run", run, "out", "--ledger", "l.db", "--overwrite").code == 1
    after = json.loads(cli("--json", "stats", "--ledger", "l.db").stdout)
    assert [f["error_class"] for f in after["restore_failures"]] == ["NoSuchKey"]  # still


def test_stats_bucket_counts_that_buckets_failures_only(
    proxied_cli, proxy, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``stats --bucket B`` listed every bucket's upload failures by error class, while
    its table counted B's items only."""
    fast = {"S3STOW_RETRY_BASE_DELAY": "0.01", "S3STOW_MAX_ATTEMPTS": "1"}
    make_tree(tmp_path / "src", {"a.txt": 3, "b.txt": 5})
    proxy.add(r"^PUT /[^/]+/p/b\.txt", "status", times=100, status=503, code="SlowDown")
    up = ("upload", "src", "--ledger", "l.db")
    assert (
        proxied_cli(
            *up[:2], f"s3://{bucket}/p", *up[2:], env=fast | {"S3STOW_FILE_RETRIES": "0"}
        ).code
        == 1
    )
    proxy.reset()
    other = f"{bucket}-b"
    s3.create_bucket(Bucket=other)
    try:
        assert proxied_cli(*up[:2], f"s3://{other}/q", *up[2:]).code == 0
        mine = json.loads(
            proxied_cli("--json", "stats", "--ledger", "l.db", "--bucket", other).stdout
        )
        assert (mine["overall"]["items"], mine["failures"]) == (2, [])
        theirs = json.loads(
            proxied_cli("--json", "stats", "--ledger", "l.db", "--bucket", bucket).stdout
        )
        assert [f["error_class"] for f in theirs["failures"]] == ["SlowDown"]
    finally:
        for key in ("q/a.txt", "q/b.txt"):
            s3.delete_object(Bucket=other, Key=key)
        s3.delete_bucket(Bucket=other)


def test_stats_of_a_bucket_the_ledger_does_not_know_says_so(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``--bucket`` with a name no run used showed a table of zeros, exit 0."""
    make_tree(tmp_path / "src", {"a.txt": 3})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    assert cli("stats", "--ledger", "l.db", "--bucket", bucket).code == 0
    for flags in ((), ("--json",)):
        result = cli(*flags, "stats", "--ledger", "l.db", "--bucket", "not-this-one")
        assert result.code == 2, result.output
        assert "no bucket 'not-this-one' in the ledger" in result.stderr
        assert result.stdout == ""


def test_fix_that_fixed_everything_exits_0(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 10, "b.txt": 20})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    s3.delete_object(Bucket=bucket, Key="p/a.txt")
    (tmp_path / "src" / "c.txt").write_bytes(b"new")
    fixed = cli("verify", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--fix")
    assert "fix: 2 re-uploaded, 0 still failing" in fixed.stdout
    assert fixed.code == 0, fixed.output
    again = cli("verify", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert again.code == 0, again.output


def test_verify_checks_what_a_timestamped_project_upload_wrote(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Every option that shapes keys in upload exists in verify: the same command line
    verifies what the upload wrote, the run's --timestamp folder found in the bucket."""
    make_tree(
        tmp_path / "project",
        {"config/a.yaml": 3, "config/b/c.yaml": 4, "logs/run.log": 5, "top.txt": 1},
    )
    shaping = (
        "--layout", "project", "--project-key", "RMI25320", "--timestamp",
        "--strip-prefix", "b/", "--exclude", "*.log",
    )  # fmt: skip
    upload = cli("upload", "project", f"s3://{bucket}/p", *shaping, "--ledger", "l.db")
    assert upload.code == 0, upload.output
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert len(keys) == 2
    stamp = keys[0].split("/")[3]
    assert keys == [f"p/RMI25320/config/{stamp}/a.yaml", f"p/RMI25320/config/{stamp}/c.yaml"]
    for ledger in ("l.db", "other.db"):  # with the upload's ledger, and without it
        result = cli("verify", "project", f"s3://{bucket}/p", *shaping, "--ledger", ledger)
        assert result.code == 0, result.output
        assert f"timestamp folder: {stamp}" in result.stdout
        assert "2 ok" in result.stdout


def test_piped_verify_output_keeps_whole_keys(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    deep = "/".join(f"directory-number-{i}" for i in range(8))
    make_tree(tmp_path / "src", {f"{deep}/a-file-with-a-long-name.txt": 5})
    result = cli("verify", "src", f"s3://{bucket}/a-prefix", "--ledger", "l.db")  # a pipe
    assert result.code == 1
    key = f"a-prefix/{deep}/a-file-with-a-long-name.txt"
    line = next(x for x in result.stdout.splitlines() if x.lstrip().startswith("missing"))
    assert key in line, result.stdout  # whole, on one line


def test_one_long_key_leaves_the_other_rows_of_verify_readable(
    cli,  # type: ignore[no-untyped-def]
    bucket,
    tmp_path: Path,
) -> None:
    """The table was padded to the longest key: one 300-character key pushed the tier and
    the detail of every other row 300 columns right. The key column is at most 60 wide:
    piped, a longer key is whole on its line and shifts its own row only, no line ends in
    padding; on a terminal it wraps in its column, every character kept (no ellipsis);
    ``--json`` is as it was."""
    deep = "/".join(f"directory-number-{i:02}" for i in range(14))
    make_tree(tmp_path / "src", {f"{deep}/long.txt": 5, "a.txt": 1, "b.txt": 2})
    target = f"s3://{bucket}/p"
    piped = cli("verify", "src", target, "--ledger", "l.db")
    assert piped.code == 1
    long_key = f"p/{deep}/long.txt"
    lines = piped.stdout.splitlines()
    rows = [x for x in lines if x.startswith("missing")]
    assert len(rows) == 3, piped.stdout
    assert all(line == line.rstrip() for line in lines)
    short = [row for row in rows if long_key not in row]
    assert [row.split()[1] for row in short] == ["p/a.txt", "p/b.txt"]
    assert all(len(row) < 100 for row in short), piped.stdout  # not padded to the long key
    assert f"missing  {long_key}  listing  not in S3" in rows  # whole, on its line
    assert lines[0].index("tier") == short[0].index("listing")  # the short rows align
    terminal = cli(
        "verify", "src", target, "--ledger", "l.db", env={"FORCE_COLOR": "1", "COLUMNS": "100"}
    )
    shown = re.sub(r"\x1b\[[0-9;]*m", "", terminal.stdout).splitlines()
    assert "…" not in terminal.stdout
    assert all(len(line) <= 100 for line in shown)
    start, end = shown[0].index("key"), shown[0].index("tier")
    assert long_key in "".join(line[start:end].strip() for line in shown[1:])
    as_json = cli("--json", "verify", "src", target, "--ledger", "l.db")
    keys = {f["key"] for f in json.loads(as_json.stdout)["findings"]}
    assert keys == {long_key, "p/a.txt", "p/b.txt"}


@pytest.mark.engines
@pytest.mark.parametrize("algorithm", ["crc32", "sha256"])
def test_deep_rereads_a_file_uploaded_with_another_checksum(
    cli,  # type: ignore[no-untyped-def]
    bucket,
    tmp_path: Path,
    algorithm: str,
) -> None:
    """``verify --deep`` re-reads the file whatever checksum the upload used: a
    multipart object stored with CRC32 (full-object) or SHA-256 (COMPOSITE, over its
    part layout), whose file was then rewritten in place with its size and mtime kept,
    is a checksum-mismatch (verify, whose setting is CRC64NVME, called it ok by the
    ``mtime`` metadata, exit 0); the file as uploaded is ok by its checksum."""
    make_tree(tmp_path / "src", {"big.bin": 11 * 1024 * 1024})
    sizes = ("--multipart-threshold", "5MiB", "--part-size", "5MiB")
    upload = cli("upload", "src", f"s3://{bucket}/p", "--checksum", algorithm, *sizes)
    assert upload.code == 0, upload.output
    same = cli("--json", "verify", "src", f"s3://{bucket}/p", "--deep")
    assert same.code == 0, same.output
    assert json.loads(same.stdout)["findings"][0]["tier"] == "checksum"
    path = tmp_path / "src" / "big.bin"
    before = path.stat()
    with path.open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"rewritten in place")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    deep = cli("--json", "verify", "src", f"s3://{bucket}/p", "--deep")
    assert deep.code == 1, deep.output
    (finding,) = json.loads(deep.stdout)["findings"]
    assert (finding["class"], finding["tier"]) == ("checksum-mismatch", "checksum")
