"""The pipeline (``Uploader``): every file of a run reaches an outcome that is counted,
recorded and reported once, whatever the mix; re-runs, limits, dry runs and stops.
In-process, against the real server through the fault proxy."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from s3stow.config import Settings
from s3stow.errors import BucketMissingError
from s3stow.ledger import open_ledger
from s3stow.models import Reason, Status
from s3stow.plan.keys import local_key, parse_target
from s3stow.report.observer import Observer
from s3stow.transfer.engine import Uploader
from tests.faultproxy import FaultProxy


class Events(Observer):
    """Every hook call, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def on_start(self, run_id: str, target: str) -> None:
        self.calls.append(("start", (run_id, target)))

    def on_discovered(self, source: Any) -> None:
        self.calls.append(("discovered", source.rel_path))

    def on_walk(self, files: int, size: int, finished: bool) -> None:
        self.calls.append(("walk", (files, size, finished)))

    def on_skipped_path(self, skipped: Any) -> None:
        self.calls.append(("skipped_path", skipped.error_class))

    def on_decision(self, decision: Any) -> None:
        self.calls.append(("decision", (decision.item.key, decision.upload, decision.reason)))

    def on_file_start(self, source: Any, key: str) -> None:
        self.calls.append(("file_start", key))

    def on_hashed(self, source: Any, count: int) -> None:
        self.calls.append(("hashed", (source.rel_path, count)))

    def on_bytes(self, source: Any, count: int) -> None:
        self.calls.append(("bytes", (source.rel_path, count)))

    def on_result(self, result: Any, source: Any) -> None:
        self.calls.append(("result", (result.key, result.status, source is not None)))
        self.calls.append(("reason", (result.key, result.reason)))
        self.calls.append(("bucket", (result.key, result.bucket)))

    def on_finish(self, summary: Any) -> None:
        self.calls.append(("finish", summary))

    def of(self, kind: str) -> list[Any]:
        return [value for name, value in self.calls if name == kind]


def _uploader(proxy: FaultProxy, tmp_path: Path, **settings: Any) -> tuple[Uploader, Events]:
    # the ETag check pinned on (moto's probe answer): the PUTs counted are the files' own
    values: dict[str, Any] = {
        "endpoint_url": proxy.url,
        "retry_base_delay": 0.01,
        "retry_max_delay": 0.05,
        "max_attempts": 2,
        "file_retries": 1,
        "concurrency": 2,
        "etag_check": "on",
    }
    values.update(settings)
    events = Events()
    ledger = open_ledger(str(tmp_path / "l.db"))
    return Uploader(Settings(**values), ledger=ledger, observers=[events]), events


def _tree(root: Path) -> None:
    root.mkdir()
    (root / "photos").mkdir()
    (root / "new.txt").write_bytes(b"n" * 10)
    (root / "photos" / "same.jpg").write_bytes(b"s" * 20)
    (root / "photos" / "stale.jpg").write_bytes(b"t" * 30)
    (root / "fails.txt").write_bytes(b"f" * 40)
    (root / "link.txt").symlink_to(root / "new.txt")


def _statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT key, status FROM items"))


def test_every_outcome_of_a_run_is_counted_recorded_and_reported_once(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    _tree(src)
    s3.put_object(  # proven equal by its checksum
        Bucket=bucket, Key="p/photos/same.jpg", Body=b"s" * 20, ChecksumAlgorithm="CRC64NVME"
    )
    s3.put_object(Bucket=bucket, Key="p/photos/stale.jpg", Body=b"x" * 30)  # same size only
    proxy.add(r"^PUT /[^?]*/p/fails\.txt", "status", times=100, status=500, code="InternalError")
    uploader, events = _uploader(proxy, tmp_path)
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    # counted
    assert (summary.files, summary.uploaded, summary.skipped) == (5, 2, 2)
    assert (summary.failed, summary.changed, summary.interrupted) == (1, 0, False)
    assert (summary.bytes_uploaded, summary.bytes_total) == (40, 100)
    assert not summary.ok
    assert [(f.key, f.error_class, f.attempts) for f in summary.failures] == [
        ("p/fails.txt", "InternalError", 1)
    ]
    assert len(proxy.requests(r"^PUT /[^?]*/p/fails\.txt")) == 4  # 2 steps x (fast, botocore)
    assert summary.groups["photos"] == {
        "files": 2,
        "uploaded": 1,
        "skipped": 1,
        "failed": 0,
        "bytes_uploaded": 30,
    }
    assert sum(g["failed"] for g in summary.groups.values()) == 1
    assert sum(g["files"] for g in summary.groups.values()) == 4
    assert summary.transient_errors >= 2
    # recorded
    db = tmp_path / "l.db"
    assert _statuses(db) == {
        "p/new.txt": "done",
        "p/photos/same.jpg": "done",
        "p/photos/stale.jpg": "done",
        "p/fails.txt": "failed",
    }
    with sqlite3.connect(db) as conn:
        (status, stored) = conn.execute("SELECT status, summary FROM runs").fetchone()
        proven = conn.execute(
            "SELECT etag, checksum, checksum_algorithm, attempts, source_path FROM items"
            " WHERE key = ?",
            ("p/photos/same.jpg",),
        ).fetchone()
    head = s3.head_object(Bucket=bucket, Key="p/photos/same.jpg", ChecksumMode="ENABLED")
    assert proven == (
        head["ETag"].strip('"'),
        head["ChecksumCRC64NVME"],
        "crc64nvme",
        0,
        str(src / "photos" / "same.jpg"),
    )
    assert status == "failed"
    assert '"uploaded": 2' in stored
    # reported: each file once, the run's id and target
    ((run_id, target),) = events.of("start")
    assert (run_id, target) == (summary.run_id, f"s3://{bucket}/p/")
    assert events.of("finish") == [summary]
    assert sorted(events.of("discovered")) == [
        "fails.txt",
        "new.txt",
        "photos/same.jpg",
        "photos/stale.jpg",
    ]
    assert events.of("skipped_path") == ["Symlink"]
    decisions = {key: (upload, reason) for key, upload, reason in events.of("decision")}
    assert decisions == {
        "p/new.txt": (True, Reason.NEW),
        "p/fails.txt": (True, Reason.NEW),
        "p/photos/same.jpg": (False, Reason.REMOTE_MATCH),
        "p/photos/stale.jpg": (False, Reason.REMOTE_MATCH),  # then not proven: uploaded
    }
    assert sorted(events.of("result")) == [
        ("p/fails.txt", Status.FAILED, True),
        ("p/new.txt", Status.DONE, True),
        ("p/photos/same.jpg", Status.DONE, True),
        ("p/photos/stale.jpg", Status.DONE, True),
    ]
    assert dict(events.of("reason")) == {
        "p/fails.txt": None,
        "p/new.txt": Reason.NEW,
        "p/photos/same.jpg": Reason.REMOTE_MATCH,
        "p/photos/stale.jpg": Reason.CHANGED,
    }
    assert sorted(events.of("file_start")) == ["p/fails.txt", "p/new.txt", "p/photos/stale.jpg"]
    assert sorted(events.of("bytes")) == [("new.txt", 10), ("photos/stale.jpg", 30)]
    hashed: dict[str, int] = {}
    for rel, count in events.of("hashed"):
        hashed[rel] = hashed.get(rel, 0) + count
    # proving the listed objects equal reads them whole, and the display is told
    assert hashed["photos/same.jpg"] == 20
    assert hashed["photos/stale.jpg"] >= 30
    assert s3.get_object(Bucket=bucket, Key="p/photos/stale.jpg")["Body"].read() == b"t" * 30
    assert uploader.ledger is not None
    uploader.ledger.close()

    # the next run: the ledger settles what is done, the failure is retried
    proxy.reset()
    again, events = _uploader(proxy, tmp_path)
    summary = again.upload_tree([src], f"s3://{bucket}/p")
    assert (summary.files, summary.uploaded, summary.skipped, summary.failed) == (5, 1, 4, 0)
    assert summary.ok
    assert [line.split(" ")[0] for line in proxy.requests(r"^(PUT|POST|GET) ")] == ["PUT"]
    decisions = {key: (upload, reason) for key, upload, reason in events.of("decision")}
    assert decisions["p/fails.txt"] == (True, Reason.RETRY)
    assert decisions["p/new.txt"] == (False, Reason.LEDGER_DONE)
    assert _statuses(tmp_path / "l.db")["p/fails.txt"] == "done"
    assert again.ledger is not None
    again.ledger.close()


def test_limit_uploads_at_most_n_and_counts_the_rest_not_started(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(5):
        (src / f"f{i}.txt").write_bytes(b"x" * (i + 1))
    uploader, _ = _uploader(proxy, tmp_path, limit=2)
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert (summary.files, summary.uploaded, summary.skipped, summary.not_started) == (5, 2, 0, 3)
    assert len(proxy.requests(r"^PUT ")) == 2


def test_a_dry_run_says_what_it_would_upload_and_writes_nothing(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    (src / "b.txt").write_bytes(b"b")
    s3.put_object(Bucket=bucket, Key="p/b.txt", Body=b"b")
    uploader, _ = _uploader(proxy, tmp_path, dry_run=True)
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert [d.item.key for d in summary.would_upload] == ["p/a.txt"]
    assert summary.uploaded == 0
    assert not proxy.requests(r"^(PUT|POST|DELETE) ")
    assert _statuses(tmp_path / "l.db") == {}
    with sqlite3.connect(tmp_path / "l.db") as conn:
        assert conn.execute("SELECT count(*) FROM runs").fetchone() == (0,)


def test_a_stopped_run_is_interrupted_and_uploads_nothing_more(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    uploader, events = _uploader(proxy, tmp_path)
    uploader.request_stop()
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert summary.interrupted
    assert not summary.ok
    assert summary.uploaded == 0
    assert not proxy.requests(r"^PUT ")
    with sqlite3.connect(tmp_path / "l.db") as conn:
        assert conn.execute("SELECT status FROM runs").fetchone() == ("interrupted",)
    assert len(events.of("finish")) == 1


@pytest.mark.parametrize("check_remote", [None, False], ids=["check-remote-default", "no-check"])
def test_upload_planned_runs_explicit_pairs_and_counts_refusals(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path, check_remote: bool | None
) -> None:
    from s3stow.models import PlannedUpload, SourceFile, UploadResult

    planned = []
    for name in ("a.txt", "b.txt"):
        path = tmp_path / name
        path.write_bytes(b"abc" if name == "a.txt" else b"bcde")
        stat = path.stat()
        source = SourceFile(path, name, stat.st_size, stat.st_mtime_ns, tmp_path)
        planned.append(PlannedUpload(source, bucket, f"r/{name}"))
    refused = UploadResult(
        tmp_path / "gone", bucket, "r/gone", Status.FAILED, error_class="SourceMissing"
    )
    nameless = UploadResult(tmp_path / "odd", bucket, "", Status.FAILED, error_class="UnsafeKey")
    uploader, events = _uploader(proxy, tmp_path)
    late = Events()
    uploader.add_observer(late)
    target = parse_target(f"s3://{bucket}/r")
    options = {} if check_remote is None else {"check_remote": check_remote}
    summary = uploader.upload_planned(
        [refused, planned[0], nameless, planned[1]], target, **options
    )
    assert (summary.files, summary.uploaded, summary.failed) == (4, 2, 2)
    assert summary.bytes_total == 7
    # the progress display hears the files to send (refusals are not) after each batch
    # and once more when the items are exhausted
    assert events.of("walk") == [(2, 7, False), (2, 7, True)]
    assert proxy.log[0] == f"HEAD /{bucket}"  # the bucket first
    heads = proxy.requests(r"^HEAD /[^?]*/r/")
    # a HEAD per key unless told not to check (the default checks), never a listing
    assert len(heads) == (0 if check_remote is False else 2)
    assert not proxy.requests(r"^GET .*list-type")
    db = tmp_path / "l.db"
    # a missing file is recorded under its key; a refusal without a key under its path
    assert _statuses(db) == {
        "r/a.txt": "done",
        "r/b.txt": "done",
        "r/gone": "failed",
        local_key(tmp_path / "odd"): "failed",
    }
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT mtime_ns FROM items WHERE key = 'r/gone'").fetchone() == (0,)
        assert conn.execute("SELECT command FROM runs").fetchone() == ("retry",)
    assert s3.get_object(Bucket=bucket, Key="r/a.txt")["Body"].read() == b"abc"
    assert len(late.of("result")) == 4  # an observer added later hears every outcome


def test_duplicates_and_collisions_are_counted_reported_and_recorded_with_their_group(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """With ``{md5}`` in the template a second file of the same bytes is a skipped
    duplicate (counted per reason, reported with its file); a key collision is a
    failure recorded, under the file's own path, in its group."""
    import hashlib

    src = tmp_path / "src"
    same = b"the same picture"
    for rel, data in {
        "photos/a.jpg": same,
        "photos/b.jpg": same,
        "docs/c.jpg": same,
        "docs/d.jpg": b"other",
    }.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    uploader, events = _uploader(proxy, tmp_path, key_template="{md5}.{ext}")
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert (summary.files, summary.uploaded, summary.skipped, summary.failed) == (4, 2, 2, 0)
    assert summary.skip_reasons == {"deduplicated": 2}
    first = f"p/{hashlib.md5(same, usedforsecurity=False).hexdigest()}.jpg"
    other = f"p/{hashlib.md5(b'other', usedforsecurity=False).hexdigest()}.jpg"
    assert sorted(events.of("result")) == [
        (first, Status.DONE, True),
        (first, Status.SKIPPED, True),
        (first, Status.SKIPPED, True),
        (other, Status.DONE, True),
    ]
    assert events.of("reason").count((first, Reason.DEDUPLICATED)) == 2
    assert {b for _, b in events.of("bucket")} == {bucket}
    # discovery walks in sorted order: docs/c.jpg owns the content, the photos repeat it
    assert {g: (c["files"], c["uploaded"], c["skipped"]) for g, c in summary.groups.items()} == {
        "docs": (2, 2, 0),
        "photos": (2, 0, 2),
    }
    assert _statuses(tmp_path / "l.db") == {first: "done", other: "done"}  # nothing refused
    assert uploader.ledger is not None
    uploader.ledger.close()

    # {name} without the folders: two files claim one key, both refused and recorded
    clash = tmp_path / "clash"
    for rel in ("photos/n.txt", "docs/n.txt"):
        (clash / rel).parent.mkdir(parents=True)
        (clash / rel).write_bytes(rel.encode())
    # and a name that is not UTF-8: no key at all, recorded under its path as text
    odd = clash / "photos" / os.fsdecode(b"bad\xff.txt")
    odd.write_bytes(b"x")
    again, events = _uploader(proxy, tmp_path, key_template="{name}")
    summary = again.upload_tree([clash], f"s3://{bucket}/q")
    assert (summary.files, summary.uploaded, summary.failed) == (3, 0, 3)
    assert summary.skip_reasons == {}
    assert sorted(r for r in events.of("result") if r[0] == "q/n.txt") == [
        ("q/n.txt", Status.FAILED, True),
        ("q/n.txt", Status.FAILED, True),
    ]
    # the name is refused while walking, before it has a group
    assert {g: c["failed"] for g, c in summary.groups.items()} == {
        "photos": 1,
        "docs": 1,
        "(none)": 1,
    }
    assert again.ledger is not None
    again.ledger.close()
    with sqlite3.connect(tmp_path / "l.db") as conn:
        rows = conn.execute(
            "SELECT key, source_path, status, error_class, grp FROM items WHERE status = 'failed'"
        ).fetchall()
    recorded = [local_key(clash / "docs" / "n.txt"), local_key(clash / "photos" / "n.txt")]
    assert sorted(rows[:4] for rows in rows if rows[3] == "KeyCollision") == [
        (recorded[0], recorded[0], "failed", "KeyCollision"),
        (recorded[1], recorded[1], "failed", "KeyCollision"),
    ]
    assert sorted((row[0], row[4]) for row in rows) == sorted(
        [(recorded[0], "docs"), (recorded[1], "photos"), (local_key(odd), None)]
    )
    ((key, path, *_),) = [row for row in rows if row[3] != "KeyCollision"]
    assert key == path == local_key(odd)
    assert key.endswith("bad\\xff.txt")


def test_refusals_in_a_dry_run_or_without_a_ledger_are_counted_not_recorded(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    from s3stow.models import UploadResult

    refused = UploadResult(tmp_path / "gone", bucket, "r/gone", Status.FAILED, error_class="X")
    target = parse_target(f"s3://{bucket}/r")
    dry, _ = _uploader(proxy, tmp_path, dry_run=True)
    assert dry.upload_planned([refused], target).failed == 1
    assert _statuses(tmp_path / "l.db") == {}
    bare = Uploader(Settings(endpoint_url=proxy.url))
    assert bare.upload_planned([refused], target).failed == 1


def test_a_transfer_context_carries_the_run_id_it_is_given(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    uploader, _ = _uploader(proxy, tmp_path)
    with uploader.transfer_context(run_id="job-7") as ctx:
        assert ctx.run_id == "job-7"
        assert ctx.ledger is uploader.ledger


@pytest.mark.parametrize("size", [5 * 1024 * 1024, 5 * 1024 * 1024 + 1])
def test_the_multipart_threshold_is_a_strict_bound(
    proxy: FaultProxy, bucket: str, tmp_path: Path, size: int
) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(os.urandom(size))
    uploader, _ = _uploader(proxy, tmp_path, multipart_threshold=size - (size % 2))
    result = uploader.upload_file(path, target=f"s3://{bucket}/p")
    assert result.status == Status.DONE, result.error
    assert bool(proxy.requests(r"^POST .*uploads")) is (size % 2 == 1)


def test_no_clobber_keeps_a_listed_object_and_records_why(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "kept.txt").write_bytes(b"local")
    (src / "new.txt").write_bytes(b"new")
    s3.put_object(Bucket=bucket, Key="p/kept.txt", Body=b"remote, another size")
    uploader, events = _uploader(proxy, tmp_path, no_clobber=True)
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert (summary.uploaded, summary.skipped) == (1, 1)
    assert s3.get_object(Bucket=bucket, Key="p/kept.txt")["Body"].read() == b"remote, another size"
    with sqlite3.connect(tmp_path / "l.db") as conn:
        row = conn.execute(
            "SELECT source_path, size, status FROM items WHERE key = 'p/kept.txt'"
        ).fetchone()
    assert row == (str(src / "kept.txt"), 5, "skipped")
    results = {key: status for key, status, _ in events.of("result")}
    assert results == {"p/kept.txt": Status.SKIPPED, "p/new.txt": Status.DONE}
    assert dict(events.of("reason")) == {"p/kept.txt": Reason.NO_CLOBBER, "p/new.txt": Reason.NEW}
    assert len(proxy.requests(r"^PUT ")) == 1  # only new.txt; kept.txt not even tried


def test_upload_file_reports_what_cannot_be_uploaded_and_raises_what_stops_a_run(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    from s3stow.errors import AuthError, SourceError

    uploader, _ = _uploader(proxy, tmp_path, min_size=2)
    target = f"s3://{bucket}/p"
    with pytest.raises(SourceError, match="does not exist"):
        uploader.upload_file(tmp_path / "nope.txt", target=target)
    # one file is asked for: a directory (empty, or whose first entry is a FIFO or a
    # file) is refused, not walked for a file to take
    folder = tmp_path / "folder"
    folder.mkdir()
    with pytest.raises(SourceError, match="is a directory"):
        uploader.upload_file(folder, target=target)
    os.mkfifo(folder / "0fifo")
    (folder / "a.txt").write_bytes(b"xx")
    with pytest.raises(SourceError, match="is a directory"):
        uploader.upload_file(folder, target=target)
    odd = tmp_path / "bad\nname.txt"
    odd.write_bytes(b"xx")
    refused = uploader.upload_file(odd, target=target)
    assert (refused.status, refused.error_class) == (Status.FAILED, "UnsafeKey")
    assert (refused.path, refused.key, refused.size) == (odd, "p/bad\nname.txt", 2)
    assert refused.error is not None
    assert "control character" in refused.error
    small = tmp_path / "small.txt"
    small.write_bytes(b"x")  # below min_size
    left = uploader.upload_file(small, target=target)
    assert (left.status, left.error_class, left.path) == (Status.FAILED, "NotSelected", small)
    assert left.error is not None
    assert left.error.startswith("not selected")
    assert not proxy.requests(r"^PUT ")
    good = tmp_path / "good.txt"
    good.write_bytes(b"xx")
    proxy.add(r"^PUT ", "status", times=10, status=403, code="AccessDenied")
    with pytest.raises(AuthError):
        uploader.upload_file(good, target=target)
    assert uploader.ledger is not None
    assert uploader.ledger.lookup(bucket, ["p/good.txt"])["p/good.txt"].status == Status.FAILED
    uploader.ledger.close()


def test_upload_file_refuses_a_key_the_ledger_holds_for_another_file(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """A key whose object the ledger holds, verified, for another file that still exists
    is not overwritten by ``upload_file``: the refusal is its result (a key collision
    naming the holder, under the second file's path and the key), nothing is sent, and
    S3 keeps the holder's bytes."""
    uploader, _ = _uploader(proxy, tmp_path)
    first = tmp_path / "first.txt"
    first.write_bytes(b"first")
    second = tmp_path / "second.txt"
    second.write_bytes(b"second")
    target = f"s3://{bucket}/p"
    assert uploader.upload_file(first, "p/x.txt", target=target).status == Status.DONE
    puts = len(proxy.requests(r"^PUT "))
    refused = uploader.upload_file(second, "p/x.txt", target=target)
    assert (refused.status, refused.error_class) == (Status.FAILED, "KeyCollision")
    assert (refused.path, refused.bucket, refused.key) == (second, bucket, "p/x.txt")
    assert refused.error is not None
    assert f"key 'p/x.txt' holds {first}" in refused.error
    assert len(proxy.requests(r"^PUT ")) == puts
    assert s3.get_object(Bucket=bucket, Key="p/x.txt")["Body"].read() == b"first"
    assert uploader.ledger is not None
    uploader.ledger.close()


def test_upload_file_reports_a_file_that_vanishes_as_discovery_reads_it(
    proxy: FaultProxy, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file passes the source check, then is deleted before discovery reads its
    size (the race is timed by a hook that deletes it just before that read): a failed
    result with discovery's reason, under the key asked for (none: ``""``), nothing sent."""
    from s3stow.models import UploadResult
    from s3stow.plan import discover

    read = discover._single_file

    def vanishing(path: Path, group: str) -> Any:
        path.unlink()
        return read(path, group)

    monkeypatch.setattr(discover, "_single_file", vanishing)
    uploader, _ = _uploader(proxy, tmp_path)
    for key, expected_key in ((None, ""), ("k/x.txt", "k/x.txt")):
        path = tmp_path / "gone.txt"
        path.write_bytes(b"xx")
        result = uploader.upload_file(path, key, target=f"s3://{bucket}/p")
        assert result == UploadResult(
            path,
            bucket,
            expected_key,
            Status.FAILED,
            error_class="SourceError",
            error="cannot stat: No such file or directory",
        )
    assert not proxy.requests(r"^PUT ")
    assert uploader.ledger is not None
    uploader.ledger.close()


def test_the_sha256_read_of_a_multipart_file_is_shown_as_hashing(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """``sha256_metadata`` reads a multipart file once more before CreateMultipartUpload:
    the observers see that read as hashing, in bytes, up to the file's size."""
    MiB = 1024 * 1024
    uploader, events = _uploader(
        proxy, tmp_path, sha256_metadata=True, multipart_threshold=5 * MiB, part_size=5 * MiB
    )
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(6 * MiB))
    result = uploader.upload_file(path, target=f"s3://{bucket}/p")
    assert result.status == Status.DONE
    counts = [count for name, count in events.of("hashed") if name == "big.bin"]
    assert counts
    assert all(isinstance(count, int) and count > 0 for count in counts)
    assert sum(counts) == 6 * MiB  # the whole file, once
    assert len(proxy.requests(r"^POST .*\?uploads")) == 1
    assert uploader.ledger is not None
    uploader.ledger.close()


def test_another_file_put_in_place_since_its_interrupted_upload_is_sent_whole(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """As below, but the file is replaced by another one (a new inode), the same size,
    its mtime put back, and with no change time to tell (Windows has none: the ledger's
    is cleared here to stand for it): the inode the upload recorded is what tells. The
    next run sends every part again, and S3 has the new bytes, not part 1 of the old."""
    MiB = 1024 * 1024
    uploader, _ = _uploader(proxy, tmp_path, multipart_threshold=5 * MiB, part_size=5 * MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * 6 * MiB)
    before = path.stat()
    proxy.add(r"^PUT .*partNumber=2", "status", times=100, status=500, code="InternalError")
    first = uploader.upload_file(path, target=f"s3://{bucket}/p")
    assert first.status == Status.FAILED
    assert uploader.ledger is not None
    assert uploader.ledger.multipart_state(bucket, "p/big.bin") is not None  # to resume
    proxy.reset()
    replacement = tmp_path / "big.bin.new"
    replacement.write_bytes(b"b" * 6 * MiB)
    os.replace(replacement, path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_ino != before.st_ino
    with sqlite3.connect(tmp_path / "l.db") as conn:
        conn.execute("UPDATE multipart SET ctime_ns = NULL WHERE key = 'p/big.bin'")
    second = uploader.upload_file(path, target=f"s3://{bucket}/p")
    assert second.status == Status.DONE
    assert len(proxy.requests(r"^PUT .*partNumber=1")) == 1  # sent again
    body = s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read()
    assert body == b"b" * 6 * MiB
    uploader.ledger.close()


def test_no_clobber_keeps_an_object_written_while_the_parts_were_sent(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """``--no-clobber`` completes a multipart upload only if the key is still free
    (``If-None-Match: *`` on CompleteMultipartUpload): an object another writer put at
    the key while the parts were sent is kept, and the file is failed, not done."""
    MiB = 1024 * 1024
    uploader, _ = _uploader(
        proxy, tmp_path, no_clobber=True, multipart_threshold=5 * MiB, part_size=5 * MiB
    )
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * 6 * MiB)

    def another_writer(_: str) -> None:
        s3.put_object(Bucket=bucket, Key="p/big.bin", Body=b"theirs")

    proxy.add(r"^PUT .*partNumber=1&", "callback", callback=another_writer)
    result = uploader.upload_file(path, target=f"s3://{bucket}/p")
    assert (result.status, result.error_class) == (Status.FAILED, "PreconditionFailed")
    assert s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read() == b"theirs"
    assert uploader.ledger is not None
    uploader.ledger.close()


@pytest.mark.skipif(os.name == "nt", reason="no status-change time on Windows")
def test_a_file_rewritten_in_place_since_its_interrupted_upload_is_sent_whole(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """Part 1 of a multipart upload is sent, part 2 fails: the upload is left to resume.
    The file is then rewritten in place, the same size, its mtime put back: only its
    status-change time says so. The next run must not resume (part 1 would be the old
    bytes under a done object): it sends every part again, and S3 has the new bytes."""
    MiB = 1024 * 1024
    uploader, _ = _uploader(proxy, tmp_path, multipart_threshold=5 * MiB, part_size=5 * MiB)
    path = tmp_path / "big.bin"
    path.write_bytes(b"a" * 6 * MiB)
    before = path.stat()
    proxy.add(r"^PUT .*partNumber=2", "status", times=100, status=500, code="InternalError")
    first = uploader.upload_file(path, target=f"s3://{bucket}/p")
    assert first.status == Status.FAILED
    assert uploader.ledger is not None
    assert uploader.ledger.multipart_state(bucket, "p/big.bin") is not None  # to resume
    proxy.reset()
    with path.open("r+b") as f:  # in place: the same inode, the same size
        f.write(b"b" * 6 * MiB)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_ctime_ns != before.st_ctime_ns
    second = uploader.upload_file(path, target=f"s3://{bucket}/p")
    assert second.status == Status.DONE
    assert len(proxy.requests(r"^PUT .*partNumber=1")) == 1  # sent again
    body = s3.get_object(Bucket=bucket, Key="p/big.bin")["Body"].read()
    assert body == b"b" * 6 * MiB
    uploader.ledger.close()


def test_upload_tree_leaves_out_the_ledger_inside_the_tree(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """A ledger kept inside the tree uploaded (and its journal files) is s3stow's own
    working file, not data: never sent (``tests/test_guarantees.py`` has the CLI's)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    ledger = open_ledger(str(src / "l.db"))
    uploader = Uploader(
        Settings(endpoint_url=proxy.url, etag_check="on", concurrency=2), ledger=ledger
    )
    (src / "l.db-journal").write_bytes(b"j")  # as SQLite leaves one mid-transaction
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert summary.uploaded == 1
    stored = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert stored == {"p/a.txt"}
    ledger.close()


def test_the_bucket_is_checked_once_per_run_and_the_run_id_says_when(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    import re

    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        (src / f"f{i}.txt").write_bytes(b"x")
    uploader, _ = _uploader(proxy, tmp_path)
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert summary.uploaded == 4
    assert proxy.requests(rf"^HEAD /{bucket}$") == [f"HEAD /{bucket}"]
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", summary.run_id)
    assert summary.concurrency == uploader.limiter.limit == 2
    assert (summary.throttled, summary.fatal) == (0, None)


def test_a_file_that_no_longer_matches_its_discovery_is_not_sent(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """Hashed, then checked against what discovery saw before anything is sent."""
    from s3stow.models import PlannedUpload, SourceFile

    path = tmp_path / "a.txt"
    path.write_bytes(b"grown since")
    stat = path.stat()
    stale = SourceFile(path, "a.txt", stat.st_size - 1, stat.st_mtime_ns, tmp_path)
    uploader, _ = _uploader(proxy, tmp_path)
    summary = uploader.upload_planned(
        [PlannedUpload(stale, bucket, "r/a.txt")], parse_target(f"s3://{bucket}/r")
    )
    assert (summary.changed, summary.uploaded) == (1, 0)
    assert [(f.key, f.status, f.error_class) for f in summary.failures] == [
        ("r/a.txt", Status.CHANGED, "SourceChanged")
    ]
    assert not proxy.requests(r"^PUT ")


def test_a_stop_reaches_a_transfer_not_started_and_one_waiting_to_retry(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    path = tmp_path / "a.txt"
    path.write_bytes(b"abc")
    uploader, _ = _uploader(proxy, tmp_path, retry_base_delay=3600, retry_max_delay=3600)
    target = f"s3://{bucket}/p"
    # the first answer fails, and the run is stopped before it arrives: no retry is waited for
    proxy.add(
        r"^PUT ",
        "status",
        times=10,
        status=500,
        code="InternalError",
        callback=lambda _: uploader.request_stop(),
    )
    waiting = uploader.upload_file(path, target=target)
    assert waiting.status == Status.PLANNED
    assert len(proxy.requests(r"^PUT ")) == 2  # the fast path's, then botocore's
    proxy.reset()
    later = uploader.upload_file(path, target=target)
    assert later.status == Status.PLANNED
    assert (later.path, later.key) == (waiting.path, waiting.key) == (path, "p/a.txt")
    assert proxy.requests(r"^PUT ") == []


def test_a_remote_match_by_etag_records_no_checksum(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"same bytes")
    s3.put_object(Bucket=bucket, Key="p/a.txt", Body=b"same bytes", ChecksumAlgorithm="CRC32")
    uploader, _ = _uploader(proxy, tmp_path)
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert (summary.uploaded, summary.skipped) == (0, 1)
    with sqlite3.connect(tmp_path / "l.db") as conn:
        row = conn.execute("SELECT status, checksum, checksum_algorithm FROM items").fetchone()
    assert row == ("done", None, None)


def test_the_bucket_is_checked_before_a_backslash_key_is_probed(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """A key with ``\\`` asks the server how it stores one (a probe object): only once
    the bucket is known to be there, so a missing bucket is named as such."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "back\\slash.txt").write_bytes(b"x")
    uploader, _ = _uploader(proxy, tmp_path, etag_check="auto")
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert summary.uploaded == 1
    assert uploader.probes.sent == 2  # how it stores a '\', whether it checks checksums
    assert any("/.s3stow-probe/" in line for line in proxy.log)
    assert proxy.log[0] == f"HEAD /{bucket}"  # after the bucket check
    assert uploader.ledger is not None
    uploader.ledger.close()


def test_a_key_folded_into_an_unsafe_one_is_refused_naming_the_server(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """Where the server stores ``\\`` as ``/`` (an answer pinned here: moto keeps it),
    ``a\\`` would become the unsafe ``a/``: refused, naming the server that folds."""
    from s3stow.store.probes import BACKSLASH_KEYS, FOLDS

    src = tmp_path / "src"
    src.mkdir()
    (src / "a\\").write_bytes(b"x")
    uploader, _ = _uploader(proxy, tmp_path)
    uploader.probes.pin(BACKSLASH_KEYS, bucket, FOLDS)
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    (failure,) = summary.failures
    assert failure.error_class == "UnsafeKey"
    assert failure.error is not None
    assert f"({proxy.url} stores '\\' in keys as '/')" in failure.error
    assert not proxy.requests(r"^PUT ")
    assert uploader.ledger is not None
    uploader.ledger.close()


def test_a_run_keeps_limit_and_ahead_files_submitted_while_every_request_waits(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """Every PUT held at the proxy, concurrency 2 without growth: 2 files in requests,
    2 queued ahead, a fifth decided and waiting for room, and no sixth: the files held
    by a run stay bounded whatever the tree's size (then all ten are uploaded)."""
    src = tmp_path / "src"
    src.mkdir()
    for i in range(10):
        (src / f"f{i}.txt").write_bytes(b"x" * (i + 1))
    held = proxy.add(r"^PUT ", "hold", times=1000)
    uploader, events = _uploader(proxy, tmp_path, concurrency=2, max_concurrency=2)
    done: list[Any] = []
    run = threading.Thread(
        target=lambda: done.append(uploader.upload_tree([src], f"s3://{bucket}/p"))
    )
    run.start()
    try:
        deadline = time.monotonic() + 60
        while len(events.of("decision")) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.5)  # room for a sixth decision, were the bound one file loose
        assert len(events.of("decision")) == 5
        assert len(proxy.requests(r"^PUT ")) <= 2
    finally:
        held.release()
        run.join(timeout=120)
    assert done
    assert (done[0].uploaded, done[0].failed) == (10, 0)


def test_a_run_stopped_by_a_missing_bucket_is_failed_not_interrupted(
    proxy: FaultProxy, tmp_path: Path
) -> None:
    """The bucket check's error ends the run as failed, with the error as its fatal
    reason, in the summary and in the ledger's row (not "interrupted", as a Ctrl-C)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    uploader, events = _uploader(proxy, tmp_path)
    with pytest.raises(BucketMissingError):
        uploader.upload_tree([src], "s3://no-such-bucket-s3stow-test/p")
    (summary,) = events.of("finish")
    assert (summary.interrupted, summary.ok) == (False, False)
    assert summary.fatal
    assert "no-such-bucket-s3stow-test" in summary.fatal
    with sqlite3.connect(tmp_path / "l.db") as conn:
        assert conn.execute("SELECT status FROM runs").fetchall() == [("failed",)]


def test_the_uploaders_limiter_may_grow_to_the_settings_ceiling(tmp_path: Path) -> None:
    """``--max-concurrency`` reaches the limiter: it starts at ``concurrency``, slow
    start climbs toward the ceiling; a ceiling at ``concurrency`` pins it."""
    grows = Uploader(Settings(endpoint_url="http://127.0.0.1:9", concurrency=4, max_concurrency=64))
    assert (grows.limiter.limit, grows.limiter.ceiling) == (4, 64)
    assert grows.limiter.start is not None
    pinned = Uploader(Settings(endpoint_url="http://127.0.0.1:9", concurrency=4, max_concurrency=4))
    assert (pinned.limiter.limit, pinned.limiter.ceiling, pinned.limiter.start) == (4, 4, None)


def test_paths_skipped_while_walking_are_counted_per_reason(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """Two symlinks (not followed) are two skips for the same reason, not one."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    (src / "one").symlink_to(src / "a.txt")
    (src / "two").symlink_to(src / "a.txt")
    uploader, _ = _uploader(proxy, tmp_path)
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert (summary.files, summary.uploaded, summary.skipped) == (3, 1, 2)
    assert summary.skip_reasons == {"symlink": 2}


@pytest.mark.skipif(os.name == "nt", reason="a name that is not UTF-8 needs bytes names")
def test_a_path_walking_fails_is_a_failure_with_its_error_class(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """A path discovery cannot upload (a name that is not UTF-8) is a failure of the run
    with discovery's error class and reason, in the summary and in the ledger (where
    ``retry --list`` groups failures by class), under its local key; the rest is sent."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_bytes(b"ok")
    bad = src / os.fsdecode(b"bad\xff.txt")
    bad.write_bytes(b"x")
    uploader, _ = _uploader(proxy, tmp_path)
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert (summary.files, summary.uploaded, summary.failed) == (2, 1, 1)
    [failure] = summary.failures
    assert (failure.status, failure.error_class, failure.path) == (
        Status.FAILED,
        "InvalidName",
        bad,
    )
    assert (failure.error or "").startswith("name is not valid UTF-8")
    assert uploader.ledger is not None
    uploader.ledger.close()
    with sqlite3.connect(tmp_path / "l.db") as conn:
        rows = conn.execute("SELECT key, error_class FROM items WHERE status = 'failed'")
        assert rows.fetchall() == [(local_key(bad), "InvalidName")]


def test_the_settings_follow_symlinks_reaches_the_walk(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    """``follow_symlinks`` (``--follow-symlinks``): a symlink to a file of the tree is
    uploaded under its own key with the file's bytes, not skipped as the test above's
    are without it."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    (src / "link.txt").symlink_to(src / "a.txt")
    uploader, _ = _uploader(proxy, tmp_path, follow_symlinks=True)
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert (summary.files, summary.uploaded, summary.skipped) == (2, 2, 0)
    assert summary.skip_reasons == {}
    assert s3.get_object(Bucket=bucket, Key="p/link.txt")["Body"].read() == b"a"
    assert uploader.ledger is not None
    uploader.ledger.close()


class _StoreWithoutCounter:
    """An embedder's store: a real ``S3Store`` behind it, but no ``transient_errors``
    (``ObjectStore`` does not ask for one)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "transient_errors":
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_a_store_without_an_error_count_reports_no_transient_errors(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """A run's transient errors are what the store counted during it; a store that
    counts none (an embedder's own) reports none, not one."""
    from s3stow.store.s3 import S3Store

    settings = Settings(endpoint_url=proxy.url, etag_check="on")
    store = _StoreWithoutCounter(S3Store.from_settings(settings))
    uploader = Uploader(settings, store=store)  # type: ignore[arg-type]
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    summary = uploader.upload_tree([src], f"s3://{bucket}/p")
    assert (summary.uploaded, summary.transient_errors) == (1, 0)


class _StopAfter(Observer):
    """Asks the uploader to stop (as Ctrl+C does) once ``count`` files have an outcome."""

    def __init__(self, uploader: Uploader, count: int) -> None:
        self.uploader, self.count = uploader, count

    def on_result(self, result: Any, source: Any) -> None:
        self.count -= 1
        if self.count == 0:
            self.uploader.request_stop()


def test_an_interrupted_run_counts_the_files_it_left_and_says_the_walk_stopped(
    proxy: FaultProxy, bucket: str, tmp_path: Path
) -> None:
    """A run stopped by Ctrl+C said "N uploaded of M files" and nothing of the files found
    but never started, nor that it had not walked the whole tree: the summary, --json
    and the status file count them (``unfinished``, ``walk_complete``)."""
    import io
    import json

    from rich.console import Console

    from s3stow.report.console import print_summary
    from s3stow.report.status import StatusHeartbeat

    src = tmp_path / "src"
    src.mkdir()
    for index in range(600):  # three of the walk's batches: the run stops in the first
        (src / f"f{index:03}.txt").write_bytes(b"x")
    uploader, _ = _uploader(proxy, tmp_path)
    uploader.add_observer(_StopAfter(uploader, 5))
    status = tmp_path / "status.json"
    uploader.add_observer(StatusHeartbeat(status, interval=60))
    summary = uploader.upload_tree(src, f"s3://{bucket}/p")
    assert summary.interrupted
    outcomes = summary.uploaded + summary.skipped + summary.failed
    assert 5 <= outcomes < summary.files < 600
    assert summary.unfinished == summary.files - outcomes
    assert summary.walk_complete is False
    totals = summary.totals()
    assert (totals["unfinished"], totals["walk_complete"]) == (summary.unfinished, False)
    state = json.loads(status.read_text())
    assert state["totals"]["unfinished"] == summary.unfinished
    out = io.StringIO()
    print_summary(summary, Console(file=out, width=300), resume_hint="s3stow upload again")
    assert (
        f"left for the next run: {summary.unfinished} files found and not uploaded yet"
        in out.getvalue()
    )
    assert "the walk of the sources stopped before their end" in out.getvalue()
    # the next run finishes them all, and leaves nothing
    (tmp_path / "next").mkdir()
    again, _ = _uploader(proxy, tmp_path / "next")
    done = again.upload_tree(src, f"s3://{bucket}/p")
    assert (done.files, done.uploaded + done.skipped) == (600, 600)
    assert (done.unfinished, done.walk_complete, done.totals()["unfinished"]) == (0, True, 0)
