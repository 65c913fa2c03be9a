"""Crash and interrupt safety: kill -9 mid-multipart resumes with only the
missing parts; Ctrl+C exits 130 with a consistent ledger; a file that changes
during upload is never completed."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from s3stow.config import load_settings
from s3stow.ledger import open_ledger
from s3stow.models import Status
from s3stow.store.s3 import S3Store
from s3stow.transfer.engine import Uploader
from tests.conftest import FIVE_MIB_PARTS, PIN_ETAG_CHECK, Cli, make_tree

MiB = 1024 * 1024


def _query(db: Path, sql: str) -> list[Any]:
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []


def _wait_for(predicate: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _killed_at_part_3(proxy: Any, cli: Any, *args: str) -> None:
    """Run ``args`` and SIGKILL it the moment it sends part 3 (the proxy answers that
    PUT 503, so part 3 never reaches S3): parts 1 and 2 sent, no chance to clean up."""
    box: list[Any] = []

    def kill(_: str) -> None:
        box[0].kill()

    proxy.add(r"^PUT .*partNumber=3(&|$)", "status", times=1, status=503, callback=kill)
    box.append(cli.start(*args))
    box[0].wait(60)
    assert box[0].returncode == -signal.SIGKILL


@pytest.mark.engines
def test_kill9_mid_multipart_resumes_only_missing_parts(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    data = make_tree(tmp_path / "src", {"big.bin": 35 * MiB})["big.bin"]  # 7 parts of 5 MiB
    proxy.add(r"^PUT .*partNumber=", "delay", times=100, delay=0.6)
    args = (
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--part-size",
        "5MiB",
        "--concurrency",
        "2",
    )
    process = proxied_cli.start(*args)
    db = tmp_path / "l.db"
    try:
        _wait_for(lambda: len(_query(db, "SELECT number FROM parts")) >= 2)
    finally:
        process.kill()  # SIGKILL: no chance to clean up
        process.wait(10)
    uploads = s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert len(uploads) == 1
    recorded = {n for (n,) in _query(db, "SELECT number FROM parts")}
    assert 2 <= len(recorded) < 7
    proxy.reset()
    result = proxied_cli(*args)
    assert result.code == 0, result.output
    sent = {
        int(re.search(r"partNumber=(\d+)", r).group(1))  # type: ignore[union-attr]
        for r in proxy.requests(r"^PUT .*partNumber=")
    }
    missing = set(range(1, 8)) - recorded
    assert sent <= missing  # no part the ledger recorded is sent again
    assert len(missing - sent) <= 2  # at most the in-flight parts were adopted by MD5
    assert len(proxy.requests(r"^POST .*uploads(=|$)")) == 0  # same upload id reused
    assert s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read() == data
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert _query(db, "SELECT status FROM items") == [("done",)]
    assert _query(db, "SELECT COUNT(*) FROM parts") == [(0,)]


def test_kill9_resume_without_adoption_sends_no_part_the_ledger_recorded(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """Under SSE-KMS an ETag is not an MD5, so no part is adopted from ListParts: the
    ledger alone says what was sent. One part at a time, killed when part 3 is asked
    for: parts 1 and 2 were recorded before it, and only 3-5 are sent again."""
    data = make_tree(tmp_path / "src", {"big.bin": 21 * MiB})["big.bin"]  # 5 parts
    args = (
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        *FIVE_MIB_PARTS,
        "--concurrency",
        "1",
        "--sse",
        "aws:kms",
    )
    _killed_at_part_3(proxy, proxied_cli, *args)
    proxy.reset()
    result = proxied_cli(*args)
    assert result.code == 0, result.output
    sent = [
        int(re.search(r"partNumber=(\d+)", r).group(1))  # type: ignore[union-attr]
        for r in proxy.requests(r"^PUT .*partNumber=")
    ]
    assert sorted(sent) == [3, 4, 5]
    head = s3.head_object(Bucket=bucket, Key="p/big.bin")
    assert head["ServerSideEncryption"] == "aws:kms"
    assert s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read() == data
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_sigint_exits_130_with_consistent_ledger(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    tree = make_tree(tmp_path / "src", {f"f{i:02d}.txt": 100 for i in range(40)})
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.3)
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--concurrency", "2")
    process = proxied_cli.start(*args)
    db = tmp_path / "l.db"
    _wait_for(lambda: len(_query(db, "SELECT key FROM items")) >= 3)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stdout + stderr
    assert "run the same command again to resume" in stdout
    done = {k for (k, s) in _query(db, "SELECT key, status FROM items") if s == "done"}
    assert 3 <= len(done) < 40
    stored = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert done <= stored  # nothing recorded done that is not in S3
    assert _query(db, "SELECT status FROM runs") == [("interrupted",)]
    proxy.reset()
    result = proxied_cli(*args)
    assert result.code == 0, result.output
    assert len(proxy.requests(r"^PUT ")) == 40 - len(done)
    stored = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert stored == {f"p/{rel}" for rel in tree}


class ChangingStore:
    """Wraps a store and rewrites the source file when part 2 is sent."""

    def __init__(self, inner: S3Store, path: Path) -> None:
        self.inner = inner
        self.path = path

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def upload_part(self, bucket: str, key: str, **kw: Any) -> Any:
        if kw["number"] == 2:
            with self.path.open("r+b") as handle:
                handle.write(b"CHANGED!")
        return self.inner.upload_part(bucket, key, **kw)


@pytest.mark.parametrize("size", [12 * MiB, 1000])
def test_file_changed_during_upload_is_not_completed(
    s3_server,
    s3,
    bucket,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    size: int,
) -> None:
    make_tree(tmp_path / "src", {"f.bin": size})
    path = tmp_path / "src" / "f.bin"
    settings = load_settings(
        env={},
        flags={
            "endpoint_url": s3_server.endpoint_url,
            "part_size": "5MiB",
            "multipart_threshold": "5MiB",
            "concurrency": 1,
        },
    )
    ledger = open_ledger(str(tmp_path / "l.db"))
    store: Any = ChangingStore(S3Store.from_settings(settings), path)
    if size < 5 * MiB:  # single PUT: change the file between read and the final check
        inner = store.inner

        class Touch:
            def __getattr__(self, name: str) -> Any:
                return getattr(inner, name)

            def put_object(self, *a: Any, **kw: Any) -> Any:
                result = inner.put_object(*a, **kw)
                path.write_bytes(b"y" * (size + 1))
                return result

        store = Touch()
    summary = Uploader(settings, store=store, ledger=ledger).upload_tree(
        [tmp_path / "src"], f"s3://{bucket}/p"
    )
    ledger.close()
    assert summary.changed == 1
    assert summary.uploaded == 0
    assert "changed during upload" in (summary.failures[0].error or "")
    rows = _query(tmp_path / "l.db", "SELECT status FROM items")
    assert rows == [(Status.CHANGED.value,)]
    assert _query(tmp_path / "l.db", "SELECT count(*) FROM multipart") == [(0,)]  # forgotten
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    if size >= 5 * MiB:
        assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    # the next run picks it up
    ledger = open_ledger(str(tmp_path / "l.db"))
    again = Uploader(settings, ledger=ledger).upload_tree([tmp_path / "src"], f"s3://{bucket}/p")
    ledger.close()
    assert again.uploaded == 1
    body = s3.get_object(Bucket=bucket, Key="p/f.bin")["Body"].read()
    assert body == path.read_bytes()


def test_second_sigint_exits_at_once(proxied_cli, proxy, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {f"f{i:02d}.txt": 100 for i in range(10)})
    proxy.add(r"^PUT ", "delay", times=1000, delay=20)  # in-flight requests would take long
    process = proxied_cli.start(
        "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--concurrency", "2"
    )
    _wait_for(lambda: len(proxy.requests(r"^PUT ")) >= 1)
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=10)  # far less than the 20 s the requests would take
    assert process.returncode == 130


def test_plain_progress_lines_off_a_terminal(proxied_cli, proxy, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(6)})
    proxy.add(r"^PUT ", "delay", times=100, delay=0.2)
    result = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        "--concurrency",
        "1",
        env={"S3STOW_PROGRESS_INTERVAL": "0.2"},
    )
    assert result.code == 0
    lines = [x for x in result.stderr.splitlines() if x.startswith("progress: ")]
    assert len(lines) >= 2
    assert "files" in lines[-1]


@pytest.mark.engines
def test_a_resume_with_other_object_settings_starts_afresh(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """The parts of an upload created without ``--metadata``/``--sha256-metadata`` are
    not completed by a run that asks for them: it aborts that upload and starts afresh,
    and the object has what this run asked for (it resumed, and the object had neither,
    reported uploaded)."""
    data = make_tree(tmp_path / "src", {"big.bin": 11 * MiB})["big.bin"]  # 3 parts
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", *FIVE_MIB_PARTS)
    _killed_at_part_3(proxy, proxied_cli, *args, "--concurrency", "1")
    assert len(_query(tmp_path / "l.db", "SELECT number FROM parts")) == 2
    proxy.reset()
    result = proxied_cli(*args, "--metadata", "team=blue", "--sha256-metadata")
    assert result.code == 0, result.output
    assert len(proxy.requests(r"^PUT .*partNumber=")) == 3  # every part, in a new upload
    head = s3.head_object(Bucket=bucket, Key="p/big.bin")
    assert head["Metadata"]["team"] == "blue"
    assert "sha256" in head["Metadata"]
    assert s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read() == data
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")


def test_the_resume_command_shows_no_password(
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """The command printed to resume an interrupted run is the one typed, its secrets
    redacted as in every log line: a password in ``--endpoint-url`` (or a
    ``postgresql://`` ledger, ``archive --db``) was printed in clear there alone."""
    make_tree(tmp_path / "src", {f"f{i:02d}.txt": 100 for i in range(20)})
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.3)
    endpoint = proxy.url.replace("://", "://user:hunter2secret@", 1)
    runner = Cli(endpoint, tmp_path, defaults=dict(PIN_ETAG_CHECK))
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--concurrency", "1")
    process = runner.start(*args)
    try:
        _wait_for(lambda: len(_query(tmp_path / "l.db", "SELECT key FROM items")) >= 1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        runner.kill_leftovers()
    assert process.returncode == 130, stdout + stderr
    assert "run the same command again to resume" in stdout
    assert "--endpoint-url http://user:***@127.0.0.1:" in stdout
    assert "hunter2secret" not in stdout + stderr


def test_the_restore_resume_command_shows_no_password(
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """The same for an interrupted ``restore``: its summary's resume command."""
    for i in range(20):
        s3.put_object(Bucket=bucket, Key=f"p/f{i:02d}.txt", Body=b"x" * 100)
    proxy.add(r"^GET /[^?\s]+/p/f", "delay", times=1000, delay=0.3)
    endpoint = proxy.url.replace("://", "://user:hunter2secret@", 1)
    runner = Cli(endpoint, tmp_path)
    args = ("restore", f"s3://{bucket}/p", "back", "--ledger", "l.db", "--concurrency", "1")
    process = runner.start(*args)
    try:
        _wait_for(lambda: len(list((tmp_path / "back").glob("f*.txt"))) >= 1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        runner.kill_leftovers()
    assert process.returncode == 130, stdout + stderr
    assert "--endpoint-url http://user:***@127.0.0.1:" in stdout
    assert "hunter2secret" not in stdout + stderr


@pytest.mark.engines
@pytest.mark.parametrize("aborted_elsewhere", [False, True], ids=["recorded", "gone-from-s3"])
def test_an_object_proven_in_s3_leaves_no_stale_multipart_upload(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    aborted_elsewhere: bool,
) -> None:
    """Killed mid-multipart, then the object arrives by another way (another tool, a
    copy): the next run proves it in S3 and sends nothing, and the upload the ledger
    still recorded is aborted in S3 and forgotten (it stayed: a row no run would use,
    and parts S3 keeps billing until a lifecycle rule aborts them). An upload S3 no
    longer knows (a lifecycle rule aborted it) is forgotten too, without a warning."""
    data = make_tree(tmp_path / "src", {"big.bin": 21 * MiB})["big.bin"]  # 5 parts
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", *FIVE_MIB_PARTS)
    _killed_at_part_3(proxy, proxied_cli, *args, "--concurrency", "1")
    db = tmp_path / "l.db"
    recorded = _query(db, "SELECT upload_id FROM multipart")
    assert len(recorded) == 1
    assert len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])) == 1
    if aborted_elsewhere:
        s3.abort_multipart_upload(Bucket=bucket, Key="p/big.bin", UploadId=recorded[0][0])
    s3.put_object(Bucket=bucket, Key="p/big.bin", Body=data, ChecksumAlgorithm="CRC64NVME")
    proxy.reset()
    result = proxied_cli("--json", *args)
    assert result.code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    outcome = [e for e in events if e.get("event") == "result"]
    assert [(r["status"], r["reason"]) for r in outcome] == [("done", "remote-match")]
    assert proxy.requests(r"^PUT ") == []  # nothing sent: the object is there
    assert "could not be aborted" not in result.output
    assert _query(db, "SELECT COUNT(*) FROM multipart") == [(0,)]
    assert _query(db, "SELECT COUNT(*) FROM parts") == [(0,)]
    assert not s3.list_multipart_uploads(Bucket=bucket).get("Uploads")
    assert s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read() == data
