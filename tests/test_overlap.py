"""What a run's first requests may send at once, and what must still wait (on both servers).

Over a long round trip the requests before the first upload were serial: HeadBucket,
then the compare stage's listing, then (in the first transfer) the checksum probe,
then the first PUT through botocore while the others waited for it, then their
connections. Now the listing goes out with HeadBucket, the probe as soon as HeadBucket
passed (alongside the rest of the listing and the first decisions), and a thread
waiting for the learner opens its connection meanwhile. What must not move: no
decision and no PUT (the probe's neither: SeaweedFS creates a missing bucket on any
PUT) before HeadBucket passed, its error (not the listing's) ending the run on a
bucket it refused; no file's PUT before the probe answered (whether it carries an
MD5); one probe per run; nothing sent by a re-run the ledger settles.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from s3stow.config import Settings
from s3stow.errors import BucketMissingError
from s3stow.ledger import open_ledger
from s3stow.store.learngate import LearningGate
from s3stow.store.s3 import S3Store
from s3stow.transfer.engine import Uploader
from tests.faultproxy import FaultProxy
from tests.test_engine import Events

PROBE = r"^PUT .*\.s3stow-probe/"


def _tree(root: Path, count: int = 6) -> Path:
    root.mkdir()
    for i in range(count):
        (root / f"f{i}.bin").write_bytes(bytes([i]) * (100 + i))
    return root


def _uploader(proxy: FaultProxy, tmp_path: Path) -> tuple[Uploader, Events]:
    settings = Settings(
        endpoint_url=proxy.url,
        etag_check="auto",  # the probe decides the MD5: these tests are about it
        concurrency=2,
        max_attempts=2,
        file_retries=1,
        retry_base_delay=0.01,
    )
    events = Events()
    ledger = open_ledger(str(tmp_path / "l.db"))
    return Uploader(settings, ledger=ledger, observers=[events]), events


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def _in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # the test asserts it
            out.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


@pytest.mark.engines
def test_the_listing_goes_out_with_headbucket_but_no_decision_probe_or_put_before_it(
    proxy: FaultProxy, bucket: str, engine: str, tmp_path: Path
) -> None:
    """HeadBucket held at the proxy: the listing reaches the server while it is held
    (it overlaps it), but no file is decided and neither the probe nor a file's PUT is
    sent until HeadBucket has passed; then every file is uploaded, after one probe."""
    src = _tree(tmp_path / "src")
    held = proxy.add(rf"^HEAD /{bucket}/?$", "hold")
    uploader, events = _uploader(proxy, tmp_path)
    thread, out = _in_thread(lambda: uploader.upload_tree([src], f"s3://{bucket}/p"))
    try:
        _until(lambda: bool(proxy.requests(rf"^HEAD /{bucket}/?$")), "HeadBucket sent")
        _until(lambda: bool(proxy.requests(r"list-type=2")), "the listing sent alongside")
        time.sleep(0.3)  # room for a decision or a PUT, were the order loose
        assert events.of("decision") == []
        assert proxy.requests(r"^PUT ") == []  # no probe, no file
    finally:
        held.release()
        thread.join(timeout=120)
    (summary,) = out
    assert (summary.uploaded, summary.failed) == (6, 0)
    assert len(proxy.requests(PROBE)) == 1
    assert uploader.probes.sent == 1


@pytest.mark.engines
def test_no_files_put_goes_before_the_probe_answered_and_each_follows_its_answer(
    proxy: FaultProxy, bucket: str, engine: str, tmp_path: Path
) -> None:
    """The probe held: HeadBucket and the listing pass and files are decided, but no
    file's PUT is sent until the probe's answer says whether it carries an MD5. Then
    SeaweedFS (validates) gets none, moto (stores) one on every file."""
    src = _tree(tmp_path / "src")
    held = proxy.add(PROBE, "hold")
    uploader, events = _uploader(proxy, tmp_path)
    thread, out = _in_thread(lambda: uploader.upload_tree([src], f"s3://{bucket}/p"))
    try:
        _until(lambda: bool(proxy.requests(PROBE)), "the probe sent")
        _until(lambda: len(events.of("decision")) >= 1, "a file decided")
        time.sleep(0.3)
        assert proxy.requests(rf"^PUT /{bucket}/p/f") == []
    finally:
        held.release()
        thread.join(timeout=120)
    (summary,) = out
    assert (summary.uploaded, summary.failed) == (6, 0)
    md5s = [
        headers.get("content-md5")
        for line, headers in zip(proxy.log, proxy.headers, strict=True)
        if line.startswith(f"PUT /{bucket}/p/f")
    ]
    assert len(md5s) == 6
    validates = engine == "seaweedfs"
    assert all((md5 is None) is validates for md5 in md5s), md5s


@pytest.mark.engines
def test_a_missing_bucket_fails_on_headbuckets_error_and_is_not_created_by_a_probe(
    proxy: FaultProxy, s3: Any, engine: str, tmp_path: Path
) -> None:
    """The listing fails too, alongside; the run ends on HeadBucket's
    ``BucketMissingError`` (failed, not interrupted), and no probe was sent: a PUT to
    a missing bucket creates it on SeaweedFS, even one refused for its checksum."""
    src = _tree(tmp_path / "src", 2)
    uploader, events = _uploader(proxy, tmp_path)
    missing = "no-such-bucket-s3stow-overlap"
    with pytest.raises(BucketMissingError):
        uploader.upload_tree([src], f"s3://{missing}/p")
    # it went out alongside (its thread may send it just after HeadBucket's answer)
    _until(lambda: bool(proxy.requests(r"list-type=2")), "the listing sent")
    assert proxy.requests(r"^PUT ") == []
    (summary,) = events.of("finish")
    assert (summary.interrupted, summary.ok, summary.uploaded) == (False, False, 0)
    with sqlite3.connect(tmp_path / "l.db") as conn:
        assert conn.execute("SELECT count(*) FROM probes").fetchone() == (0,)
    assert missing not in [b["Name"] for b in s3.list_buckets().get("Buckets", [])]


@pytest.mark.engines
def test_a_settled_rerun_sends_nothing_not_even_the_probe(
    proxy: FaultProxy, bucket: str, engine: str, tmp_path: Path
) -> None:
    """The probe starts only with the bucket check, which a re-run the ledger settles
    never makes: no request at all."""
    src = _tree(tmp_path / "src", 3)
    first, _ = _uploader(proxy, tmp_path)
    assert first.upload_tree([src], f"s3://{bucket}/p").uploaded == 3
    first.ledger.close()  # type: ignore[union-attr]
    proxy.log.clear()
    again, _ = _uploader(proxy, tmp_path)
    assert again.upload_tree([src], f"s3://{bucket}/p").skipped == 3
    assert proxy.log == []


def test_a_waiter_prepares_while_the_learner_is_out_and_a_learner_does_not() -> None:
    """``before_wait`` runs in a thread that finds the shape being learned (before it
    waits), never in the learner, nor once the shape is known."""
    gate = LearningGate()
    learned = threading.Event()
    prepared: list[str] = []
    with gate.first("s", learned.is_set, before_wait=lambda: prepared.append("learner")) as first:
        assert first
        waiter, _ = _in_thread(
            lambda: gate.first(
                "s", learned.is_set, before_wait=lambda: prepared.append("waiter")
            ).__enter__()
        )
        _until(lambda: prepared == ["waiter"], "the waiter prepared")
        learned.set()
    waiter.join(timeout=10)
    with gate.first("s", learned.is_set, before_wait=lambda: prepared.append("late")) as later:
        assert not later
    assert prepared == ["waiter"]


@pytest.mark.engines
def test_botocores_small_puts_go_without_100_continue_and_large_bodies_keep_it(
    proxy: FaultProxy, bucket: str, engine: str, tmp_path: Path
) -> None:
    """botocore asks for ``Expect: 100-continue`` on every PUT body (one round trip
    more); below 1 MiB s3stow drops it, as the fast path never sends it. The fast path
    off, every request is botocore's: the small file's PUT goes without, each 5 MiB part
    with it, and all are stored and verified."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "small.bin").write_bytes(b"s" * 20_000)
    (src / "big.bin").write_bytes(b"b" * (11 * 1024 * 1024))
    settings = Settings(
        endpoint_url=proxy.url,
        etag_check="on",
        fast_path=False,
        part_size=5 * 1024 * 1024,
        multipart_threshold=5 * 1024 * 1024,
    )
    summary = Uploader(settings).upload_tree([src], f"s3://{bucket}/p")
    assert (summary.uploaded, summary.failed) == (2, 0)
    expects = {
        line.split("?")[0].rsplit("/", 1)[-1] + ("#part" if "partNumber" in line else ""): (
            headers.get("expect")
        )
        for line, headers in zip(proxy.log, proxy.headers, strict=True)
        if line.startswith("PUT ")
    }
    assert expects == {"small.bin": None, "big.bin#part": "100-continue"}


@pytest.mark.engines
def test_a_probe_started_ahead_is_sent_once_and_only_where_transfers_would_ask(
    server: Any, bucket: str, engine: str
) -> None:
    """``start_checksum_probe`` twice: one probe, whose answer the transfers then read
    without asking again; with ``etag_check: on`` or in a dry run, none at all."""
    from s3stow.transfer.probes import ServerProbes

    auto = Settings(endpoint_url=server.endpoint_url, etag_check="auto")
    store = S3Store.from_settings(auto)
    probes = ServerProbes(auto, store=store, ledger=None)
    probes.start_checksum_probe(bucket, near="p/a.bin")
    probes.start_checksum_probe(bucket, near="p/b.bin")
    probes.settle()
    assert probes.sent == 1
    assert probes.validates_checksums(bucket, near="p/c.bin") is (engine == "seaweedfs")
    assert probes.sent == 1
    for settings in (
        Settings(endpoint_url=server.endpoint_url, etag_check="on"),
        Settings(endpoint_url=server.endpoint_url, etag_check="auto", dry_run=True),
    ):
        quiet = ServerProbes(settings, store=S3Store.from_settings(settings), ledger=None)
        quiet.start_checksum_probe(bucket, near="p/a.bin")
        quiet.settle()
        assert quiet.sent == 0
