"""``s3stow restore`` at its edges, from outside as a user runs it against real local
servers: objects written by other tools with odd metadata or odd names, and a stop
asked for while a large object's ranges wait for their turn."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.conftest import FIVE_MIB_PARTS, CliResult, kill_after_ranges, ledger_rows

MiB = 1024 * 1024


def _results(result: CliResult) -> dict[str, dict[str, Any]]:
    found = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") in ("result", "skip"):
                found[event["key"]] = event
    return found


def test_an_mtime_past_what_the_ledger_holds_restores_and_is_recorded(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # another tool (or a clock gone wrong) stored an mtime past 2262, the last moment a
    # signed 64-bit count of nanoseconds holds: the file takes it, and the ledger's
    # record of it must not end the run with an OverflowError (exit 3, nothing after it)
    s3.put_object(
        Bucket=bucket, Key="p/far.txt", Body=b"far", Metadata={"mtime": "2400-01-01T00:00:00Z"}
    )
    s3.put_object(Bucket=bucket, Key="p/near.txt", Body=b"near")
    args = ("--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db")
    first = cli(*args)
    assert first.code == 0, first.output
    assert "OverflowError" not in first.output
    results = _results(first)
    assert {key: event["status"] for key, event in results.items()} == {
        "p/far.txt": "done",
        "p/near.txt": "done",
    }
    assert (tmp_path / "out" / "far.txt").read_bytes() == b"far"
    recorded = ledger_rows(tmp_path / "l.db", "SELECT key, status FROM restores ORDER BY key")
    assert recorded == [("p/far.txt", "done"), ("p/near.txt", "done")]
    again = cli(*args)  # kept: the file is still the object's
    assert again.code == 0, again.output
    skipped = {key: event.get("reason") for key, event in _results(again).items()}
    assert skipped == {"p/far.txt": "local-match", "p/near.txt": "ledger-done"}
    assert os.stat(tmp_path / "out" / "far.txt").st_size == 3


def test_a_key_named_as_a_downloads_temporary_file_is_refused(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # ".a.s3stow-part" is where the download of "a" writes before its rename: restored
    # as a file of its own, the download of "a" truncated it and renamed it away (the
    # run said both restored, one file was gone), or, the two at once, renamed the
    # other object's bytes into "a" after checking its own
    s3.put_object(Bucket=bucket, Key="p/a", Body=b"A" * 5000)
    s3.put_object(Bucket=bucket, Key="p/.a.s3stow-part", Body=b"B" * 5000)
    s3.put_object(Bucket=bucket, Key="p/sub/.b.s3stow-part", Body=b"C")
    result = cli(
        "--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db", "--concurrency", "1"
    )
    assert result.code == 1, result.output
    results = _results(result)
    assert results["p/a"]["status"] == "done"
    for key in ("p/.a.s3stow-part", "p/sub/.b.s3stow-part"):
        assert results[key]["error_class"] == "unsafe-path"
        assert "temporary file" in results[key]["error"]
    assert (tmp_path / "out" / "a").read_bytes() == b"A" * 5000
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["a"]


def _ranges(proxy: Any, bucket: str) -> set[str]:
    """The byte ranges of p/big.bin asked for through the proxy (each once)."""
    return {
        headers.get("range", "")
        for line, headers in zip(list(proxy.log), list(proxy.headers), strict=False)
        if line.startswith(f"GET /{bucket}/p/big.bin")
    }


def test_a_stop_leaves_the_ranges_still_waiting_for_a_stream_unfetched(
    proxied_cli, proxy, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # 12 ranges of 5 MiB: 8 in flight (the ranges' start), 2 more taken by the part
    # pool's other threads (--concurrency 10) and waiting for a stream slot. Ctrl+C
    # lets the ranges in flight finish; the waiting ones must not start after it
    data = os.urandom(12 * 5 * MiB)
    s3.put_object(Bucket=bucket, Key="p/big.bin", Body=data)
    held = proxy.add(rf"^GET /{bucket}/p/big\.bin", "hold", times=1000)
    args = (
        "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db", "--concurrency", "10",
        "--part-size", "5MiB", "--multipart-threshold", "5MiB",
    )  # fmt: skip
    process = proxied_cli.start(*args)
    deadline = time.monotonic() + 60
    while len(_ranges(proxy, bucket)) < 8:
        assert time.monotonic() < deadline, "the ranges did not start in time"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    assert process.stderr is not None
    while "stopping" not in (line := process.stderr.readline()):  # the stop is set
        assert line, "no stop was said"
    # counted once the stop is said, while every GET is still held: a range that was
    # taking a stream slot as the stop came is in flight too; one waiting for a slot
    # can only get one when a held range ends, after the release
    in_flight = _ranges(proxy, bucket)
    held.release()
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stdout + stderr
    # (a range in flight may be sent twice: a request repeated through botocore)
    assert _ranges(proxy, bucket) == in_flight
    recorded = ledger_rows(tmp_path / "l.db", "SELECT first_byte FROM restore_ranges")
    assert len(recorded) == len(in_flight)
    proxy.reset()
    again = proxied_cli(*args)  # the rest, and only the rest
    assert again.code == 0, again.output
    assert len(_ranges(proxy, bucket)) == 12 - len(in_flight)
    assert (tmp_path / "out" / "big.bin").read_bytes() == data


def test_a_symlink_where_the_temporary_file_goes_is_not_written_through(
    proxied_cli, proxy, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # DEST is where the files go, and anyone who can write there can leave a symlink
    # named as a download's temporary file: opened to write, it took the object's
    # bytes to the file it points at (outside DEST), then became the restored "file"
    small, big, resumed = b"small object\n", os.urandom(6 * MiB), os.urandom(15 * MiB)
    s3.put_object(Bucket=bucket, Key="p/small.txt", Body=small)
    s3.put_object(Bucket=bucket, Key="p/big.bin", Body=big)
    s3.put_object(Bucket=bucket, Key="q/resumed.bin", Body=resumed)
    out = tmp_path / "out"
    out.mkdir()
    victims = {}
    for name, size in (("small.txt", 8), ("big.bin", 8), ("resumed.bin", 15 * MiB)):
        victim = tmp_path / f"victim-{name}"
        victim.write_bytes(b"v" * size)
        victims[name] = victim
    (out / ".small.txt.s3stow-part").symlink_to(victims["small.txt"])
    (out / ".big.bin.s3stow-part").symlink_to(victims["big.bin"])
    # and a plain file a killed run left under a temporary name, longer than the object
    s3.put_object(Bucket=bucket, Key="p/left.txt", Body=b"new")
    (out / ".left.txt.s3stow-part").write_bytes(b"an older, longer leftover")
    result = proxied_cli("restore", f"s3://{bucket}/p", "out", "--ledger", "l.db", *FIVE_MIB_PARTS)
    assert result.code == 0, result.output
    # a download begun, killed, and its temporary file swapped for a link to a file of
    # the object's size (a resume reads and writes it in place)
    proxy.add(rf"^GET /{bucket}/q/", "delay", times=100, delay=0.6)
    args = ("restore", f"s3://{bucket}/q", "out", "--ledger", "l.db", *FIVE_MIB_PARTS)
    kill_after_ranges(proxied_cli.start(*args, "--concurrency", "1"), tmp_path / "l.db", ranges=1)
    partial = out / ".resumed.bin.s3stow-part"
    partial.unlink()
    partial.symlink_to(victims["resumed.bin"])
    proxy.reset()
    again = proxied_cli(*args)
    assert again.code == 0, again.output
    for name, size in (("small.txt", 8), ("big.bin", 8), ("resumed.bin", 15 * MiB)):
        assert victims[name].read_bytes() == b"v" * size, name
    restored = {"small.txt": small, "big.bin": big, "resumed.bin": resumed, "left.txt": b"new"}
    for name, data in restored.items():
        assert not (out / name).is_symlink()
        assert (out / name).read_bytes() == data
    assert sorted(p.name for p in out.iterdir()) == sorted(restored)


def test_a_ledger_that_cannot_be_written_stops_the_restore_and_says_what_was_done(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # a full disk under the ledger (here: a file-size limit on the process, which SQLite
    # meets as its WAL grows): as an upload, the run stops, prints its summary and the
    # fix, and exits 3; it used to end on the error alone
    import resource
    import subprocess

    for i in range(300):
        s3.put_object(Bucket=bucket, Key=f"p/f{i:03d}.txt", Body=b"x" * 100)
    limit = 150_000

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = cli.command("restore", f"s3://{bucket}/p", "out", "--ledger", "l.db")
    done = subprocess.run(
        args, cwd=tmp_path, env=cli.env(), capture_output=True, text=True, timeout=120,
        preexec_fn=small_files, check=False,
    )  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert "cannot write the ledger" in done.stderr
    assert "make the ledger writable again" in done.stderr
    assert "Traceback" not in done.stderr
    restored = len(list((tmp_path / "out").iterdir()))
    assert 0 < restored < 300  # it stopped
    assert f"{restored} restored, 0 skipped, 0 failed of " in done.stdout  # every file said
    again = cli("restore", f"s3://{bucket}/p", "out", "--ledger", "l.db")
    assert again.code == 0, again.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"f{i:03d}.txt" for i in range(300)
    ]


def test_restore_help_gives_the_range_size_a_restore_uses() -> None:
    # it showed the upload's part sizes (64MiB from 512MiB, 128MiB above 8GiB), which a
    # restore never takes: 8 MiB ranges whatever the size (download.RANGE_SIZE)
    import subprocess
    import sys

    from s3stow.restore.download import RANGE_SIZE

    shown = subprocess.run(
        [sys.executable, "-m", "s3stow", "restore", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    shown = " ".join(shown.split())  # as wrapped for any width
    assert 8 * MiB == RANGE_SIZE
    assert "[default: 8MiB, or a composite checksum's parts]" in shown
    assert "64MiB to 8GiB" not in shown


def test_archive_restore_names_the_rows_own_problem(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # a row's local_file_path is no key, and a row's archive_url was never listed: the
    # messages said "key has a '..' path segment" and "deleted since it was listed"
    import sqlite3

    args = ("--db", "demo.db", "--media-root", "media", "--ledger", "l.db")
    assert cli("archive", "init-demo", "--db", "demo.db", "--media-root", "media").code == 0
    assert cli("archive", "run", f"s3://{bucket}", *args).code == 1  # rows without a file
    with sqlite3.connect(tmp_path / "demo.db") as conn:
        conn.execute(
            "UPDATE post_media SET local_file_path = '../escape.jpg' WHERE media_id = 'med-0000'"
        )
        conn.execute(
            "UPDATE post_media SET archive_url = ? WHERE media_id = 'med-0001'",
            (f"s3://{bucket}/cache/no/such.png",),
        )
        (kept,) = conn.execute(
            "SELECT local_file_path FROM post_media WHERE media_id = 'med-0001'"
        ).fetchone()
    (tmp_path / "media" / kept).unlink()  # else it is kept: the row's md5_sum proves it
    result = cli("--json", "archive", "restore", *args)
    assert result.code == 1, result.output
    failed = {
        event["error_class"]: event["error"]
        for event in map(json.loads, result.stdout.splitlines())
        if event.get("event") == "result" and event["status"] == "failed"
    }
    assert failed["unsafe-path"] == (
        "row med-0000: local_file_path '../escape.jpg' has a '..' path segment; not written"
    )
    assert failed["NoSuchKey"] == (
        f"s3://{bucket}/cache/no/such.png does not exist (no object has this key); nothing written"
    )
    assert not (tmp_path / "escape.jpg").exists()
