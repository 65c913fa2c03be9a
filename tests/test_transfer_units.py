"""Part sizing within S3's limits, the AIMD request limiter, the memory budget, the
run's counts (``Tally``), the Content-Type guessed from a file's name."""

from __future__ import annotations

import mimetypes
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from s3stow.errors import SourceChanged, TransferError
from s3stow.models import Reason, RunSummary, SourceFile, Status, UploadResult
from s3stow.transfer.context import _guess_type, ensure_unchanged
from s3stow.transfer.limits import MemoryBudget, RequestLimiter
from s3stow.transfer.parts import (
    MAX_OBJECT,
    MAX_PART,
    MAX_PARTS,
    MIN_PART,
    choose_part_size,
    part_ranges,
)
from s3stow.transfer.tally import Tally

MiB = 1024 * 1024
GiB = 1024 * MiB


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (100 * MiB, 8 * MiB),
        (512 * MiB - 1, 8 * MiB),
        (512 * MiB, 64 * MiB),
        (600 * MiB, 64 * MiB),
        (8 * GiB, 64 * MiB),
        (8 * GiB + 1, 128 * MiB),
        (9 * GiB, 128 * MiB),
    ],
)
def test_adaptive_part_sizes(size: int, expected: int) -> None:
    assert choose_part_size(size) == expected


@given(
    st.integers(min_value=1, max_value=MAX_OBJECT),
    st.one_of(st.none(), st.integers(min_value=MIN_PART, max_value=MAX_PART)),
)
def test_part_size_always_within_limits(size: int, requested: int | None) -> None:
    part = choose_part_size(size, requested)
    assert MIN_PART <= part <= MAX_PART
    assert -(-size // part) <= MAX_PARTS
    assert isinstance(part, int)
    assert part == requested or part % MiB == 0  # raised: to a whole number of MiB


def test_a_part_size_too_small_for_10000_parts_is_raised_to_whole_mib() -> None:
    # 100 GiB in 10,000 parts needs 10,737,419 bytes a part: 11 MiB, not 5
    assert choose_part_size(100 * GiB, 5 * MiB) == 11 * MiB


def test_part_ranges_cover_the_file_exactly() -> None:
    ranges = part_ranges(23 * MiB, 8 * MiB)
    assert [(n, o, ln) for n, o, ln in ranges] == [
        (1, 0, 8 * MiB),
        (2, 8 * MiB, 8 * MiB),
        (3, 16 * MiB, 7 * MiB),
    ]


def test_too_large_file_is_refused() -> None:
    with pytest.raises(TransferError, match="5 TiB"):
        choose_part_size(MAX_OBJECT + 1)


def test_limiter_halves_on_throttle_and_recovers() -> None:
    limiter = RequestLimiter(16, cooldown=0.0)
    limiter.on_throttle()
    assert limiter.limit == 8
    limiter.on_throttle()
    assert limiter.limit == 4
    for _ in range(4):
        limiter.on_success()
    assert limiter.limit == 5
    for _ in range(200):  # +1 per `limit` successes: 5 + 6 + ... + 15 < 200
        limiter.on_success()
    assert limiter.limit == 16


def test_limiter_caps_concurrency() -> None:
    limiter = RequestLimiter(3)
    peak = 0
    active = 0
    lock = threading.Lock()
    barrier = threading.Event()

    def work() -> None:
        nonlocal peak, active
        with limiter.slot():
            with lock:
                active += 1
                peak = max(peak, active)
            barrier.wait(0.05)
            with lock:
                active -= 1

    threads = [threading.Thread(target=work) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert peak == 3


def test_memory_budget_blocks_until_released() -> None:
    budget = MemoryBudget(10)
    entered = threading.Event()
    with budget.hold(8):

        def second() -> None:
            with budget.hold(5):
                entered.set()

        worker = threading.Thread(target=second, daemon=True)
        worker.start()
        assert not entered.wait(0.2)
    assert entered.wait(2)
    with budget.hold(50):  # larger than the budget: admitted when nothing else is held
        pass


def test_limiter_cuts_once_per_cooldown_never_below_one_and_counts_every_throttle() -> None:
    limiter = RequestLimiter(4, cooldown=3600.0)
    limiter.on_throttle()
    limiter.on_throttle()  # within the cooldown: counted, not cut again
    assert (limiter.limit, limiter.throttle_events) == (2, 2)
    quick = RequestLimiter(3, cooldown=0.0)
    quick.on_throttle()
    assert quick.limit == 1  # halved, rounded down
    quick.on_throttle()
    assert quick.limit == 1
    quick.on_success()  # one success at limit 1: 2
    assert quick.limit == 2
    quick.on_success()  # one of the two needed
    quick.on_throttle()  # a cut forgets the successes counted so far
    assert quick.limit == 1
    quick.on_success()
    quick.on_success()  # 1 -> 2, then one of two
    assert quick.limit == 2
    wide = RequestLimiter(8, cooldown=0.0)
    wide.on_throttle()
    wide.on_throttle()  # 2
    wide.on_success()  # one of two
    wide.on_throttle()  # 1, the success forgotten
    for _ in range(3):
        wide.on_success()  # 1 -> 2 after one, then two more: 2 -> 3
    assert wide.limit == 3
    again = RequestLimiter(8, cooldown=0.0)
    again.on_success()  # at the maximum: not counted
    again.on_throttle()  # 4
    for _ in range(3):
        again.on_success()
    assert again.limit == 4  # 3 of the 4 needed
    again.on_success()
    assert again.limit == 5
    full = RequestLimiter(2)
    for _ in range(10):
        full.on_success()
    assert full.limit == 2  # never above the configured concurrency


def test_limiter_slot_frees_on_error_and_admits_a_waiter() -> None:
    limiter = RequestLimiter(1)
    with pytest.raises(RuntimeError), limiter.slot():
        raise RuntimeError("boom")
    assert limiter.active == 0
    entered = threading.Event()
    with limiter.slot():

        def take() -> None:
            with limiter.slot():
                entered.set()

        worker = threading.Thread(target=take, daemon=True)
        worker.start()
        assert not entered.wait(0.1)
    assert entered.wait(5)


def test_limiter_cooldown_is_measured_inclusively(monkeypatch: pytest.MonkeyPatch) -> None:
    """A throttle exactly ``cooldown`` after the last cut cuts again (a frozen clock)."""
    import s3stow.transfer.limits as limits

    now = [100.0]
    monkeypatch.setattr(limits.time, "monotonic", lambda: now[0])
    limiter = RequestLimiter(16, cooldown=2.0)
    limiter.on_throttle()
    now[0] += 1.5
    limiter.on_throttle()
    assert limiter.limit == 8
    now[0] += 0.5  # exactly 2.0 later
    limiter.on_throttle()
    assert limiter.limit == 4


def _source(name: str, group: str = "") -> SourceFile:
    return SourceFile(Path(name), name, 10, 1, Path("."), group=group)


def _result(name: str, status: Status, reason: Reason | None = None) -> UploadResult:
    return UploadResult(Path(name), "b", name, status, reason=reason)


def test_tally_counts_each_outcome_once_under_its_group() -> None:
    summary = RunSummary("r")
    tally = Tally()
    cases = [
        (Status.DONE, Reason.REMOTE_MATCH, "photos"),  # already there: skipped
        (Status.DONE, Reason.NEW, "photos"),
        (Status.DONE, None, ""),
        (Status.SKIPPED, Reason.LEDGER_DONE, "photos"),
        (Status.CHANGED, None, "photos"),
        (Status.FAILED, None, "docs"),
    ]
    results = []
    for i, (status, reason, group) in enumerate(cases):
        results.append(_result(f"f{i}", status, reason))
        tally.count(summary, results[-1], _source(f"f{i}", group))
    tally.count(summary, _result("gone", Status.FAILED), None)  # no source: no group
    assert (summary.uploaded, summary.skipped, summary.changed, summary.failed) == (2, 2, 1, 2)
    assert summary.failures == [results[4], results[5], summary.failures[2]]
    assert summary.failures[2].path == Path("gone")
    zero = {"files": 0, "uploaded": 0, "skipped": 0, "failed": 0, "bytes_uploaded": 0}
    assert summary.groups == {
        "photos": {**zero, "files": 4, "uploaded": 1, "skipped": 2, "failed": 1},
        "(none)": {**zero, "files": 2, "uploaded": 1, "failed": 1},
        "docs": {**zero, "files": 1, "failed": 1},
    }


def test_tally_counts_every_file_changed_during_its_upload() -> None:
    """Two files that changed while they were read are two in the summary (and two
    failures to report), not one."""
    summary = RunSummary("r")
    tally = Tally()
    for name in ("a", "b"):
        tally.count(summary, _result(name, Status.CHANGED), _source(name))
    assert (summary.changed, summary.failed, len(summary.failures)) == (2, 0, 2)


def test_tally_names_each_no_clobber_skip_and_no_other() -> None:
    """A file skipped because ``--no-clobber`` found an object there is counted by name
    (its bytes are not proven in S3), once per file; a skip proven by the ledger or by
    S3 is not named."""
    summary = RunSummary("r")
    tally = Tally()
    tally.count(summary, _result("a", Status.SKIPPED, Reason.NO_CLOBBER), _source("a"))
    assert summary.skip_reasons == {"no-clobber": 1}
    tally.count(summary, _result("b", Status.SKIPPED, Reason.NO_CLOBBER), _source("b"))
    tally.count(summary, _result("c", Status.SKIPPED, Reason.LEDGER_DONE), _source("c"))
    tally.count(summary, _result("d", Status.DONE, Reason.REMOTE_MATCH), _source("d"))
    assert summary.skip_reasons == {"no-clobber": 2}
    assert summary.skipped == 4


def test_tally_bytes_are_those_since_the_mark_by_group() -> None:
    """One ``Uploader`` runs many times (watch, retry): each run's summary gets the bytes
    sent and resumed since its own mark, and a group first seen after the mark counts
    in full."""
    tally = Tally()
    tally.add_sent(_source("a", "photos"), 100)
    tally.add_resumed(7)
    first = RunSummary("1")
    tally.close(first, tally.mark())  # nothing since the mark
    assert (first.bytes_uploaded, first.bytes_resumed, first.groups) == (0, 0, {})

    mark = tally.mark()
    tally.add_sent(_source("a", "photos"), 30)
    tally.add_sent(_source("b", "photos"), 5)
    tally.add_sent(_source("c"), 40)  # no group
    tally.add_sent(_source("d", "docs"), 2)
    tally.add_resumed(11)
    tally.add_resumed(3)
    second = RunSummary("2")
    tally.close(second, mark)
    assert second.bytes_uploaded == 77
    assert second.bytes_resumed == 14
    sent = {group: counts["bytes_uploaded"] for group, counts in second.groups.items()}
    assert sent == {"photos": 35, "(none)": 40, "docs": 2}
    # the mark is a copy: later bytes do not move it
    tally.add_sent(_source("a", "photos"), 1)
    assert mark.sent == {"photos": 100}
    assert mark.resumed == 7


@pytest.mark.parametrize(
    "name",
    ["..js", "...tar.gz", ".js", ".bashrc", ".eslintrc.json", ".a.tar.gz", "..", "a..js", "x.js"],
)
def test_a_leading_dot_is_no_suffix_as_for_mimetypes(name: str) -> None:
    """The Content-Type cached by suffix is Python's own guess for the whole name, for
    dotfiles too: a name's leading dots start its stem (``..js`` has no suffix), so its
    first dot after them, not the first after one character, starts the suffix
    (``test_http1.py`` checks names without a leading dot, drawn at random)."""
    assert _guess_type(name) == mimetypes.guess_type(name)[0]


def test_a_file_changed_in_size_and_mtime_says_both(tmp_path: Path) -> None:
    """The changed file's message lists every change found, as one readable line."""
    path = tmp_path / "f"
    path.write_bytes(b"four")
    source = SourceFile(path, "f", 3, 1, tmp_path)  # discovery saw 3 bytes, mtime 1 ns
    with pytest.raises(SourceChanged) as caught:
        ensure_unchanged(source)
    assert str(caught.value) == (
        f"{path} changed during upload (size 3 -> 4; modification time moved);"
        " it will be picked up by the next run"
    )


def test_unchanged_answers_as_the_list_of_changes_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """``FileIdentity.unchanged(stat)``, the check after every read, is exactly "no
    change found" (``changes`` over ``FileIdentity.of``): every combination of equal,
    different and missing fields, with and without a change time (Windows has none),
    inode 0 (none reported) and devices left out."""
    import itertools
    import os

    from s3stow import localfiles
    from s3stow.localfiles import FileIdentity

    for change_time in (True, False):
        monkeypatch.setattr(localfiles, "_HAS_CHANGE_TIME", change_time)
        for then in itertools.product((0, 1), (0, 1), (None, 0, 1), (None, 1, 2), (None, 0, 1)):
            identity = FileIdentity(*then)
            for size, mtime_ns, ctime_ns, inode, dev in itertools.product((0, 1), repeat=5):
                info = os.stat_result(
                    (0o100644, inode * 2, dev, 1, 0, 0, size, 0, 0, 0),  # inodes 0 and 2
                    {"st_mtime_ns": mtime_ns, "st_ctime_ns": ctime_ns},
                )
                expected = not identity.changes(FileIdentity.of(info))
                assert identity.unchanged(info) is expected, (change_time, then, info)


def test_the_recorded_options_of_a_multipart_upload_keep_their_form() -> None:
    """A multipart upload is resumed only when the options it was created with (kept in
    the ledger as this text) equal the run's. The text is part of the ledger's format:
    reworded, every upload a ledger recorded before an upgrade would start over after it
    instead of resuming."""
    from s3stow.config import Settings
    from s3stow.transfer.multipart import upload_options

    settings = Settings(content_type="text/plain", metadata={"b": "2", "a": "1"})
    assert upload_options(settings) == (
        '{"content_type": "text/plain", "metadata": [["a", "1"], ["b", "2"]],'
        ' "sha256_metadata": false, "sse": null, "sse_kms_key_id": null, "storage_class": null}'
    )
