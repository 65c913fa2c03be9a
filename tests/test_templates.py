"""Key templates, layouts, selection and folder types (issue: keys and selection)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3stow.config import DEFAULT_FOLDER_TYPES, load_settings
from s3stow.errors import ConfigError, SourceError
from s3stow.models import PlannedUpload, SourceFile
from s3stow.plan.foldertypes import select_folder_types
from s3stow.plan.keys import MAX_KEY_BYTES, UnsafeKeyError, parse_target
from s3stow.plan.planner import Planner, Refused
from s3stow.plan.select import Selector
from s3stow.plan.templates import KeyTemplate, parse_file_time, sanitise_key
from tests.conftest import make_tree

MTIME = int(datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC).timestamp() * 1e9)


def source(rel: str, *, group: str = "", size: int = 10) -> SourceFile:
    return SourceFile(Path("/data") / rel, rel, size, MTIME, Path("/data"), group)


def test_seed_002_date_folders() -> None:
    template = KeyTemplate.build("{prefix}{file_time:%Y/%m/%d}/{name}", "xml-events/")
    assert (
        template.render(source("20250729_161500.xml"))
        == "xml-events/2025/07/29/20250729_161500.xml"
    )


def test_date_folders_fall_back_to_mtime(caplog: pytest.LogCaptureFixture) -> None:
    template = KeyTemplate.build("{prefix}{file_time:%Y/%m/%d}/{name}", "x/")
    assert template.render(source("notes.xml")) == "x/2024/01/02/notes.xml"
    assert "no YYYYMMDD timestamp" in caplog.text


def test_seed_004_project_layout() -> None:
    template = KeyTemplate.build(
        "{prefix}{project_key}/{folder_type}/{timestamp_dir}{rel_path}",
        "",
        project_key="RMI25320",
        timestamp="20250729_1615",
    )
    key = template.render(source("sub/dir/file.yaml", group="config"))
    assert key == "RMI25320/config/20250729_1615/sub/dir/file.yaml"
    plain = KeyTemplate.build(
        "{project_key}/{folder_type}/{timestamp_dir}{rel_path}", "", project_key="RMI25320"
    )
    assert plain.render(source("a.mp4", group="reels")) == "RMI25320/reels/a.mp4"
    assert plain.static_prefix == "RMI25320/"


def test_seed_003_archive_style_fields(tmp_path: Path) -> None:
    path = tmp_path / "img.jpg"
    path.write_bytes(b"jpeg bytes")
    file = SourceFile(path, "img.jpg", 10, MTIME, tmp_path)
    template = KeyTemplate.build("cache/{mtime:%Y}/{mtime:%m}/{md5}.{ext}", "")
    assert template.reads_content
    digest = hashlib.md5(b"jpeg bytes", usedforsecurity=False).hexdigest()
    assert template.render(file) == f"cache/2024/01/{digest}.jpg"


def test_other_fields() -> None:
    template = KeyTemplate.build("{prefix}{rel_dir}/{stem}-copy.{ext}", "p/")
    assert template.render(source("a/b/c.tar.gz")) == "p/a/b/c.tar-copy.gz"
    assert template.render(source("top")) == "p/top-copy."  # no extension stays visible


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{prefix}{nope}", "unknown field {nope}"),
        ("{prefix}{mtime}/{name}", "needs a format"),
        ("{prefix}{name:%Y}", "takes no format"),
        ("{prefix}{mtime:%Y}/", "does not identify the file"),
        ("{prefix}{name", "malformed"),
        ("{project_key}/{name}", "needs a project key"),
    ],
)
def test_template_errors(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words.replace("{", r"\{").replace("}", r"\}")):
        KeyTemplate.build(text, "p/")


def test_prefix_is_forced_and_cannot_be_escaped() -> None:
    template = KeyTemplate.build("{rel_path}", "safe/")
    assert template.render(source("a.txt")) == "safe/a.txt"
    with pytest.raises(UnsafeKeyError):
        KeyTemplate.build("{prefix}../{name}", "safe/").render(source("a.txt"))


def test_sanitise_key() -> None:
    assert sanitise_key("a//b/./c") == "a/b/c"
    assert sanitise_key("cafe\u0301") == "caf\u00e9"
    with pytest.raises(UnsafeKeyError):
        sanitise_key("a/../b")
    with pytest.raises(UnsafeKeyError):
        sanitise_key("a/\x07b")


def test_parse_file_time() -> None:
    assert parse_file_time("20250729_161500.xml") == datetime(2025, 7, 29, 16, 15, tzinfo=UTC)
    assert parse_file_time("log-20250729.txt") == datetime(2025, 7, 29, tzinfo=UTC)
    assert parse_file_time("99999999.txt") is None
    assert parse_file_time("plain.txt") is None


NAMES = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=300)
@given(
    st.lists(NAMES, min_size=1, max_size=6),
    st.sampled_from(
        [
            "{prefix}{rel_path}",
            "{prefix}{file_time:%Y/%m/%d}/{name}",
            "{rel_dir}/{stem}.{ext}",
            "{prefix}{mtime:%Y}/{rel_path}",
        ]
    ),
)
def test_no_key_escapes_the_prefix(segments: list[str], text: str) -> None:
    template = KeyTemplate.build(text, "base/pre/")
    rel = "/".join(segments)
    try:
        key = template.render(source(rel))
    except UnsafeKeyError:
        return
    assert key.startswith("base/pre/")
    assert ".." not in key.split("/")
    assert "" not in key.split("/")
    assert not any(ord(c) < 32 or ord(c) == 127 for c in key)
    assert ".." not in re.split(r"[/\\]", key)  # nor for a reader taking "\\" as a separator
    assert len(key.encode("utf-8")) <= MAX_KEY_BYTES
    assert key == unicodedata.normalize("NFC", key)


@settings(max_examples=200)
@given(st.lists(NAMES, min_size=1, max_size=6))
def test_the_mirror_shortcut_renders_what_the_general_path_renders(segments: list[str]) -> None:
    """``{prefix}{rel_path}`` skips deriving fields; a record (unused by the template)
    forces the general path, which must agree key for key and error for error."""
    template = KeyTemplate.build("{prefix}backup/{rel_path}", "base/pre/")
    item = source("/".join(segments))
    outcomes = []
    for record in (None, {"unused": 1}):
        try:
            outcomes.append(template.render(item, record=record))
        except UnsafeKeyError as exc:
            outcomes.append(f"refused: {exc}")
    assert outcomes[0] == outcomes[1]


def test_include_exclude_precedence() -> None:
    selector = Selector.build(include=["*.xml", "keep/**"], exclude=["**/tmp/**", "*.xml.part"])
    assert selector.takes(source("a/b.xml")) is None
    assert selector.takes(source("keep/x/y.bin")) is None
    assert selector.takes(source("a/tmp/b.xml")) == "excluded"  # exclude wins
    assert selector.takes(source("keep/tmp/b.bin")) == "excluded"
    assert selector.takes(source("other.bin")) == "not included"
    reordered = Selector.build(exclude=["*.xml.part", "**/tmp/**"], include=["keep/**", "*.xml"])
    for rel in ("a/b.xml", "keep/x/y.bin", "a/tmp/b.xml", "other.bin"):
        assert reordered.takes(source(rel)) == selector.takes(source(rel))


def test_size_and_age_bounds() -> None:
    now = MTIME / 1e9 + 3600
    selector = Selector.build(min_size=5, max_size=100, newer_than="2h", now=now)
    assert selector.takes(source("a", size=4)) == "smaller than --min-size"
    assert selector.takes(source("a", size=101)) == "larger than --max-size"
    assert selector.takes(source("a", size=50)) is None
    older = Selector.build(older_than="2024-01-01", now=now)
    assert older.takes(source("a")) == "newer than --older-than"
    with pytest.raises(ConfigError):
        Selector.build(newer_than="yesterday")


def test_folder_type_detection(tmp_path: Path) -> None:
    for name in ("reels", "config", "unrelated"):
        (tmp_path / name).mkdir()
    auto = select_folder_types(tmp_path, known=DEFAULT_FOLDER_TYPES, include=["auto"], exclude=[])
    assert [(s.group, s.skip) for s in auto] == [
        ("reels", None),
        ("config", None),
        ("", "outside every folder type of the project layout"),  # walked to be named
    ]
    assert auto[-1].path == tmp_path / "unrelated"
    only = select_folder_types(tmp_path, known=DEFAULT_FOLDER_TYPES, include=[], exclude=["reels"])
    assert [s.group for s in only if s.skip is None] == ["config"]
    with pytest.raises(SourceError, match="logs"):
        select_folder_types(tmp_path, known=DEFAULT_FOLDER_TYPES, include=["logs"], exclude=[])
    with pytest.raises(ConfigError, match="unknown folder type"):
        select_folder_types(tmp_path, known=DEFAULT_FOLDER_TYPES, include=["bogus"], exclude=[])


def test_collisions_are_refused() -> None:
    """NFC and NFD spellings of one name get one key: in one batch, neither is taken."""
    planner = Planner(load_settings(env={}), parse_target("s3://bucket/p"))
    first = planner.plan(source("caf\u00e9.txt"))
    second = planner.plan(
        SourceFile(Path("/data/cafe\u0301.txt"), "cafe\u0301.txt", 1, MTIME, Path("/data"))
    )
    assert isinstance(first, PlannedUpload)
    assert isinstance(second, PlannedUpload)
    kept, refused = planner.claims.settle([first, second], {})
    assert kept == []
    assert [r.error_class for r in refused] == ["KeyCollision", "KeyCollision"]
    assert str(second.source.path) in refused[0].reason
    assert str(first.source.path) in refused[1].reason


def test_strip_prefix() -> None:
    settings_ = load_settings(env={}, flags={"strip_prefix": "astro/"})
    planned = Planner(settings_, parse_target("s3://bucket/new")).plan(source("astro/x.jpg"))
    assert not isinstance(planned, Refused)
    assert planned is not None
    assert planned.key == "new/x.jpg"


def test_project_layout_dry_run_shows_keys(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(
        tmp_path / "project",
        {
            "reels/r1/a.mp4": 10,
            "reels/r1/notes.docx": 5,
            "config/sub/c.yaml": 3,
            "logs/run.log": 4,
            "report/r.pdf": 2,
            "misc/ignored.txt": 1,
        },
    )
    result = cli(
        "--json",
        "upload",
        "project",
        f"s3://{bucket}",
        "--layout",
        "project",
        "--project-key",
        "RMI25320",
        "--custom-timestamp",
        "20250729_1615",
        "--exclude-type",
        "report",
        "--dry-run",
        "--ledger",
        "l.db",
    )
    assert result.code == 0, result.output
    plans = [json.loads(x) for x in result.stdout.splitlines()]
    keys = sorted(p["key"] for p in plans if p["event"] == "plan")
    assert keys == [
        "RMI25320/config/20250729_1615/sub/c.yaml",
        "RMI25320/logs/20250729_1615/run.log",
        "RMI25320/reels/20250729_1615/r1/a.mp4",
    ]
    summary = plans[-1]
    assert set(summary["groups"]) == set()  # a dry run counts nothing as done


def test_date_folders_upload_and_group_counts(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(
        tmp_path / "src",
        {
            "20250729_161500.xml": 5,
            "20250730_000000.xml": 5,
            "rotating.xml.tmp": 5,
            "other/20240101_000000.xml": 5,
        },
    )
    result = cli(
        "--json",
        "upload",
        "src",
        f"s3://{bucket}/xml-events",
        "--layout",
        "date-folders",
        "--exclude",
        "*.tmp",
        "--ledger",
        "l.db",
    )
    assert result.code == 0, result.output
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {
        "xml-events/2025/07/29/20250729_161500.xml",
        "xml-events/2025/07/30/20250730_000000.xml",
        "xml-events/2024/01/01/20240101_000000.xml",
    }
    summary = json.loads(result.stdout.splitlines()[-1])
    assert summary["groups"]["(root)"]["uploaded"] == 2
    assert summary["groups"]["other"]["uploaded"] == 1


def test_bad_template_exits_2_before_any_request(proxied_cli, proxy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 1})
    result = proxied_cli(
        "upload", "src", "s3://any-bucket/p", "--key-template", "{prefix}{x}", "--ledger", "l.db"
    )
    assert result.code == 2
    assert "unknown field {x}" in result.stderr
    assert proxy.log == []


def test_collision_in_a_run_is_reported(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a/20250729_1.xml": 1, "b/20250729_1.xml": 2})
    result = cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--key-template",
        "{prefix}{file_time:%Y}/{name}",
        "--ledger",
        "l.db",
    )
    assert result.code == 1
    assert "KeyCollision" in result.stdout
    # found in one batch: neither is uploaded, and each failure names the other file
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    assert "also the key of src/b/20250729_1.xml" in result.stdout
    assert "also the key of src/a/20250729_1.xml" in result.stdout


@pytest.mark.skipif(os.name == "nt", reason="POSIX path test")
def test_windows_style_strip_prefix_is_normalised() -> None:
    settings_ = load_settings(env={}, flags={"strip_prefix": "\\astro\\"})
    planner = Planner(settings_, parse_target("s3://bucket/p"))
    planned = planner.plan(source("astro/x.jpg"))
    assert planned is not None
    assert not isinstance(planned, Refused)
    assert planned.key in ("p/x.jpg", "p/astro/x.jpg")


PIECES = ["a", "Z", "/", "\\", ".", "..", " ", "\x01", "\u00e9", "e\u0301", "_", "\udcff"]
KEY_TEXT = st.lists(st.sampled_from(PIECES), max_size=30).map("".join) | st.text(max_size=300)


@given(KEY_TEXT, st.sampled_from(["", "p/", "e\u0301/", "a"]))
def test_sanitise_key_shortcut_agrees_with_the_general_path(key: str, prefix: str) -> None:
    from s3stow.plan.templates import _sanitise_general, sanitise_key

    def outcome(function: Callable[..., str]) -> str:
        try:
            return "ok:" + function(key, prefix=prefix)
        except UnsafeKeyError as exc:
            return "refused:" + str(exc)

    assert outcome(sanitise_key) == outcome(_sanitise_general)


def _readme_command(marker: str) -> list[str]:
    """The README's example command line that contains ``marker``, as arguments."""
    import shlex

    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    line = next(x for x in readme.splitlines() if x.startswith("s3stow ") and marker in x)
    return shlex.split(line)[1:]


def test_readme_content_addressed_example_and_duplicates(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The README's {md5} example writes what it says, and two files of one content
    are one object: the second is reported as deduplicated, not as a collision."""
    args = _readme_command("{md5}")
    assert args[0] == "upload"
    assert args[1] == "./media"
    destination = args[2].replace("s3://bucket", f"s3://{bucket}")
    same = b"the same picture"
    files = {"a.jpg": same, "copy/a-again.jpg": same, "b.jpg": b"other"}
    make_tree(tmp_path / "media", files)
    for name in files:
        os.utime(tmp_path / "media" / name, (MTIME / 1e9, MTIME / 1e9))
    result = cli("--json", args[0], "media", destination, *args[3:], "--ledger", "l.db")
    assert result.code == 0, result.output
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    year = "2024/01"  # MTIME's
    md5 = {b: hashlib.md5(b, usedforsecurity=False).hexdigest() for b in (same, b"other")}
    assert keys == {f"cache/{year}/{md5[same]}.jpg", f"cache/{year}/{md5[b'other']}.jpg"}
    events = [json.loads(x) for x in result.stdout.splitlines()]
    deduplicated = [e for e in events if e.get("reason") == "deduplicated"]
    assert [e["path"] for e in deduplicated] == [str(Path("media/copy/a-again.jpg"))]
    summary = events[-1]
    assert (summary["uploaded"], summary["skipped"], summary["failed"]) == (2, 1, 0)
    assert summary["skip_reasons"] == {"deduplicated": 1}
    text = cli(args[0], "media", destination, *args[3:], "--ledger", "l.db")
    assert text.code == 0
    assert "skipped: 1 deduplicated" in text.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_what_a_run_leaves_out_is_counted_and_named(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(
        tmp_path / "project",
        {"config/c.yaml": 3, "config/c.bin": 3, "top.txt": 1, "other/o.bin": 2},
    )
    os.mkfifo(tmp_path / "project" / "config" / "pipe")
    result = cli(
        "-v", "upload", "project", f"s3://{bucket}", "--layout", "project",
        "--project-key", "K", "--ledger", "l.db",
    )  # fmt: skip
    assert result.code == 0, result.output
    assert "1 uploaded, 3 skipped, 0 failed of 4 files" in result.stdout
    assert "skipped: 2 outside the layout, 1 special file" in result.stdout
    assert "1 file not selected" in result.stdout
    for path, why in (
        ("project/config/pipe", "not a regular file (socket, FIFO or device)"),
        ("project/top.txt", "outside every folder type of the project layout"),
        ("project/other/o.bin", "outside every folder type of the project layout"),
        ("project/config/c.bin", "extension not in the config folder type"),
    ):
        assert f"{Path(path)}: {why}" in result.stderr, path
    quiet = cli("upload", "project", f"s3://{bucket}", "--layout", "project", "--project-key", "K")
    assert "project/top.txt" not in quiet.stderr  # named only under -v


def test_an_include_that_matches_nothing_says_so(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.xml": 1, "b.txt": 1})
    result = cli(
        "upload", "src", f"s3://{bucket}/p", "--include", "*.xml", "--include", "*.jsn",
        "--ledger", "l.db",
    )  # fmt: skip
    assert result.code == 0, result.output
    assert "--include '*.jsn' matched no file" in result.stderr
    assert "'*.xml' matched no file" not in result.stderr


def test_a_timestamp_the_keys_have_no_place_for_is_refused(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``--timestamp`` (or ``--custom-timestamp``) under the mirror or date-folders
    layout, or a template without ``{timestamp}``, was dropped without a word: a second
    "snapshot" run wrote over the first one's keys. It is refused before anything is
    sent (exit 2); where the keys have a place for it, it is used."""
    make_tree(tmp_path / "src", {"a.txt": 3})
    target = f"s3://{bucket}/p"
    for extra in (
        ("--timestamp",),
        ("--custom-timestamp", "20250729_1615", "--layout", "date-folders"),
        ("--timestamp", "--key-template", "{name}"),
    ):
        result = cli("upload", "src", target, "--ledger", "l.db", *extra)
        assert result.code == 2, (extra, result.output)
        assert "has no place in the keys" in result.stderr
        assert "Traceback" not in result.output
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    template = ("--key-template", "{timestamp}/{rel_path}", "--custom-timestamp", "20250729_1615")
    assert cli("upload", "src", target, "--ledger", "l.db", "--timestamp", *template).code == 0
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["p/20250729_1615/a.txt"]
