"""Keys to local paths: the rules as pure functions (Windows' tested on every OS),
collisions, the symlink check, and the shared proof tiers restore relies on."""

from __future__ import annotations

import base64
import hashlib
import ntpath
import os
from pathlib import Path
from typing import Any

import pytest

from s3stow.restore.paths import (
    PathClaims,
    PathRules,
    UnsafePath,
    local_path,
    relative_parts,
    temp_path,
    windows_reserved,
)
from s3stow.store import checksums
from s3stow.store.base import ObjectInfo
from s3stow.store.proof import Proof, choose_proof, hash_file

WINDOWS = PathRules(windows=True, fold_case=True)
POSIX = PathRules()


@pytest.mark.parametrize(
    "name",
    ["CON", "con", "con.txt", "Nul .tar.gz", "COM1", "lpt9.log", "COM\u00b9", "CONIN$",
     "a:b", "ads:stream", "what?", "star*", 'quote"', "pipe|", "<x>", "back\\slash",
     "bell\x07", "trailing.", "trailing ", "..."],
)  # fmt: skip
def test_windows_reserved_names(name: str) -> None:
    assert windows_reserved(name)


@pytest.mark.parametrize(
    "name",
    ["ok.txt", "CONSOLE", "COM10", "lpt", "com0x", ".hidden", "a.b.c", "\u00e9t\u00e9", "nul-ish"],
)
def test_windows_allowed_names(name: str) -> None:
    assert not windows_reserved(name)


def test_fallback_rules_agree_with_ntpath_isreserved(monkeypatch: pytest.MonkeyPatch) -> None:
    # (names without separators or colons: those are refused before isreserved is asked)
    names = ["CON", "con.txt", "COM\u00b9", "x.", "ok.txt", "COM10", "nul .txt", "LPT0", "a b "]
    ours = {name: windows_reserved(name) for name in names}
    isreserved = getattr(ntpath, "isreserved", None)
    if isreserved is not None:  # Python 3.13+: the library's answer is the reference
        assert ours == {name: bool(isreserved(name)) for name in names}
        monkeypatch.delattr(ntpath, "isreserved")
        assert {name: windows_reserved(name) for name in names} == ours
    assert [name for name, reserved in ours.items() if not reserved] == ["ok.txt", "COM10", "LPT0"]


def test_separators_and_colons_are_refused_before_isreserved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # ntpath.isreserved("c:x") and ("a\\b") answer False: it reads a drive and a separator
    monkeypatch.setattr(ntpath, "isreserved", lambda name: False, raising=False)
    assert windows_reserved("c:x")
    assert windows_reserved("a\\b")
    assert not windows_reserved("CON")  # the library decides the rest


@pytest.mark.parametrize(
    ("key", "rule"),
    [
        ("p/../escape.txt", "'..'"),
        ("p/a/../../x", "'..'"),
        ("p/a//double", "empty"),
        ("p/./dot", "'.'"),
        ("p//abs", "absolute"),
        ("p/nul\x00byte", "NUL"),
        ("p/", "empty"),
    ],
)
def test_unsafe_keys_on_every_os(key: str, rule: str) -> None:
    for rules in (POSIX, WINDOWS):
        with pytest.raises(UnsafePath, match=rule):
            relative_parts(key, "p/", rules)


def test_an_absolute_key_without_prefix() -> None:
    with pytest.raises(UnsafePath, match="absolute"):
        relative_parts("/etc/passwd", "", POSIX)


@pytest.mark.parametrize("key", ["p/CON", "p/dir/aux.txt", "p/a\\b.txt", "p/c:x", "p/end."])
def test_windows_only_refusals(key: str) -> None:
    with pytest.raises(UnsafePath, match="Windows"):
        relative_parts(key, "p/", WINDOWS)
    assert relative_parts(key, "p/", POSIX) == key[2:].split("/")


def test_paths_stay_inside_the_root_through_symlinks(tmp_path: Path) -> None:
    root = (tmp_path / "dest").resolve()
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "link")
    os.symlink(root / "sub", root / "inner")  # a link that stays inside is fine
    assert local_path(root, ["a", "b.txt"]) == root / "a" / "b.txt"
    assert local_path(root, ["inner", "x"]) == root / "inner" / "x"
    with pytest.raises(UnsafePath, match="leads outside"):
        local_path(root, ["link", "pwned.txt"])


def test_a_link_deeper_below_existing_folders_is_still_found(tmp_path: Path) -> None:
    """The check walks down from DEST one folder at a time: plain folders that exist
    are passed, a symlink found further down is resolved and refused."""
    root = (tmp_path / "dest").resolve()
    outside = tmp_path / "outside"
    (root / "a" / "b").mkdir(parents=True)
    outside.mkdir()
    os.symlink(outside, root / "a" / "b" / "link")
    (root / "a" / "file").write_bytes(b"x")  # a file where a folder is named: inside
    assert local_path(root, ["a", "b", "new", "x"]) == root / "a" / "b" / "new" / "x"
    assert local_path(root, ["a", "file", "x"]) == root / "a" / "file" / "x"
    with pytest.raises(UnsafePath, match="leads outside"):
        local_path(root, ["a", "b", "link", "deeper", "pwned.txt"])


def test_the_folder_check_looks_only_below_dest_and_stops_at_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No ``lstat`` of the folders above DEST (each one a turn at the interpreter's lock
    given up by the main thread), and none below the first name that does not exist."""
    from s3stow.restore import paths

    root = (tmp_path / "dest").resolve()
    (root / "a").mkdir(parents=True)
    looked: list[str] = []
    real = os.lstat

    def watched(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        looked.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(paths.os, "lstat", watched)
    paths.ensure_inside(root, root / "a" / "new" / "deeper")
    assert looked == [str(root / "a"), str(root / "a" / "new")]


def test_a_reparse_point_below_dest_is_resolved_in_full(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Windows junction is no ``S_ISLNK``: any folder with the reparse-point attribute
    is resolved in full, as a symlink is (here a plain folder that says it is one)."""
    from s3stow.restore import paths

    root = (tmp_path / "dest").resolve()
    (root / "j").mkdir(parents=True)
    real = os.lstat

    class Reparse:
        def __init__(self, found: os.stat_result) -> None:
            self.st_mode = found.st_mode
            self.st_file_attributes = 0x400  # FILE_ATTRIBUTE_REPARSE_POINT

    def junction(path: Any, *args: Any, **kwargs: Any) -> Any:
        found = real(path, *args, **kwargs)
        return Reparse(found) if str(path) == str(root / "j") else found

    resolved: list[Path] = []
    resolve = Path.resolve

    def watched(self: Path, strict: bool = False) -> Path:
        resolved.append(self)
        return resolve(self, strict)

    monkeypatch.setattr(paths.os, "lstat", junction)
    monkeypatch.setattr(Path, "resolve", watched)
    paths.ensure_inside(root, root / "j" / "x")
    assert resolved == [root / "j" / "x"]
    resolved.clear()
    paths.ensure_inside(root, root / "plain" / "x")
    assert resolved == []


def test_collisions_by_case_and_by_file_versus_folder() -> None:
    folded = PathClaims(WINDOWS)
    assert folded.claim(["Photos", "a.jpg"], "p/Photos/a.jpg") is None
    assert "same local file" in str(folded.claim(["photos", "A.JPG"], "p/photos/A.JPG"))
    nfd = "cafe\u0301.txt"
    assert folded.claim(["caf\u00e9.txt"], "p/caf\u00e9.txt") is None
    assert folded.claim([nfd], "p/" + nfd) is not None
    exact = PathClaims(POSIX)
    assert exact.claim(["Photos", "a.jpg"], "k1") is None
    assert exact.claim(["photos", "A.JPG"], "k2") is None  # two files on Linux
    assert exact.claim(["data"], "k3") is None
    assert "not a folder" in str(exact.claim(["data", "x"], "k4"))
    assert exact.claim(["logs", "x"], "k5") is None
    assert "as a folder" in str(exact.claim(["logs"], "k6"))


def test_temp_file_sits_beside_and_stays_short(tmp_path: Path) -> None:
    assert temp_path(tmp_path / "a.bin") == tmp_path / ".a.bin.s3stow-part"
    long = temp_path(tmp_path / ("x" * 250))
    assert long.parent == tmp_path
    assert len(long.name) < 60


def test_composite_and_full_object_proofs(tmp_path: Path) -> None:
    data = bytes(range(256)) * 100
    path = tmp_path / "f"
    path.write_bytes(data)
    parts = [data[:10000], data[10000:20000], data[20000:]]
    sha_parts = [base64.b64encode(hashlib.sha256(p).digest()).decode() for p in parts]
    composite = checksums.composite_sha256(sha_parts)
    info = ObjectInfo("k", len(data), "e-3", composite, "SHA256", "COMPOSITE")
    assert choose_proof(info, etag_is_md5=True).tier == "size"  # composite not asked for
    proof = choose_proof(info, etag_is_md5=True, composite=True)
    assert proof == Proof("checksum", "sha256", composite, 3)
    assert proof.matches(hash_file(str(path), proof, layout=[10000, 10000, len(data) - 20000]))
    assert not proof.matches(hash_file(str(path), proof, layout=[9000, 11000, len(data) - 20000]))
    # without the -N suffix (moto's HEAD leaves it off), the ETag still counts the parts
    bare = ObjectInfo("k", len(data), "e-3", composite.split("-")[0], "SHA256", "COMPOSITE")
    assert choose_proof(bare, etag_is_md5=True, composite=True).parts == 3
    crc = checksums.file_digest(str(path), "crc32c")
    full = choose_proof(ObjectInfo("k", len(data), "e", crc, "CRC32C"), etag_is_md5=True)
    ranges = []
    for part in parts:
        hasher = full.range_hasher()
        assert hasher is not None
        hasher.update(part)
        ranges.append((len(part), hasher.value()))
    assert full.combine(ranges) == crc


def test_etag_tier_depends_on_the_encryption() -> None:
    md5 = hashlib.md5(b"x", usedforsecurity=False).hexdigest()
    plain = ObjectInfo("k", 1, md5)
    assert choose_proof(plain, etag_is_md5=True) == Proof("etag-md5", "md5", md5)
    assert choose_proof(plain, etag_is_md5=False).tier == "size"
    meta = ObjectInfo("k", 1, md5, metadata={"sha256": "ab"})
    assert choose_proof(meta, etag_is_md5=True).tier == "sha256-metadata"


def test_a_segment_longer_than_a_file_name_is_refused() -> None:
    assert relative_parts("p/" + "x" * 255, "p/", POSIX) == ["x" * 255]
    with pytest.raises(UnsafePath, match="256 bytes, longer than a file name"):
        relative_parts("p/d/" + "x" * 256, "p/", POSIX)
    with pytest.raises(UnsafePath, match="256 bytes"):
        relative_parts("p/" + "\xe9" * 128, "p/", POSIX)  # 128 characters, 256 bytes
    by_units = PathRules(windows=True, fold_case=True, name_in_bytes=False)
    assert relative_parts("p/" + "\xe9" * 255, "p/", by_units) == ["\xe9" * 255]
    with pytest.raises(UnsafePath, match="256 characters"):
        relative_parts("p/" + "\xe9" * 256, "p/", by_units)


def test_a_new_folder_wanted_by_many_threads_at_once_is_checked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing names a folder's objects together, so the file pool's threads all
    want the same new folder at the same moment: one makes and checks it (two
    ``ensure_inside``: before and after ``mkdir``), the others wait and find it known."""
    import threading
    import time

    from s3stow.restore import paths

    calls: list[Path] = []
    real = paths.ensure_inside

    def slow(root: Path, path: Path) -> None:  # a wide window for the threads to meet in
        calls.append(path)
        time.sleep(0.05)
        real(root, path)

    monkeypatch.setattr(paths, "ensure_inside", slow)
    folders, folder = paths.Folders(), tmp_path / "a" / "b"
    start = threading.Barrier(8)

    def want() -> None:
        start.wait()
        folders.ready(tmp_path, folder)

    threads = [threading.Thread(target=want) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert folder.is_dir()
    assert calls == [folder, folder]
    folders.ready(tmp_path, folder)  # known and unchanged: one stat, no check
    assert len(calls) == 2


def test_two_new_folders_are_checked_side_by_side(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One thread checking a new folder holds up only the threads that want that folder."""
    import threading
    import time

    from s3stow.restore import paths

    calls: list[Path] = []
    real = paths.ensure_inside

    def slow(root: Path, path: Path) -> None:
        calls.append(path)
        time.sleep(0.05)
        real(root, path)

    monkeypatch.setattr(paths, "ensure_inside", slow)
    folders, start = paths.Folders(), threading.Barrier(2)
    wanted = [tmp_path / "a", tmp_path / "b"]

    def want(folder: Path) -> None:
        start.wait()
        folders.ready(tmp_path, folder)

    threads = [threading.Thread(target=want, args=(folder,)) for folder in wanted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(calls[:2]) == set(wanted)  # both first checks began before either ended
    assert sorted(calls) == sorted(wanted * 2)
