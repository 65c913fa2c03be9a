"""What a restore of small objects costs per object, observed as what the code does
(calls made, and in which thread), never as a time: the main thread plans, hands out
and records every file, so what it does per file is the run's serial part; the first
listing page is botocore's, and its timestamps are read without dateutil."""

from __future__ import annotations

import os
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def test_the_main_thread_does_not_stat_the_restored_files(
    server: Any,
    s3: Any,
    bucket: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ledger's row of a restored file (its size and mtime as the file system keeps
    them) is read in the file's thread: a ``stat`` in the main thread gives up the GIL,
    which it then waits to take back from the busy file threads, once per file."""
    from s3stow.config import load_settings
    from s3stow.ledger import open_ledger
    from s3stow.restore.engine import Restorer

    for n in range(6):
        s3.put_object(Bucket=bucket, Key=f"p/d/{n}.txt", Body=b"x" * n)
    out = tmp_path / "out"
    main: list[str] = []
    real = os.stat

    def watched(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if threading.current_thread() is threading.main_thread() and str(path).endswith(".txt"):
            main.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", watched)
    settings = load_settings(env={}, flags={"endpoint_url": server.endpoint_url})
    ledger = open_ledger(str(tmp_path / "l.db"))
    summary = Restorer(settings, ledger=ledger).restore_tree(f"s3://{bucket}/p", out)
    assert summary.uploaded == 6
    assert main == []
    again = Restorer(settings, ledger=open_ledger(str(tmp_path / "l.db"))).restore_tree(
        f"s3://{bucket}/p", out
    )
    assert (again.uploaded, again.skipped) == (0, 6)  # the rows hold the files' size and mtime


def test_a_listing_page_read_by_botocore_parses_its_timestamps_without_dateutil(
    server: Any, s3: Any, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first listing page of a run is botocore's (the fast path learns from it): its
    ``LastModified`` values are read by ``datetime.fromisoformat``, not by dateutil's
    parser (about 0.2 ms each: most of the CPU of a page of 1,000 objects)."""
    import dateutil.parser

    from s3stow.config import load_settings
    from s3stow.store.client import make_client

    for n in range(3):
        s3.put_object(Bucket=bucket, Key=f"k{n}", Body=b"x")
    expected = {o["Key"]: o["LastModified"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    calls: list[str] = []
    real = dateutil.parser.parse

    def counted(text: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(text)
        return real(text, *args, **kwargs)

    monkeypatch.setattr(dateutil.parser, "parse", counted)
    settings = load_settings(env={}, flags={"endpoint_url": server.endpoint_url})
    page = make_client(settings).list_objects_v2(Bucket=bucket)
    assert {o["Key"]: o["LastModified"] for o in page["Contents"]} == expected
    assert calls == []


@settings(max_examples=300, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(9998, 12, 31), timezones=st.none()
    ),
    form=st.sampled_from(
        ["%Y-%m-%dT%H:%M:%S.{ms}Z", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"]
    ),
)
def test_s3_timestamps_read_as_botocore_reads_them(moment: datetime, form: str) -> None:
    from botocore.utils import parse_timestamp

    from s3stow.store.client import s3_timestamp

    text = moment.strftime(form.replace("{ms}", f"{moment.microsecond // 1000:03d}"))
    ours, theirs = s3_timestamp()(text), parse_timestamp(text)
    assert ours == theirs
    assert ours.utcoffset() == theirs.utcoffset()


@pytest.mark.parametrize(
    "text",
    ["Wed, 02 Dec 2026 12:33:31 GMT", "1796214811", "2026-12-02T12:33:31+00:00", "2026-12-02"],
)
def test_other_timestamp_forms_are_botocores(text: str) -> None:
    from botocore.utils import parse_timestamp

    from s3stow.store.client import s3_timestamp

    assert s3_timestamp()(text) == parse_timestamp(text)


def test_a_chunk_a_raw_file_takes_in_part_is_written_whole(tmp_path: Path) -> None:
    """The restored bytes go to an unbuffered file (no tty probe, no seek per file); a
    ``write`` that takes part of a chunk, as ``write(2)`` may, is continued."""
    import io

    from s3stow.restore.download import _write_all

    class Partial(io.FileIO):
        def write(self, data: Any) -> int:
            return super().write(bytes(data)[:3])

    target = tmp_path / "f"
    with Partial(target, "wb") as out:
        _write_all(out, b"0123456789")
        _write_all(out, b"ab")
    assert target.read_bytes() == b"0123456789ab"


def test_a_fast_path_body_streams_through_one_buffer() -> None:
    """A GET's body read by the fast path comes in chunks of one buffer, reused: a new
    zeroed block per chunk cost a ``memset`` of every byte received (40% of the
    instructions of an 8 MiB object's GET), and the bytes are the same."""
    import socket

    from s3stow.store import http1
    from s3stow.store.base import ObjectInfo
    from s3stow.store.s3reads import _FastBody

    data = os.urandom(20_000)
    ours, theirs = socket.socketpair()
    ended: list[bool] = []
    try:
        theirs.sendall(data[100:])
        stream = http1.Stream(ours, bytearray(data[:100]), len(data), ended.append)
        body = _FastBody(
            stream, ObjectInfo("k", len(data), "e"), 0, len(data), where=("b", "k"), on_broken=list
        )
        got, buffers = b"", set()
        for chunk in body.chunks(7000):
            assert isinstance(chunk, memoryview)
            buffers.add(id(chunk.obj))
            got += bytes(chunk)
        assert got == data
        assert len(buffers) == 1
        assert ended == [True]  # read to its end: the connection is kept
    finally:
        ours.close()
        theirs.close()


def test_the_first_batches_grow_so_the_first_gets_wait_for_few_objects(
    server: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """The first objects listed are handed out in a batch of 16, then 32, 64, 128 and
    256 each: the first GETs wait for 16 objects to be planned, not for 256 (over a
    long round trip, the first listing page, a short one, ends well before 256 are)."""
    from s3stow.config import load_settings
    from s3stow.report.observer import Observer
    from s3stow.restore.engine import Restorer

    for n in range(300):
        s3.put_object(Bucket=bucket, Key=f"p/d{n % 3}/{n:03d}.txt", Body=b"x")
    walked: list[tuple[int, bool]] = []

    class Walk(Observer):  # once per batch planned, in the main thread
        def on_walk(self, files: int, size: int, finished: bool) -> None:
            walked.append((files, finished))

    settings = load_settings(env={}, flags={"endpoint_url": server.endpoint_url})
    summary = Restorer(settings, observers=[Walk()]).restore_tree(
        f"s3://{bucket}/p", tmp_path / "out"
    )
    assert summary.uploaded == 300
    batches = [(16, False), (48, False), (112, False), (240, False), (300, False)]
    assert walked == [*batches, (300, True)]


RESTORE_MODULES = """
import json, sys
sys.argv = ["s3stow", *json.loads(sys.argv[1])]
from s3stow.cli.app import main
try:
    main()
except SystemExit as exit:
    code = exit.code
print("RESULT:" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def test_a_restore_does_not_import_the_uploads_engine(
    server: Any, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """``restore`` runs without the upload's engine, planner and file worker (start-up
    every restore paid for a run id): ``new_run_id`` is the models'."""
    import json
    import subprocess
    import sys

    s3.put_object(Bucket=bucket, Key="p/one.txt", Body=b"x")
    argv = ["-q", "--endpoint-url", server.endpoint_url, "restore", f"s3://{bucket}/p"]
    argv += [str(tmp_path / "out"), "--ledger", str(tmp_path / "l.db")]
    done = subprocess.run(
        [sys.executable, "-c", RESTORE_MODULES, json.dumps(argv)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT:")), None)
    assert line is not None, done.stdout + done.stderr
    result = json.loads(line[len("RESULT:") :])
    assert result["code"] in (0, None), done.stderr
    assert (tmp_path / "out" / "one.txt").read_bytes() == b"x"
    upload = {"s3stow.transfer.engine", "s3stow.plan.planner", "s3stow.transfer.worker"}
    assert upload & set(result["modules"]) == set()
