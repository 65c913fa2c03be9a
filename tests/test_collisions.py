"""``KeyClaims``: which file owns each key, in a run and against the ledger's rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3stow.ledger import LedgerEntry
from s3stow.models import Duplicate, PlannedUpload, SourceFile, Status
from s3stow.plan.collisions import KeyClaims


def _item(path: Path, key: str = "p/k.txt") -> PlannedUpload:
    return PlannedUpload(SourceFile(path, path.name, 1, 1, path.parent), "b", key)


def _done(source_path: str, key: str = "p/k.txt") -> dict[str, LedgerEntry]:
    entry = LedgerEntry(
        "b", key, source_path, 1, 1, Status.DONE, None, None, None, 1, None, None, "r1"
    )
    return {key: entry}


def test_a_key_taken_in_an_earlier_batch_keeps_its_first_file(tmp_path: Path) -> None:
    claims = KeyClaims()
    first, second = _item(tmp_path / "a"), _item(tmp_path / "b")
    assert claims.settle([first], {}) == ([first], [])
    kept, refused = claims.settle([second], {})
    assert kept == []
    assert refused[0].source == second.source
    assert f"also the key of {tmp_path / 'a'}; not uploaded" in refused[0].reason


def test_files_sharing_a_key_in_one_batch_are_all_refused_and_stay_refused(
    tmp_path: Path,
) -> None:
    claims = KeyClaims()
    items = [_item(tmp_path / n) for n in ("a", "b", "c")]
    other = _item(tmp_path / "x", key="p/x.txt")
    kept, refused = claims.settle([items[0], other, items[1], items[2]], {})
    assert kept == [other]
    assert [r.source for r in refused] == [i.source for i in items]
    assert f"{tmp_path / 'b'}, {tmp_path / 'c'}; neither" in refused[0].reason
    again = _item(tmp_path / "a")  # the same file seen again (watch): still refused
    assert claims.settle([again], {})[0] == []


def test_two_unicode_spellings_of_one_name_are_told_apart_in_the_refusal(
    tmp_path: Path,
) -> None:
    """An NFC and an NFD file of one name: "key 'p/café.txt' is also the key of
    .../café.txt" printed the same name twice, no way to tell which file is which."""
    nfc, nfd = tmp_path / "caf\u00e9.txt", tmp_path / "cafe\u0301.txt"
    kept, refused = KeyClaims().settle([_item(nfc), _item(nfd)], {})
    assert kept == []
    assert "one name in two Unicode spellings, alike on screen: " in refused[0].reason
    assert "'caf\\xe9.txt', 'cafe\\u0301.txt'" in refused[0].reason
    assert "'cafe\\u0301.txt', 'caf\\xe9.txt'" in refused[1].reason
    plain = KeyClaims().settle([_item(tmp_path / "a"), _item(tmp_path / "b")], {})[1]
    assert "Unicode" not in plain[0].reason


def test_the_ledger_holder_keeps_its_key_while_it_exists(tmp_path: Path) -> None:
    held, newcomer = tmp_path / "held.txt", tmp_path / "new.txt"
    held.write_text("verified")
    newcomer.write_text("other")
    kept, refused = KeyClaims().settle([_item(newcomer)], _done(str(held)))
    assert kept == []
    assert f"holds {held}, verified in S3 by run r1; not overwritten" in refused[0].reason
    both = KeyClaims().settle([_item(newcomer), _item(held)], _done(str(held)))
    assert both[0] == [_item(held)]  # the holder itself goes on (compare decides)
    held.unlink()  # moved away or deleted: its successor may take the key
    assert KeyClaims().settle([_item(newcomer)], _done(str(held))) == ([_item(newcomer)], [])


def test_the_holder_spelled_another_way_is_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f.txt"
    path.write_text("x")
    monkeypatch.chdir(tmp_path)
    item = _item(Path("f.txt"))  # this run names it relatively, the ledger absolutely
    assert KeyClaims().settle([item], _done(str(path))) == ([item], [])


def test_content_addressed_keys_are_duplicates_not_collisions(tmp_path: Path) -> None:
    held = tmp_path / "held.bin"
    held.write_bytes(b"same")
    claims = KeyClaims(content_addressed=True)
    first, second = _item(tmp_path / "a"), _item(tmp_path / "b")
    kept, refused = claims.settle([first, second], _done(str(held)))
    assert kept == [first]  # the ledger's object has these very bytes: no holder
    assert refused == [Duplicate(second.source, second.key, str(tmp_path / "a"))]
    again = claims.settle([_item(tmp_path / "c")], {})  # in a later batch too
    assert again[1] == [Duplicate(again[1][0].source, "p/k.txt", str(tmp_path / "a"))]


def test_one_file_found_twice_in_a_batch_is_uploaded_once(tmp_path: Path) -> None:
    """``upload dir dir/a.txt s3://b/p``: dir/a.txt found twice, under one key, was
    refused as colliding with itself ("is also the key of ; neither is uploaded")."""
    (tmp_path / "a").write_text("x")
    claims = KeyClaims()
    first, again = _item(tmp_path / "a"), _item(tmp_path / "a")
    spelled = _item(tmp_path / "." / "a")  # the same file by another path
    kept, settled = claims.settle([first, again, spelled], {})
    assert kept == [first]
    assert all(isinstance(s, Duplicate) for s in settled)
    assert [s.first for s in settled] == [str(tmp_path / "a")] * 2
