"""What differs on Windows and macOS, tested on Linux: the OS behaviour imitated where the
code meets it (``os.scandir``'s entries, ``os.replace``, a name's Unicode form)."""

from __future__ import annotations

import codecs
import io
import os
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3stow.config import load_settings
from s3stow.errors import ConfigError, ExitCode
from s3stow.localfiles import atomic_write_text
from s3stow.models import PlannedUpload, RunSummary, SourceFile
from s3stow.plan.discover import discover
from s3stow.plan.select import Selector
from s3stow.report.status import StatusHeartbeat

JUNCTION = 0xA0000003  # IO_REPARSE_TAG_MOUNT_POINT


class _WindowsEntry:
    """A ``DirEntry`` as Windows gives it: ``stat()`` of an entry that is not a symlink
    comes from the directory listing, with ``st_ino``, ``st_dev`` (and ``st_nlink``)
    zero, and the reparse tag of a junction kept (``is_symlink`` is False for it)."""

    def __init__(self, entry: os.DirEntry[str], junctions: frozenset[str]) -> None:
        self._entry = entry
        self.name = entry.name
        self.path = entry.path
        self._junction = entry.path in junctions

    def is_symlink(self) -> bool:
        return self._entry.is_symlink()

    def stat(self, *, follow_symlinks: bool = True) -> Any:
        info = self._entry.stat(follow_symlinks=follow_symlinks)
        if self._entry.is_symlink() and follow_symlinks:
            return info  # os.stat of the target: a real identity
        fields = list(info[:10])
        fields[stat.ST_INO] = fields[stat.ST_DEV] = fields[stat.ST_NLINK] = 0
        windows = os.stat_result(fields)
        if not self._junction:
            return windows

        class Junction:
            def __getattr__(self, name: str) -> Any:
                return getattr(windows, name)

            st_reparse_tag = JUNCTION

        return Junction()


def _windows_scandir(
    monkeypatch: pytest.MonkeyPatch, junctions: frozenset[str] = frozenset()
) -> None:
    real = os.scandir

    class Listing:
        def __init__(self, path: Any) -> None:
            self._it = real(path)

        def __enter__(self) -> Iterator[_WindowsEntry]:
            return (_WindowsEntry(e, junctions) for e in self._it.__enter__())

        def __exit__(self, *exc: object) -> None:
            self._it.__exit__(*exc)

    monkeypatch.setattr(os, "scandir", Listing)


def _tree(root: Path) -> None:
    for rel in ("a/1.txt", "b/2.txt", "b/c/3.txt", "b/d/4.txt", "e/5.txt", "top.txt"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)


@pytest.mark.parametrize("follow", [False, True])
def test_every_folder_is_walked_where_scandir_gives_no_inode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, follow: bool
) -> None:
    # Windows: DirEntry.stat() has st_ino == st_dev == 0, so every folder looked like
    # the first one and all but "a" were skipped as a symlink loop.
    _tree(tmp_path)
    _windows_scandir(monkeypatch)
    found = list(discover([tmp_path], follow_symlinks=follow))
    assert sorted(f.rel_path for f in found if isinstance(f, SourceFile)) == [
        "a/1.txt", "b/2.txt", "b/c/3.txt", "b/d/4.txt", "e/5.txt", "top.txt",
    ]  # fmt: skip
    assert [f for f in found if not isinstance(f, SourceFile)] == []


def test_a_symlink_loop_is_still_caught_where_scandir_gives_no_inode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _tree(tmp_path)
    (tmp_path / "b" / "up").symlink_to(tmp_path / "b", target_is_directory=True)
    _windows_scandir(monkeypatch)
    found = list(discover([tmp_path], follow_symlinks=True))
    skipped = {f.path.name: f.reason for f in found if not isinstance(f, SourceFile)}
    assert skipped == {"up": "symlink loop (directory already visited)"}


def test_a_windows_junction_is_followed_only_as_a_symlink_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DirEntry.is_symlink() is False for a junction: it was walked without
    # --follow-symlinks (and wherever it pointed).
    _tree(tmp_path)
    _windows_scandir(monkeypatch, junctions=frozenset({str(tmp_path / "b")}))
    found = list(discover([tmp_path]))
    skipped = {f.path.name: f.reason for f in found if not isinstance(f, SourceFile)}
    assert skipped == {"b": "junction not followed (use --follow-symlinks)"}
    followed = list(discover([tmp_path], follow_symlinks=True))
    assert "b/c/3.txt" in {f.rel_path for f in followed if isinstance(f, SourceFile)}


def _refusing_replace(monkeypatch: pytest.MonkeyPatch, refusals: int) -> list[str]:
    """``os.replace`` refused ``refusals`` times as Windows refuses to replace a file
    another process has open."""
    real = os.replace
    calls: list[str] = []

    def replace(source: Any, target: Any) -> None:
        calls.append(str(target))
        if len(calls) <= refusals:
            raise PermissionError(13, "Access is denied", str(target))
        real(source, target)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    return calls


def test_a_status_file_held_open_by_a_reader_is_replaced_on_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "status.json"
    path.write_text("old")
    calls = _refusing_replace(monkeypatch, 3)
    monkeypatch.setattr(sys, "platform", "win32")
    atomic_write_text(path, "new")
    assert path.read_text() == "new"
    assert len(calls) == 4
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_a_refused_replace_is_not_retried_on_posix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "status.json"
    path.write_text("old")
    calls = _refusing_replace(monkeypatch, 1)
    monkeypatch.setattr(sys, "platform", "linux")
    with pytest.raises(PermissionError):
        atomic_write_text(path, "new")
    assert path.read_text() == "old"
    assert len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary left


def test_a_heartbeat_write_refused_mid_run_does_not_fail_the_upload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "status.json"
    heartbeat = StatusHeartbeat(path, interval=0)
    heartbeat.on_start("run", "s3://bucket/")
    source = SourceFile(tmp_path / "a.bin", "a.bin", 10, 0, tmp_path, "(root)")
    _refusing_replace(monkeypatch, 1000)
    monkeypatch.setattr(sys, "platform", "win32")
    heartbeat.on_file_start(source, "a.bin")  # a transfer thread's call: must not raise
    heartbeat.on_bytes(source, 10)
    assert "cannot write the status file" in caplog.text
    # the last write says so, as an error line: the run's summary is still printed (an
    # exception here was "unexpected PermissionError ... please report it", no summary)
    heartbeat.on_finish(RunSummary(run_id="run"))
    assert "cannot write the status file" in caplog.text
    assert "at the end of the run" in caplog.text


def test_a_watch_goes_on_when_a_status_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from s3stow.config import Settings
    from s3stow.plan.keys import parse_target
    from s3stow.tools.watch import Watcher
    from s3stow.transfer.engine import Uploader

    uploader = Uploader(Settings(endpoint_url="http://127.0.0.1:9"))
    status = tmp_path / "watch.json"
    watcher = Watcher(uploader, tmp_path, parse_target("s3://bucket/in/"), status_json=status)
    _refusing_replace(monkeypatch, 1000)
    monkeypatch.setattr(sys, "platform", "win32")
    watcher.status.write("watching")  # a tick's write: the watch goes on
    assert "cannot write the status file" in caplog.text
    with pytest.raises(PermissionError):  # the last one says so
        watcher.status.write("stopped")


CAFE_NFC = "caf\u00e9"
CAFE_NFD = "cafe\u0301"  # as HFS+ (and often APFS) lists it on macOS


def test_a_name_listed_in_nfd_matches_the_patterns_typed_in_nfc() -> None:
    selector = Selector.build(include=[f"{CAFE_NFC}/**"], exclude=[f"*{CAFE_NFC}.tmp"])
    assert selector.takes_path(f"{CAFE_NFD}/menu.txt") is None
    assert selector.takes_path(f"x/{CAFE_NFD}.tmp") == "excluded"
    # and the other way round: a pattern in NFD (pasted from a listing)
    assert Selector.build(include=[f"{CAFE_NFD}/*"]).takes_path(f"{CAFE_NFC}/a") is None


def test_strip_prefix_and_unmatched_includes_see_an_nfd_name_as_typed(tmp_path: Path) -> None:
    from s3stow.config import Settings
    from s3stow.plan.keys import parse_target
    from s3stow.plan.planner import Planner

    settings = Settings(strip_prefix=f"{CAFE_NFC}/", include=[f"{CAFE_NFC}/*.txt", "none/*"])
    planner = Planner(settings, parse_target("s3://bucket/p/"))
    found = SourceFile(tmp_path / "m.txt", f"{CAFE_NFD}/m.txt", 1, 0, tmp_path, "(root)")
    planned = planner.plan(found)
    assert isinstance(planned, PlannedUpload)
    assert planned.key == "p/m.txt"
    assert planner.unmatched_includes() == ["none/*"]


def test_a_name_the_redirected_stdout_cannot_encode_is_escaped_not_fatal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Windows: stdout redirected to a file or a pipe is in the ANSI code page (cp1252),
    # with errors="strict"; a Greek or CJK key ended `restore --dry-run > plan.txt`.
    from s3stow.cli.app import output_console, unencodable_escaped

    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", stdout)
    with pytest.raises(UnicodeEncodeError):
        output_console().print("\u03a9mega/\u65e5\u672c.txt", markup=False)
    unencodable_escaped()
    output_console().print("caf\u00e9/\u03a9mega.txt", markup=False)
    stdout.flush()
    assert raw.getvalue().endswith(b"caf\xe9/\\u03a9mega.txt\n")


def test_the_program_escapes_what_its_stdout_cannot_encode(monkeypatch: pytest.MonkeyPatch) -> None:
    from s3stow.cli import app

    stdout = io.TextIOWrapper(io.BytesIO(), encoding="cp1252")
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.setattr(sys, "argv", ["s3stow", "--version"])
    monkeypatch.setattr(app, "hold_collector", lambda: None)
    monkeypatch.setattr(app, "release_collector", lambda: None)
    with pytest.raises(SystemExit):
        app.main()
    assert stdout.errors == "backslashreplace"


@pytest.mark.parametrize(
    ("encoding", "mark"),
    [
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-8", b"\xef\xbb\xbf"),
    ],
)
def test_a_config_file_windows_wrote_is_read(tmp_path: Path, encoding: str, mark: bytes) -> None:
    # Windows PowerShell 5.1: `"prefix: ..." > s3stow.yaml` writes UTF-16 LE with a BOM;
    # Notepad may write UTF-8 with a BOM. CRLF line ends either way.
    config = tmp_path / "s3stow.yaml"
    config.write_bytes(mark + "concurrency: 6\r\nstrip_prefix: caf\u00e9/\r\n".encode(encoding))
    settings = load_settings(config_file=config, env={})
    assert settings.concurrency == 6
    assert settings.strip_prefix == "caf\u00e9/"


def test_a_config_file_in_another_code_page_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "s3stow.yaml"
    config.write_bytes("strip_prefix: caf\u00e9/\r\n".encode("cp1252"))
    with pytest.raises(ConfigError, match="is not UTF-8 text") as caught:
        load_settings(config_file=config, env={})
    assert caught.value.exit_code == ExitCode.USAGE


def test_an_aws_error_log_windows_powershell_redirected_is_read(tmp_path: Path) -> None:
    # `aws s3 sync D:\proj s3://b 2> errors.log` in Windows PowerShell 5.1: UTF-16 LE.
    from s3stow.plan.failures import read_failures

    log = tmp_path / "errors.log"
    line = (
        "upload failed: proj\\reels\\caf\u00e9.mp4 to s3://bucket-1/reels/caf\u00e9.mp4 "
        "An error occurred (RequestTimeout) when calling the PutObject operation\r\n"
    )
    log.write_bytes(codecs.BOM_UTF16_LE + line.encode("utf-16-le"))
    found = read_failures(log)
    assert found.unparseable == []
    assert [(i.local, i.bucket, i.key) for i in found.items] == [
        ("proj\\reels\\caf\u00e9.mp4", "bucket-1", "reels/caf\u00e9.mp4")
    ]


def _watcher(directory: Path) -> Any:
    from s3stow.config import Settings
    from s3stow.plan.keys import parse_target
    from s3stow.tools.watch import Watcher
    from s3stow.transfer.engine import Uploader

    uploader = Uploader(Settings(endpoint_url="http://127.0.0.1:9"))
    return Watcher(uploader, directory, parse_target("s3://bucket/in/"))


def test_a_watch_notified_by_the_real_path_tracks_the_file(tmp_path: Path) -> None:
    # macOS FSEvents names /private/tmp/in/a.xml for a watch of /tmp/in: the event was
    # dropped (not under the directory), and the file waited for the next rescan.
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real", target_is_directory=True)
    (tmp_path / "real" / "a.xml").write_text("<a/>")
    watcher = _watcher(tmp_path / "link")
    watcher.notifications.notify(str(tmp_path / "real" / "a.xml"))
    watcher.notifications.notify(str(tmp_path / "elsewhere.xml"))
    watcher._drain_inbox()
    assert list(watcher._waiting) == [str(tmp_path / "link" / "a.xml")]


def test_a_windows_short_name_is_tracked_by_its_long_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ReadDirectoryChangesW may name a file by its 8.3 name: the file was tracked, and
    # uploaded, a second time under the key REPORT~1.XML.
    long = tmp_path / "report-2026.xml"
    long.write_text("<r/>")
    watcher = _watcher(tmp_path)
    real = os.path.realpath
    monkeypatch.setattr(sys, "platform", "win32")

    def realpath(path: Any, **kwargs: Any) -> str:
        return str(long) if str(path).endswith("REPORT~1.XML") else real(path, **kwargs)

    monkeypatch.setattr(os.path, "realpath", realpath)
    watcher.notifications.notify(str(tmp_path / "REPORT~1.XML"))
    watcher._drain_inbox()
    assert list(watcher._waiting) == [str(long)]


def test_the_case_probe_says_what_this_file_system_does_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    from s3stow.restore.paths import folds_case

    assert folds_case(tmp_path) is False  # the test's own file system is case-sensitive
    assert list(tmp_path.iterdir()) == []
    assert folds_case(tmp_path / "missing") is False


def test_a_restore_into_a_case_folding_file_system_refuses_the_second_spelling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Linux restoring to a FAT/exFAT stick or an SMB share: "A.txt" and "a.txt" were both
    # restored, the second replacing the first, both reported restored.
    from s3stow.config import Settings
    from s3stow.restore import engine

    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(engine, "folds_case", lambda folder: folder == tmp_path)
    restorer = engine.Restorer(Settings(endpoint_url="http://127.0.0.1:9"))
    claims = restorer._planner(tmp_path).claims
    assert claims.claim(["Report.txt"], "Report.txt") is None
    assert (
        claims.claim(["report.TXT"], "report.TXT") == "'Report.txt' restores to the same local file"
    )
    exact = restorer._planner(tmp_path / "elsewhere").claims
    assert exact.claim(["Report.txt"], "Report.txt") is None
    assert exact.claim(["report.TXT"], "report.TXT") is None


def test_the_windows_registry_does_not_override_the_content_type_of_a_known_suffix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # mimetypes lets the registry override its table; programs write ".js" as
    # text/plain there, and a site uploaded from such a machine did not run.
    import mimetypes

    from s3stow.transfer import context

    registry = {".js": "text/plain", ".weird": "application/x-weird"}

    def guess_type(name: str, strict: bool = True) -> tuple[str | None, str | None]:
        return registry.get(os.path.splitext(name)[1]), None

    monkeypatch.setattr(mimetypes, "guess_type", guess_type)
    monkeypatch.setattr(sys, "platform", "win32")
    context._guess_by_suffix.cache_clear()
    try:
        assert context._guess_type("app.js") in ("text/javascript", "application/javascript")
        assert context._guess_type("site.min.css") == "text/css"
        assert context._guess_type("data.weird") == "application/x-weird"  # the table lacks it
        monkeypatch.setattr(sys, "platform", "linux")  # elsewhere: as before
        context._guess_by_suffix.cache_clear()
        assert context._guess_type("app.js") == "text/plain"
    finally:
        context._guess_by_suffix.cache_clear()
