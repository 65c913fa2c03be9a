"""The compare stage: the ledger decides first, then one listing of the prefix (or a
HEAD per key); ``remote_matches`` proves a listed object equal by the strongest
evidence it has, tier by tier, and says which tier it used."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from s3stow.config import Settings
from s3stow.ledger import open_ledger
from s3stow.models import PlannedUpload, Reason, SourceFile, Status, UploadResult
from s3stow.plan.compare import RemoteIndex, b64_to_hex, decide, remote_matches
from s3stow.store import checksums
from s3stow.store.base import ObjectInfo
from s3stow.store.s3 import S3Store
from tests.faultproxy import FaultProxy

DATA = b"the local file's bytes\n" * 100


@pytest.fixture
def item(tmp_path: Path) -> PlannedUpload:
    path = tmp_path / "f.txt"
    path.write_bytes(DATA)
    stat = path.stat()
    source = SourceFile(path, "f.txt", len(DATA), stat.st_mtime_ns, tmp_path)
    return PlannedUpload(source, "b", "p/f.txt")


def _info(**fields: Any) -> ObjectInfo:
    return ObjectInfo(**{"key": "p/f.txt", "size": len(DATA), "etag": "", **fields})


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


CRC = checksums.file_digest  # the local CRC64NVME, as S3 reports a full-object one


def test_the_checksum_tier_compares_the_same_full_object_algorithm(item: PlannedUpload) -> None:
    path = str(item.source.path)
    local = CRC(path, "crc64nvme")
    settings = Settings()
    same = _info(checksum=local, checksum_algorithm="CRC64NVME", checksum_type="FULL_OBJECT")
    assert remote_matches(item, same, settings=settings) == (True, "checksum", local)
    other = _info(checksum="AAAAAAAAAAA=", checksum_algorithm="CRC64NVME")  # type None: AWS
    assert remote_matches(item, other, settings=settings) == (False, "checksum", local)


@pytest.mark.parametrize(
    "fields",
    [
        {"checksum_algorithm": "CRC32C"},  # another algorithm than the settings'
        {"checksum_algorithm": "CRC64NVME", "checksum_type": "COMPOSITE"},
        {"checksum_algorithm": "CRC64NVME", "suffix": "-3"},  # a composite of 3 parts
        {"checksum_algorithm": None},
    ],
    ids=["other-algorithm", "composite-type", "part-count-suffix", "no-algorithm"],
)
def test_a_checksum_that_is_not_comparable_falls_through_to_the_next_tier(
    item: PlannedUpload, fields: dict[str, Any]
) -> None:
    """Not compared (it could never equal a local full-object CRC): the next evidence,
    here the ETag, decides."""
    fields = dict(fields)  # the parameter is shared by every run of this test
    checksum = CRC(str(item.source.path), "crc64nvme") + fields.pop("suffix", "")
    info = _info(checksum=checksum, etag=_md5(DATA), **fields)
    assert remote_matches(item, info, settings=Settings()) == (True, "etag-md5", None)


def test_the_sha256_metadata_tier(item: PlannedUpload) -> None:
    digest = hashlib.sha256(DATA).hexdigest()
    equal = _info(metadata={"sha256": digest}, etag=_md5(b"other"))
    assert remote_matches(item, equal, settings=Settings()) == (True, "sha256-metadata", None)
    other = _info(metadata={"sha256": hashlib.sha256(b"x").hexdigest()}, etag=_md5(DATA))
    assert remote_matches(item, other, settings=Settings()) == (False, "sha256-metadata", None)


def test_the_etag_tier_needs_a_plain_md5_etag_and_no_encryption(item: PlannedUpload) -> None:
    mtime = datetime.fromtimestamp(item.source.mtime_ns / 1e9, UTC).isoformat()
    plain = _info(etag=_md5(DATA), metadata={"mtime": "1999-01-01T00:00:00+00:00"})
    assert remote_matches(item, plain, settings=Settings()) == (True, "etag-md5", None)
    changed = _info(etag=_md5(DATA + b"!"), metadata={"mtime": mtime})
    assert remote_matches(item, changed, settings=Settings()) == (False, "etag-md5", None)
    # a multipart ETag, or an ETag under SSE (not an MD5): the mtime metadata decides
    multipart = _info(etag=_md5(DATA) + "-2", metadata={"mtime": mtime})
    assert remote_matches(item, multipart, settings=Settings()) == (True, "mtime-metadata", None)
    encrypted = _info(etag=_md5(b"other"), metadata={"mtime": mtime})
    for sse in ("AES256", "aws:kms"):
        settings = Settings(sse=sse)
        assert remote_matches(item, encrypted, settings=settings) == (
            True,
            "mtime-metadata",
            None,
        )


def test_the_mtime_tier_then_size_alone(item: PlannedUpload) -> None:
    older = _info(etag="abc-2", metadata={"mtime": "1999-01-01T00:00:00+00:00"})
    assert remote_matches(item, older, settings=Settings()) == (False, "mtime-metadata", None)
    assert remote_matches(item, _info(etag="abc-2"), settings=Settings()) == (True, "size", None)
    smaller = _info(etag="abc-2", size=len(DATA) - 1)
    assert remote_matches(item, smaller, settings=Settings()) == (False, "size", None)


def test_b64_to_hex() -> None:
    assert b64_to_hex("3q2+7w==") == "deadbeef"


def _planned(root: Path, bucket: str, name: str, data: bytes) -> PlannedUpload:
    path = root / name
    path.write_bytes(data)
    stat = path.stat()
    return PlannedUpload(SourceFile(path, name, len(data), stat.st_mtime_ns, root), bucket, name)


def test_decide_asks_the_ledger_first_and_lists_only_what_it_does_not_settle(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path
) -> None:
    for name, body in (("listed-same", b"12345"), ("listed-other-size", b"1234")):
        s3.put_object(Bucket=bucket, Key=name, Body=body)
    items = {
        name: _planned(tmp_path, bucket, name, b"12345")
        for name in ("done", "done-changed", "failed", "changed", "uploading", "listed-same")
    }
    items["listed-other-size"] = _planned(tmp_path, bucket, "listed-other-size", b"12345")
    items["new"] = _planned(tmp_path, bucket, "new", b"12345")
    ledger = open_ledger(str(tmp_path / "l.db"))
    for name, status in (
        ("done", Status.DONE),
        ("done-changed", Status.DONE),
        ("failed", Status.FAILED),
        ("changed", Status.CHANGED),
        ("uploading", Status.UPLOADING),
    ):
        source = items[name].source
        mtime = source.mtime_ns + (1 if name == "done-changed" else 0)
        result = UploadResult(source.path, bucket, name, status, size=source.size)
        ledger.record(result, mtime_ns=mtime, run_id="r")
    ledger.flush()
    checked: list[str] = []
    store = S3Store.from_settings(Settings(endpoint_url=proxy.url))
    remote = RemoteIndex(store, bucket, "", before_first_use=checked.append)
    got = decide(list(items.values()), ledger=ledger, remote=remote, settings=Settings())
    decided = {d.item.key: (d.upload, d.reason, listed is not None) for d, listed in got}
    assert decided == {
        "done": (False, Reason.LEDGER_DONE, False),
        "done-changed": (True, Reason.CHANGED, False),
        "failed": (True, Reason.RETRY, False),
        "changed": (True, Reason.RETRY, False),
        "uploading": (True, Reason.RETRY, False),
        "listed-same": (False, Reason.REMOTE_MATCH, True),
        "listed-other-size": (True, Reason.CHANGED, False),
        "new": (True, Reason.NEW, False),
    }
    assert len(proxy.requests(r"^GET .*list-type=2")) == 1  # one listing for all
    assert len(checked) == 1  # the bucket is checked once, beside the first key listed
    # with --force everything goes, and nothing is asked of S3
    proxy.log.clear()
    forced = decide(
        list(items.values()), ledger=ledger, remote=remote, settings=Settings(force=True)
    )
    assert [(d.item.key, d.upload, d.reason) for d, _ in forced] == [
        (key, True, Reason.FORCED) for key in items
    ]  # every item, in order: a decision short of the items would drop files unsent
    # with --no-clobber a listed key is kept, whatever its size
    kept = decide(
        [items["listed-other-size"]], ledger=None, remote=remote, settings=Settings(no_clobber=True)
    )
    assert [(d.upload, d.reason) for d, listed in kept] == [(False, Reason.NO_CLOBBER)]
    assert proxy.log == []  # the listing was made once, on first use
    assert decide([], ledger=ledger, remote=remote, settings=Settings()) == []
    ledger.close()


def test_a_settled_rerun_asks_nothing_of_s3(proxy: FaultProxy, bucket: str, tmp_path: Path) -> None:
    item = _planned(tmp_path, bucket, "done", b"12345")
    ledger = open_ledger(str(tmp_path / "l.db"))
    source = item.source
    ledger.record(
        UploadResult(source.path, bucket, "done", Status.DONE, size=source.size),
        mtime_ns=source.mtime_ns,
        run_id="r",
    )
    ledger.flush()
    store = S3Store.from_settings(Settings(endpoint_url=proxy.url))
    remote = RemoteIndex(store, bucket, "", before_first_use=lambda _key: store.head_bucket(bucket))
    got = decide([item], ledger=ledger, remote=remote, settings=Settings())
    assert [(d.upload, d.reason) for d, _ in got] == [(False, Reason.LEDGER_DONE)]
    assert proxy.log == []
    ledger.close()


@pytest.mark.parametrize("mode", ["by_head", "trust_ledger"])
def test_remote_index_modes(
    proxy: FaultProxy, s3: Any, bucket: str, tmp_path: Path, mode: str
) -> None:
    s3.put_object(Bucket=bucket, Key="here", Body=b"1")
    store = S3Store.from_settings(Settings(endpoint_url=proxy.url))
    remote = RemoteIndex(store, bucket, "", **{mode: True})
    found = remote.get("here")
    if mode == "by_head":  # one HEAD per key, no listing
        assert found is not None
        assert found.size == 1
        assert remote.get("absent") is None
        assert len(proxy.requests(r"^HEAD ")) == 2
    else:  # nothing asked: the upload itself is verified
        assert found is None
        assert proxy.log == []
    assert not proxy.requests(r"^GET ")
