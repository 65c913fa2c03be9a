"""``s3stow restore`` end to end against the local server: the way back, verified,
resumable, and never at the cost of local data."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from s3stow.plan.failures import parse_lines
from tests.conftest import FIVE_MIB_PARTS, CliResult, kill_after_ranges, ledger_rows, make_tree

MiB = 1024 * 1024


def _events(result: CliResult, kind: str) -> list[dict[str, Any]]:
    found = []
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == kind:
                found.append(event)
    return found


def _results(result: CliResult) -> dict[str, dict[str, Any]]:
    return {event["key"]: event for event in _events(result, "result")}


def _summary(result: CliResult) -> dict[str, Any]:
    return _events(result, "summary")[-1]


def _object_gets(proxy: Any) -> list[tuple[str, str]]:
    """(request line, Range header) of every GET of an object (listings excluded)."""
    return [
        (line, headers.get("range", ""))
        for line, headers in zip(list(proxy.log), list(proxy.headers), strict=False)
        if line.startswith("GET ") and "list-type" not in line
    ]


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".s3stow-part")]


def _moto_transition(server: Any, path: str, body: dict[str, Any]) -> None:
    """moto's state manager (its own API, no S3 call): e.g. how many HEADs report a
    Glacier restore in progress before it completes."""
    import urllib.request

    request = urllib.request.Request(
        f"{server.endpoint_url}/moto-api/state-manager/{path}",
        data=json.dumps(body).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def test_tree_round_trip_bytes_mtimes_and_a_rerun_without_requests(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    spec: dict[str, int | bytes] = {
        "a.txt": 10,
        "dir/b.json": 2000,
        "dir/sub/c.bin": 70_000,
        "empty.dat": 0,
        "dir/sub/deep/d e f.xml": 5,
        "big.bin": 11 * MiB,  # 3 ranges of 5 MiB on the way back
    }
    tree = make_tree(tmp_path / "src", spec)
    mtimes = {rel: (tmp_path / "src" / rel).stat().st_mtime_ns for rel in tree}
    upload = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", *FIVE_MIB_PARTS)
    assert upload.code == 0, upload.output
    shutil.rmtree(tmp_path / "src")
    proxy.reset()
    args = ("--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db", *FIVE_MIB_PARTS)
    result = proxied_cli(*args)
    assert result.code == 0, result.output
    out = tmp_path / "out"
    for rel, data in tree.items():
        assert (out / rel).read_bytes() == data, rel
        assert abs((out / rel).stat().st_mtime_ns - mtimes[rel]) < 1000, rel  # microseconds kept
    results = _results(result)
    assert {r["status"] for r in results.values()} == {"done"}
    assert {r["tier"] for r in results.values()} == {"checksum"}  # CRC64NVME, combined for big
    ranges = [rng for line, rng in _object_gets(proxy) if "big.bin" in line]
    assert sorted(ranges) == [
        "bytes=0-5242879",
        "bytes=10485760-11534335",
        "bytes=5242880-10485759",
    ]
    assert _summary(result)["restored"] == 6
    assert _summary(result)["tiers"] == {"checksum": 6}
    assert not _leftovers(out)
    proxy.reset()
    again = proxied_cli(*args)
    assert again.code == 0, again.output
    assert _summary(again)["restored"] == 0
    assert _summary(again)["skipped"] == 6
    assert _object_gets(proxy) == []  # the ledger knew: not one HEAD or GET per file
    assert not proxy.requests(r"^HEAD ")


def test_kill9_during_a_ranged_download_resumes_only_missing_ranges(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    data = make_tree(tmp_path / "src", {"big.bin": 35 * MiB})["big.bin"]  # 7 ranges of 5 MiB
    assert proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    shutil.rmtree(tmp_path / "src")
    proxy.reset()
    proxy.add(r"^GET /[^?]*big\.bin", "delay", times=100, delay=0.6)
    args = ("restore", f"s3://{bucket}/p", "out", "--ledger", "l.db", *FIVE_MIB_PARTS)
    process = proxied_cli.start(*args, "--concurrency", "2")
    db = tmp_path / "l.db"
    recorded = kill_after_ranges(process, db)
    assert 2 <= len(recorded) < 7
    assert (tmp_path / "out" / ".big.bin.s3stow-part").exists()
    assert not (tmp_path / "out" / "big.bin").exists()  # never under its name unverified
    proxy.reset()
    result = proxied_cli(*args)
    assert result.code == 0, result.output
    sent = {
        int(re.match(r"bytes=(\d+)-", rng).group(1))  # type: ignore[union-attr]
        for line, rng in _object_gets(proxy)
    }
    assert sent == {i * 5 * MiB for i in range(7)} - recorded  # only what was missing
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert ledger_rows(db, "SELECT status, tier FROM restores") == [("done", "checksum")]
    assert ledger_rows(db, "SELECT COUNT(*) FROM restore_ranges") == [(0,)]
    assert not _leftovers(tmp_path / "out")


def test_an_interrupted_download_counts_what_it_received_as_the_status_file_does(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """Ctrl+C during a ranged download: the summary said "0 B" though the ranges it kept
    had arrived (the status file counted them); the run that resumed it counted the kept
    ranges as received in the status file (its summary did not)."""
    make_tree(tmp_path / "src", {"big.bin": 35 * MiB})  # 7 ranges of 5 MiB
    assert proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    proxy.reset()
    proxy.add(r"^GET /[^?]*big\.bin", "delay", times=100, delay=0.6)
    args = (
        "--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db", *FIVE_MIB_PARTS,
        "--concurrency", "2", "--status-json", "st.json",
    )  # fmt: skip
    process = proxied_cli.start(*args)
    deadline = time.monotonic() + 60
    while len(ledger_rows(tmp_path / "l.db", "SELECT first_byte FROM restore_ranges")) < 2:
        assert time.monotonic() < deadline, "no range recorded in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    kept = len(ledger_rows(tmp_path / "l.db", "SELECT first_byte FROM restore_ranges"))
    assert 2 <= kept < 7
    first = json.loads(stdout.splitlines()[-1])
    status = json.loads((tmp_path / "st.json").read_text())["totals"]
    assert (first["restored"], first["interrupted"]) == (0, True)
    assert first["bytes_restored"] == status["bytes_restored"] == kept * 5 * MiB
    # the object stopped mid-way is left for the next run, and said so
    assert first["unfinished"] == status["unfinished"] == 1
    assert first["walk_complete"] is None  # a listing's end is not known
    proxy.reset()
    again = proxied_cli(*args[1:])  # the human summary
    assert again.code == 0, again.output
    assert f"{kept * 5}.0 MiB resumed from an earlier run's ranges" in again.stdout
    assert f"; {(7 - kept) * 5}.0 MiB in " in again.stdout
    status = json.loads((tmp_path / "st.json").read_text())["totals"]
    assert status["bytes_restored"] == (7 - kept) * 5 * MiB
    (recorded,) = ledger_rows(
        tmp_path / "l.db", "SELECT summary FROM runs ORDER BY started_at DESC LIMIT 1"
    )[0]
    assert json.loads(recorded)["bytes_resumed"] == kept * 5 * MiB


def test_an_object_changed_since_the_recorded_ranges_starts_over(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {"big.bin": 12 * MiB})
    assert proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    proxy.reset()
    replaced = os.urandom(12 * MiB)

    def replace_object(_: str) -> None:  # after the first range is answered
        s3.put_object(Bucket=bucket, Key="p/big.bin", Body=replaced, ChecksumAlgorithm="CRC32C")

    proxy.add(r"^GET /[^?]*big\.bin", "callback", times=1, callback=replace_object)
    args = ("--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db", *FIVE_MIB_PARTS)
    first = proxied_cli(*args, "--concurrency", "1")
    assert first.code == 1
    assert _results(first)["p/big.bin"]["error_class"] == "changed-remotely"  # If-Match held
    assert not (tmp_path / "out" / "big.bin").exists()
    assert not _leftovers(tmp_path / "out")
    assert ledger_rows(tmp_path / "l.db", "SELECT COUNT(*) FROM restore_ranges") == [(0,)]
    again = proxied_cli(*args)
    assert again.code == 0, again.output
    assert (tmp_path / "out" / "big.bin").read_bytes() == replaced


def test_a_server_checksum_header_on_ranges_does_not_mislead(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    data = make_tree(tmp_path / "src", {"big.bin": 11 * MiB})["big.bin"]
    assert proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    # a server that puts the whole object's (here: a wrong) checksum on every range
    proxy.add(
        r"^GET /[^?]*big\.bin",
        "rewrite_header",
        times=100,
        header="x-amz-checksum-crc64nvme",
        value="AAAAAAAAAAA=",
    )
    args = ("--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db", *FIVE_MIB_PARTS)
    result = proxied_cli(*args)
    assert result.code == 0, result.output  # s3stow's proof decides, over the whole file
    assert (tmp_path / "out" / "big.bin").read_bytes() == data
    assert _results(result)["p/big.bin"]["tier"] == "checksum"


def test_corrupted_objects_are_checksum_mismatch_and_never_renamed(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    # "a-*" restore first (one file at a time): botocore sends the first GET of each
    # shape (whole, ranged), so the corrupted objects come through the fast path, which
    # leaves botocore's checksum validation out: the proof must catch them alone
    spec = {"a-small.bin": 3000, "a-big.bin": 11 * MiB, "small.bin": 3000, "big.bin": 11 * MiB}
    make_tree(tmp_path / "src", spec)
    upload = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", *FIVE_MIB_PARTS)
    assert upload.code == 0
    for key, size in (("p/small.bin", 3000), ("p/big.bin", 11 * MiB)):
        head = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        s3.put_object(  # other bytes, with the metadata and the checksum of the old ones
            Bucket=bucket,
            Key=key,
            Body=os.urandom(size),
            ChecksumAlgorithm="CRC64NVME",
            ChecksumCRC64NVME=head["ChecksumCRC64NVME"],
            Metadata=head["Metadata"],
        )
    out = tmp_path / "out"
    out.mkdir()
    (out / "small.bin").write_bytes(b"my own local file")
    proxy.reset()
    result = proxied_cli(
        "--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db", "--overwrite",
        "--failures-file", "failed.jsonl", "--concurrency", "1", *FIVE_MIB_PARTS,
    )  # fmt: skip
    assert result.code == 1
    results = _results(result)
    assert results["p/small.bin"]["error_class"] == "checksum-mismatch"
    assert results["p/big.bin"]["error_class"] == "checksum-mismatch"
    assert results["p/a-small.bin"]["status"] == results["p/a-big.bin"]["status"] == "done"
    assert (out / "small.bin").read_bytes() == b"my own local file"  # --overwrite kept it
    assert not (out / "big.bin").exists()
    assert not _leftovers(out)
    gets = [
        (line, "fastpath" in headers.get("user-agent", ""))
        for line, headers in zip(list(proxy.log), list(proxy.headers), strict=False)
        if line.startswith("GET ") and "list-type" not in line
    ]
    assert [fast for line, fast in gets if line.endswith("/p/small.bin")] == [True]
    assert [fast for line, fast in gets if line.endswith("/p/big.bin")] == [True] * 3
    statuses = ledger_rows(tmp_path / "l.db", "SELECT key, status FROM restores")
    assert {s for k, s in statuses if k in ("p/small.bin", "p/big.bin")} == {"failed"}
    lines = (tmp_path / "failed.jsonl").read_text().splitlines()
    assert {json.loads(line)["command"] for line in lines} == {"restore"}
    parsed = parse_lines(lines)  # `s3stow retry --from` must never upload these
    assert parsed.items == []
    assert (parsed.ignored, parsed.restores) == (2, 2)
    retried = proxied_cli("retry", "--from", "failed.jsonl", "--ledger", "l.db", "--dry-run")
    assert "2 failed restores left out" in retried.stdout, retried.output
    assert "each line's error says when that cannot help" in retried.stdout
    listed = proxied_cli("retry", "--list", "--ledger", "l.db")  # exit 1 points here
    assert listed.code == 0, listed.output
    assert "2 failed restores in the ledger" in listed.stdout  # it said "nothing is failed"
    assert "nothing is failed" not in listed.stdout
    listed_json = proxied_cli("--json", "retry", "--list", "--ledger", "l.db")
    assert json.loads(listed_json.stdout)["restores"] == 2


def test_hostile_keys_are_refused_and_nothing_escapes(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    hostile = [
        "p/../escape.txt",
        "p/a/../../escape2.txt",
        "p/a//double.txt",
        "p/./dot.txt",
        "p/link/pwned.txt",
    ]
    for key in ["p/ok.txt", "p/data", "p/data/inner.txt", *hostile]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"payload")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "out").mkdir()
    os.symlink(outside, tmp_path / "out" / "link")
    reports = tmp_path / "reports"

    def files() -> set[Path]:
        return {p for p in tmp_path.rglob("*") if reports not in p.parents and "l.db" not in p.name}

    before = files()
    result = cli(
        "--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db",
        "--status-json", "reports/status.json", "--failures-file", "reports/failed.jsonl",
    )  # fmt: skip
    assert result.code == 1
    status = json.loads((reports / "status.json").read_text())
    assert (status["phase"], status["totals"]["restored"], status["totals"]["failed"]) == (
        "done",
        2,
        6,
    )
    groups = status["folders"]  # every refused key in a group, as an upload's refusals
    for field, total in (("planned_files", "files"), ("failed", "failed")):
        assert sum(group[field] for group in groups.values()) == status["totals"][total]
    assert "(none)" not in _summary(result)["groups"]
    assert groups["data"]["failed"] == 1  # p/data/inner.txt
    paths = {f["key"]: f["path"] for f in status["failures"]}  # the file, never DEST
    assert paths["p/data/inner.txt"] == str(tmp_path / "out" / "data" / "inner.txt")
    assert paths["p/../escape.txt"] == str(tmp_path / "out") + "/../escape.txt"
    failed = (reports / "failed.jsonl").read_text().splitlines()
    assert len(failed) == 6
    assert str(tmp_path / "out") not in {json.loads(line)["path"] for line in failed}
    results = _results(result)
    assert {key: results[key]["error_class"] for key in hostile} == dict.fromkeys(
        hostile, "unsafe-path"
    )
    assert results["p/data/inner.txt"]["error_class"] == "path-collision"
    assert "not a folder" in results["p/data/inner.txt"]["error"]
    new = files() - before - {reports}
    assert new == {tmp_path / "out" / "ok.txt", tmp_path / "out" / "data"}
    assert list(outside.iterdir()) == []
    only = cli("restore", f"s3://{bucket}/p", "only", "--ledger", "l.db", "--include", "ok.txt")
    assert only.code == 0, only.output  # what is not selected is not even judged
    assert [p.name for p in (tmp_path / "only").iterdir()] == ["ok.txt"]


def test_local_files_are_compared_kept_or_replaced_only_when_asked(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    tree = make_tree(tmp_path / "src", {"same.txt": 100, "diff.txt": 100, "new.txt": 5})
    assert proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    out = tmp_path / "out"
    out.mkdir()
    (out / "same.txt").write_bytes(tree["same.txt"])
    (out / "diff.txt").write_bytes(b"d" * 100)
    proxy.reset()
    args = ("--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db")
    dry = proxied_cli(*args, "--dry-run")
    assert dry.code == 0, dry.output
    plans = {e["key"]: e["reason"] for e in _events(dry, "plan")}
    assert plans == {"p/same.txt": "local-exists", "p/diff.txt": "local-exists", "p/new.txt": "new"}
    # "restore" says whether it would be restored; "upload" is kept (older scripts)
    assert {(e["restore"], e["upload"]) for e in _events(dry, "plan")} == {(True, True)}
    assert [w["path"] for w in _summary(dry)["would_restore"]] == [
        str((out / name).resolve()) for name in ("diff.txt", "new.txt", "same.txt")
    ]
    assert not (out / "new.txt").exists()
    assert _object_gets(proxy) == []  # a dry run lists and reads nothing else
    assert ledger_rows(tmp_path / "l.db", "SELECT COUNT(*) FROM restores") == [(0,)]
    kept = proxied_cli(*args)
    assert kept.code == 1
    results = _results(kept)
    assert (results["p/same.txt"]["status"], results["p/same.txt"]["tier"]) == (
        "skipped",
        "checksum",
    )
    assert results["p/diff.txt"]["error_class"] == "local-exists"
    assert "--overwrite" in results["p/diff.txt"]["error"]
    assert (out / "diff.txt").read_bytes() == b"d" * 100
    assert (out / "new.txt").read_bytes() == tree["new.txt"]
    replaced = proxied_cli(*args, "--overwrite")
    assert replaced.code == 0, replaced.output
    assert (out / "diff.txt").read_bytes() == tree["diff.txt"]
    assert _summary(replaced)["restored"] == 1
    settled = proxied_cli(*args, "--dry-run")  # the ledger is read in a dry run too
    assert {(e["reason"], e["restore"]) for e in _events(settled, "plan")} == {
        ("ledger-done", False)
    }
    assert _summary(settled)["would_restore"] == []


def test_restore_run_takes_only_what_that_run_stored(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = make_tree(tmp_path / "one", {"a.txt": 11, "sub/b.txt": 12})
    make_tree(tmp_path / "two", {"c.txt": 13})
    assert cli("upload", "one", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    assert cli("upload", "two", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    runs = ledger_rows(tmp_path / "l.db", "SELECT run_id FROM runs ORDER BY started_at")
    result = cli("restore", "--run", runs[0][0], "out", "--ledger", "l.db")
    assert result.code == 0, result.output
    restored = {
        p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.txt")
    }
    assert restored == set(first)
    unknown = cli("restore", "--run", "no-such-run", "out", "--ledger", "l.db")
    assert unknown.code == 2
    assert "no run 'no-such-run'" in unknown.stderr
    assert "Traceback" not in unknown.output


def test_restore_run_of_a_replaced_object_says_what_can_be_done(  # type: ignore[no-untyped-def]
    cli, s3, bucket, tmp_path: Path
) -> None:
    """The run's ETag comes from the ledger: running again cannot help, so the advice is
    the command that restores the current object, and the run's version is not taken
    for it: not by a single GET, not by ranges (HEAD, then If-Match on its ETag), not
    by a local file that is the current object's bytes."""
    spec: dict[str, int | bytes] = {"a.txt": 11, "big.bin": 6 * MiB, "c.txt": 12, "d.txt": 13}
    make_tree(tmp_path / "src", {**spec, "e.txt": 14})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    (run,) = ledger_rows(tmp_path / "l.db", "SELECT run_id FROM runs")[0]
    replaced = {"a.txt": b"new a", "big.bin": os.urandom(6 * MiB), "c.txt": b"C" * 12}
    for name, body in replaced.items():
        s3.put_object(Bucket=bucket, Key=f"p/{name}", Body=body)
    s3.delete_object(Bucket=bucket, Key="p/e.txt")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "c.txt").write_bytes(b"C" * 12)  # the current object, not the run's
    args = ("--json", "restore", "--run", run, "out", "--ledger", "l.db")
    result = cli(*args, "--multipart-threshold", "5MiB")
    assert result.code == 1, result.output
    results = _results(result)
    assert {name: results[f"p/{name}"]["error_class"] for name in replaced} == dict.fromkeys(
        replaced, "replaced-since-run"
    )
    assert results["p/d.txt"]["status"] == "done"
    error = results["p/a.txt"]["error"]
    assert "run again" not in error
    assert f"was replaced since upload run {run} stored it" in error
    advice = f"s3stow restore s3://{bucket}/p/a.txt {tmp_path / 'out'} (without --run)"
    assert advice in error
    assert "gone unless the bucket keeps versions" in error
    deleted = results["p/e.txt"]  # gone: said so, not S3's bare "key does not exist"
    assert deleted["error_class"] == "NoSuchKey"
    assert f"was deleted since upload run {run} stored it" in deleted["error"]
    assert not (tmp_path / "out" / "a.txt").exists()
    assert not (tmp_path / "out" / "big.bin").exists()
    assert not _leftovers(tmp_path / "out")
    again = cli(*args)  # the same outcome: nothing a run could fix
    assert {r["error_class"] for r in _results(again).values() if r["status"] == "failed"} == {
        "replaced-since-run",
        "NoSuchKey",
    }
    current = cli("restore", f"s3://{bucket}/p/a.txt", "out", "--ledger", "l.db")
    assert current.code == 0, current.output  # the advice, followed
    assert (tmp_path / "out" / "a.txt").read_bytes() == b"new a"
    tree = cli("--json", "restore", f"s3://{bucket}/p", "tree", "--ledger", "l.db")
    assert tree.code == 0, tree.output  # without --run the listing's objects are the ones
    assert (tmp_path / "tree" / "big.bin").read_bytes() == replaced["big.bin"]


def test_restore_run_dry_run_says_what_the_run_would_refuse(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``restore --run --dry-run`` made no request and listed an object replaced or
    deleted since the run as ``new``; the real run refuses both. The dry run now HEADs
    each (a read) and reports what the run would, writing nothing."""
    make_tree(tmp_path / "src", {"a.txt": 11, "b.txt": 12, "c.txt": 13})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    (run,) = ledger_rows(tmp_path / "l.db", "SELECT run_id FROM runs")[0]
    s3.put_object(Bucket=bucket, Key="p/a.txt", Body=b"new a")
    s3.delete_object(Bucket=bucket, Key="p/b.txt")
    args = ("--json", "restore", "--run", run, "out", "--ledger", "l.db")
    dry = cli(*args, "--dry-run")
    assert dry.code == 1, dry.output  # as the real run's
    results = _results(dry)
    assert results["p/a.txt"]["error_class"] == "replaced-since-run"
    assert f"was replaced since upload run {run} stored it" in results["p/a.txt"]["error"]
    assert results["p/b.txt"]["error_class"] == "NoSuchKey"
    assert f"was deleted since upload run {run} stored it" in results["p/b.txt"]["error"]
    assert [w["key"] for w in _summary(dry)["would_restore"]] == ["p/c.txt"]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert ledger_rows(tmp_path / "l.db", "SELECT COUNT(*) FROM restores") == [(0,)]
    real = cli(*args)
    assert real.code == 1, real.output
    assert {k: r["error_class"] for k, r in _results(real).items() if r["status"] == "failed"} == {
        "p/a.txt": "replaced-since-run",
        "p/b.txt": "NoSuchKey",
    }


def test_a_restores_results_name_the_bytes_restored(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Each ``--json`` result line of a restore said ``bytes_sent`` for bytes received;
    it says ``bytes_restored``, as the summary and the status file do (in the failures
    file and the summary's failures too). An upload's still say ``bytes_sent``."""
    make_tree(tmp_path / "src", {"a.txt": 11, "b.txt": 12})
    up = cli("--json", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert all("bytes_sent" in r for r in _results(up).values())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "b.txt").write_bytes(b"mine")  # kept: a failure
    args = ("--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db")
    result = cli(*args, "--failures-file", "f.jsonl")
    assert result.code == 1, result.output
    results = _results(result)
    assert results["p/a.txt"]["bytes_restored"] == 11
    assert all("bytes_sent" not in r for r in results.values())
    assert _summary(result)["bytes_restored"] == 11
    (failure,) = _summary(result)["failures"]
    assert "bytes_restored" in failure
    assert "bytes_sent" not in failure
    line = json.loads((tmp_path / "f.jsonl").read_text())
    assert "bytes_restored" in line
    assert "bytes_sent" not in line


def test_a_restore_that_finds_nothing_says_why(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A mistyped prefix or object, a pattern that selects nothing, a prefix outside the
    run: "0 of 0 objects" and exit 0 said nothing more. Still exit 0 (nothing to do, as
    for an upload), with a warning saying which, and the objects left out counted."""
    make_tree(tmp_path / "src", {"a.txt": 3, "d/b.txt": 4})
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    (run,) = ledger_rows(tmp_path / "l.db", "SELECT run_id FROM runs")[0]
    cases = {
        f"no object at or under s3://{bucket}/p/nope.txt": ("restore", f"s3://{bucket}/p/nope.txt"),
        f"no object at or under s3://{bucket}/q": ("restore", f"s3://{bucket}/q"),
        "selected none of the 2 object(s)": ("restore", f"s3://{bucket}/p", "--include", "*.x"),
        f"upload run {run} left no object done under s3://{bucket}/q/": (
            "restore", "--run", run, f"s3://{bucket}/q"
        ),
    }  # fmt: skip
    for said, args in cases.items():
        result = cli(*args, "out", "--ledger", "l.db")
        assert result.code == 0, result.output
        assert said in result.stderr, (args, result.stderr)
        assert "nothing to restore" in result.stderr
    some = cli(
        "--json", "restore", f"s3://{bucket}/p", "out", "--include", "d/", "--ledger", "l.db"
    )
    assert _summary(some)["not_selected"] == 1
    assert "nothing to restore" not in some.stderr
    shown = cli("restore", f"s3://{bucket}/p", "out2", "--include", "d/", "--ledger", "l.db")
    assert "1 object not selected by --include/--exclude" in shown.stdout


def test_the_runs_own_files_in_dest_are_never_restored_over(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Keys that map to the run's ledger, status file or failures file in DEST: with
    --overwrite the status file was "restored" (done, exit 0), then written over by
    the heartbeat, every run again (and the live ledger could be replaced)."""
    tree = make_tree(
        tmp_path / "src", {"x.txt": 5, "l.db": 20, "st.json": 30, "f.jsonl": 40, "d/ok.txt": 6}
    )
    assert cli("upload", "src", f"s3://{bucket}/p", "--ledger", "up.db").code == 0
    out = tmp_path / "out"
    args = (
        "--json", "restore", f"s3://{bucket}/p", "out", "--overwrite", "--ledger", "out/l.db",
        "--status-json", "out/st.json", "--failures-file", "out/f.jsonl",
    )  # fmt: skip
    for _ in range(2):  # and again: the same, not "restored" each time
        result = cli(*args)
        assert result.code == 1, result.output
        results = _results(result)
        for name in ("l.db", "st.json", "f.jsonl"):
            assert results[f"p/{name}"]["error_class"] == "local-exists", name
            assert "of this run; not replaced" in results[f"p/{name}"]["error"]
        assert json.loads((out / "st.json").read_text())["command"] == "restore"
        assert ledger_rows(out / "l.db", "SELECT COUNT(*) FROM runs") != []
    assert (out / "x.txt").read_bytes() == tree["x.txt"]
    assert (out / "d" / "ok.txt").read_bytes() == tree["d/ok.txt"]


def test_restore_run_of_a_watch_takes_every_batch(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A watch records each batch as run ``<id>.<n>``, and shows ``<id>`` (its status
    file's ``run_id``): ``restore --run <id>`` said "no run" for it."""
    tree = make_tree(tmp_path / "in", {"a.xml": 5, "d/b.xml": 6})
    watched = cli(
        "watch", "in", f"s3://{bucket}/w", "--once", "--settle", "0", "--ledger", "l.db",
        "--status-json", "w.json",
    )  # fmt: skip
    assert watched.code == 0, watched.output
    run = json.loads((tmp_path / "w.json").read_text())["run_id"]
    assert ledger_rows(tmp_path / "l.db", f"SELECT 1 FROM runs WHERE run_id = '{run}'") == []
    result = cli("restore", "--run", run, "out", "--ledger", "l.db")
    assert result.code == 0, result.output
    for rel, data in tree.items():
        assert (tmp_path / "out" / rel).read_bytes() == data
    unknown = cli("restore", "--run", run[:-1], "out", "--ledger", "l.db")
    assert unknown.code == 2  # a prefix of the id is no id
    assert "no run" in unknown.stderr
    counted = cli("--json", "stats", "--run", run, "--ledger", "l.db")  # the same id
    assert counted.code == 0, counted.output
    assert json.loads(counted.stdout)["overall"]["done"] == 2


def test_composite_sha256_objects_are_proven_part_by_part(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    tree = make_tree(tmp_path / "src", {"big.bin": 11 * MiB, "mid.bin": 6 * MiB, "s.txt": 9})
    up = proxied_cli(
        "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--checksum", "sha256",
        *FIVE_MIB_PARTS,
    )  # fmt: skip
    assert up.code == 0, up.output
    proxy.reset()
    result = proxied_cli(
        "--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "r.db",
        "--multipart-threshold", "8MiB", "--part-size", "6MiB",
    )  # fmt: skip
    assert result.code == 0, result.output
    for rel, data in tree.items():
        assert (tmp_path / "out" / rel).read_bytes() == data
    results = _results(result)
    assert {r["tier"] for r in results.values()} == {"checksum"}  # composite of part SHA-256s
    ranges = sorted(rng for line, rng in _object_gets(proxy) if "big.bin" in line)
    assert ranges == ["bytes=0-5242879", "bytes=10485760-11534335", "bytes=5242880-10485759"]
    assert proxy.requests(r"^HEAD /[^?]*mid\.bin\?partNumber=1")  # one GET + part 1's size


def test_archived_objects_reported_requested_and_waited_for(
    cli,
    proxied_cli,
    proxy,
    s3,
    s3_server,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    cold = os.urandom(4000)
    s3.put_object(Bucket=bucket, Key="p/cold.bin", Body=cold, StorageClass="GLACIER")
    s3.put_object(Bucket=bucket, Key="p/warm.txt", Body=b"warm")

    # moto then reports a restore in progress for the first HEADs after the request
    _moto_transition(s3_server, "set-transition", {"model_name": "s3::keyrestore", "transition": {
        "progression": "manual", "times": 2}})  # fmt: skip
    try:
        args = ("--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db")
        plain = cli(*args)
        assert plain.code == 1
        assert _results(plain)["p/cold.bin"]["error_class"] == "archived"
        assert "--request-restore" in _results(plain)["p/cold.bin"]["error"]
        assert (tmp_path / "out" / "warm.txt").read_bytes() == b"warm"
        assert not (tmp_path / "out" / "cold.bin").exists()
        proxy.reset()
        waited = proxied_cli(
            *args, "--request-restore", "--days", "2", "--tier", "bulk", "--wait",
            "--poll-interval", "0.1",
        )  # fmt: skip
        assert waited.code == 0, waited.output
        assert (tmp_path / "out" / "cold.bin").read_bytes() == cold
        assert len(proxy.requests(r"^POST /[^?]*cold\.bin\?restore")) == 1
        assert len(proxy.requests(r"^HEAD /[^?]*cold\.bin")) >= 3  # polled while in progress
        assert _results(waited)["p/cold.bin"]["status"] == "done"
    finally:
        _moto_transition(s3_server, "unset-transition", {"model_name": "s3::keyrestore"})


def test_a_pending_glacier_restore_is_pending_in_the_status_file_too(  # type: ignore[no-untyped-def]
    cli, s3, s3_server, bucket, tmp_path: Path
) -> None:
    """The summary counts an object waiting for Glacier as pending, not failed; the
    status file counted it failed (``s3stow status``: "1 failed")."""
    s3.put_object(Bucket=bucket, Key="p/cold.bin", Body=b"cold", StorageClass="GLACIER")
    s3.put_object(Bucket=bucket, Key="p/warm.txt", Body=b"warm")

    _moto_transition(s3_server, "set-transition", {"model_name": "s3::keyrestore", "transition": {
        "progression": "manual", "times": 5}})  # fmt: skip
    try:
        result = cli(
            "--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db",
            "--request-restore", "--status-json", "st.json",
        )  # fmt: skip
    finally:
        _moto_transition(s3_server, "unset-transition", {"model_name": "s3::keyrestore"})
    assert result.code == 1, result.output
    summary = _summary(result)
    assert (summary["pending"], summary["failed"], summary["restored"]) == (1, 0, 1)
    totals = json.loads((tmp_path / "st.json").read_text())["totals"]
    assert (totals["pending"], totals["failed"], totals["restored"]) == (1, 0, 1)
    shown = cli("status", "st.json")
    assert "0 failed, 1 waiting for a restore from Glacier" in shown.stdout, shown.output


def test_round_trip_on_seaweedfs(seaweed_cli, seaweed_s3, seaweed_bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tree = make_tree(tmp_path / "src", {"a.txt": 10, "dir/b.bin": 70_000, "big.bin": 11 * MiB})
    mtimes = {rel: (tmp_path / "src" / rel).stat().st_mtime_ns for rel in tree}
    url = f"s3://{seaweed_bucket}/p"
    assert seaweed_cli("upload", "src", url, "--ledger", "l.db", *FIVE_MIB_PARTS).code == 0
    shutil.rmtree(tmp_path / "src")
    result = seaweed_cli("--json", "restore", url, "out", "--ledger", "l.db", *FIVE_MIB_PARTS)
    assert result.code == 0, result.output
    for rel, data in tree.items():
        assert (tmp_path / "out" / rel).read_bytes() == data, rel
        assert abs((tmp_path / "out" / rel).stat().st_mtime_ns - mtimes[rel]) < 1000, rel
    # SeaweedFS keeps full-object CRC64NVME, also of multipart uploads: combined by range
    assert {r["tier"] for r in _results(result).values()} == {"checksum"}


def test_missing_bucket_is_fatal_and_sigint_resumes(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    missing = proxied_cli("restore", "s3://no-such-bucket-s3stow/p", "out", "--ledger", "l.db")
    assert missing.code == 3
    assert "does not exist" in missing.stderr
    assert "Traceback" not in missing.output
    assert ledger_rows(tmp_path / "l.db", "SELECT command, status FROM runs") == [
        ("restore", "failed")
    ]
    tree = make_tree(tmp_path / "src", {f"f{i:02d}.txt": 100 + i for i in range(12)})
    assert proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db").code == 0
    proxy.reset()
    proxy.add(r"^GET /[^?]*\.txt", "delay", times=1000, delay=0.3)
    args = ("restore", f"s3://{bucket}/p", "out", "--ledger", "l.db", "--concurrency", "2")
    process = proxied_cli.start(*args)
    deadline = time.monotonic() + 60
    while len(list((tmp_path / "out").glob("*.txt"))) < 3:
        assert time.monotonic() < deadline, "nothing restored in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stdout + stderr
    assert "run the same command again to resume" in stdout
    done = {p.name for p in (tmp_path / "out").glob("*.txt")}
    assert 3 <= len(done) < 12
    assert ledger_rows(tmp_path / "l.db", "SELECT status FROM runs ORDER BY started_at DESC")[
        0
    ] == ("interrupted",)
    proxy.reset()
    result = proxied_cli(*args)
    assert result.code == 0, result.output
    assert len(_object_gets(proxy)) == 12 - len(done)  # the finished ones are not fetched again
    for rel, data in tree.items():
        assert (tmp_path / "out" / rel).read_bytes() == data


def test_a_folder_swapped_for_a_symlink_after_its_first_file_is_caught(
    s3_server,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """A run checks each folder once, then only that it is still the same folder: one
    replaced by a symlink after a first file went into it is checked again in full."""
    from s3stow.config import load_settings
    from s3stow.models import SourceFile
    from s3stow.report.observer import Observer
    from s3stow.restore.engine import Restorer

    s3.put_object(Bucket=bucket, Key="p/dir/1.txt", Body=b"first")
    s3.put_object(Bucket=bucket, Key="p/dir/2.txt", Body=b"second")
    outside = tmp_path / "outside"
    outside.mkdir()

    class Swap(Observer):  # one file at a time: 1.txt is in place when 2.txt starts
        def on_file_start(self, source: SourceFile, key: str) -> None:
            if key == "p/dir/2.txt":
                source.path.parent.rename(tmp_path / "out" / "moved")
                os.symlink(outside, source.path.parent)

    settings = load_settings(
        env={}, flags={"endpoint_url": s3_server.endpoint_url, "concurrency": 1}
    )
    summary = Restorer(settings, observers=[Swap()]).restore_tree(
        f"s3://{bucket}/p", tmp_path / "out"
    )
    assert [(f.key, f.error_class) for f in summary.failures] == [("p/dir/2.txt", "unsafe-path")]
    assert list(outside.iterdir()) == []
    assert (tmp_path / "out" / "moved" / "1.txt").read_bytes() == b"first"


def test_a_symlink_made_after_the_plan_is_caught_before_writing(
    s3_server,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    from s3stow.config import load_settings
    from s3stow.models import SourceFile
    from s3stow.report.observer import Observer
    from s3stow.restore.engine import Restorer

    s3.put_object(Bucket=bucket, Key="p/dir/x.txt", Body=b"payload")
    s3.put_object(Bucket=bucket, Key="p/y.txt", Body=b"fine")
    outside = tmp_path / "outside"
    outside.mkdir()

    class Swap(Observer):  # out/dir did not exist when the paths were planned
        def on_file_start(self, source: SourceFile, key: str) -> None:
            if key == "p/dir/x.txt":
                os.symlink(outside, source.path.parent)

    settings = load_settings(env={}, flags={"endpoint_url": s3_server.endpoint_url})
    summary = Restorer(settings, observers=[Swap()]).restore_tree(
        f"s3://{bucket}/p", tmp_path / "out"
    )
    assert [(f.key, f.error_class) for f in summary.failures] == [("p/dir/x.txt", "unsafe-path")]
    assert list(outside.iterdir()) == []
    assert (tmp_path / "out" / "y.txt").read_bytes() == b"fine"
    assert summary.uploaded == 1


def test_a_local_file_where_a_folder_is_needed_is_kept_and_named(
    seaweed_cli,
    seaweed_bucket,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """``out/y`` a local file and the key ``y/z``: the dry run said ``new`` and the run
    failed as ``FileExistsError: out/y/z: File exists`` (the wrong path, a Python class);
    it is ``local-exists`` naming the file in the way, kept even with ``--overwrite``."""
    make_tree(tmp_path / "src", {"y/z": 5, "ok.txt": 3})
    url = f"s3://{seaweed_bucket}/p"
    assert seaweed_cli("upload", "src", url, "--ledger", "l.db").code == 0
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "y").write_bytes(b"mine")
    args = ("--json", "restore", url, "out", "--ledger", "l.db")
    dry = seaweed_cli(*args, "--dry-run")
    assert {e["key"]: e["reason"] for e in _events(dry, "plan")}["p/y/z"] == "local-exists"
    for extra in ((), ("--overwrite",)):
        result = seaweed_cli(*args, *extra)
        assert result.code == 1, result.output
        failed = _results(result)["p/y/z"]
        assert failed["error_class"] == "local-exists", failed
        assert f"{tmp_path / 'out' / 'y'} is a file where a folder is needed" in failed["error"]
        assert (tmp_path / "out" / "y").read_bytes() == b"mine"
        assert (tmp_path / "out" / "ok.txt").exists()


def test_a_key_segment_too_long_for_a_file_name_is_unsafe_path(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A 256-byte segment (S3 takes keys of 1024) was planned as ``new`` and failed as
    ``OSError: File name too long``, not the documented ``unsafe-path``."""
    long_key, longest = "p/" + "\xe9" * 128, "p/" + "x" * 255
    for key in (long_key, longest):
        s3.put_object(Bucket=bucket, Key=key, Body=b"payload")
    args = ("--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db")
    dry = cli(*args, "--dry-run")
    assert [e["key"] for e in _events(dry, "plan")] == [longest]
    result = cli(*args)
    assert result.code == 1, result.output
    failed = _results(result)[long_key]
    assert failed["error_class"] == "unsafe-path", failed
    assert "256 bytes" in failed["error"]
    assert (tmp_path / "out" / ("x" * 255)).read_bytes() == b"payload"


def test_a_folder_marker_with_bytes_is_reported_not_dropped(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A key ending in ``/`` that holds bytes (S3 and moto keep them) was dropped as a
    folder marker without a word: ``0 failed of 1 objects``, exit 0, data not restored."""
    s3.put_object(Bucket=bucket, Key="p/empty/", Body=b"")
    s3.put_object(Bucket=bucket, Key="p/full/", Body=b"data!")
    s3.put_object(Bucket=bucket, Key="p/full/a.txt", Body=b"a")
    result = cli("--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db")
    assert result.code == 1, result.output
    results = _results(result)
    assert set(results) == {"p/full/", "p/full/a.txt"}  # the empty marker is no object
    assert results["p/full/"]["error_class"] == "unsafe-path"
    assert "holds 5 bytes" in results["p/full/"]["error"]
    assert (tmp_path / "out" / "full" / "a.txt").read_bytes() == b"a"
