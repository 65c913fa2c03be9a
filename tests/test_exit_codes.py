"""Each documented exit code, and clear messages for bad input."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.conftest import make_tree


def test_missing_source_exits_2(cli, bucket) -> None:  # type: ignore[no-untyped-def]
    result = cli("upload", "does-not-exist", f"s3://{bucket}/p", "--ledger", "l.db")
    assert result.code == 2
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize("dest", ["not-an-s3-url", "s3://Bad_Bucket/x", "s3://ab/x"])
def test_invalid_destination_exits_2(cli, tmp_path: Path, dest: str) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "src").mkdir()
    result = cli("upload", "src", dest, "--ledger", "l.db")
    assert result.code == 2
    assert "hint:" in result.stderr
    assert "Traceback" not in result.output


def test_missing_bucket_exits_3_with_setup_hint(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.txt": 1})
    result = cli("upload", "src", "s3://no-such-bucket-here/p", "--ledger", "l.db")
    assert result.code == 3
    assert "does not exist" in result.stderr
    assert "s3stow bucket setup" in result.stderr


def test_access_denied_exits_3_without_hammering(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(20)})
    proxy.add(r"^PUT ", "status", times=1000, status=403, code="AccessDenied")
    result = proxied_cli(
        "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--concurrency", "2"
    )
    assert result.code == 3
    assert "AccessDenied" in result.stderr
    assert "s3:PutObject" in result.stderr
    assert len(proxy.requests(r"^PUT ")) <= 4  # stops early, no retry storm


def test_bad_credentials_on_bucket_check_exit_3(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    make_tree(tmp_path / "src", {"a.txt": 1})
    proxy.add(r"^HEAD ", "status", times=10, status=403, code="InvalidAccessKeyId")
    result = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert result.code == 3
    assert "credentials" in result.stderr


def test_some_failed_exits_1(proxied_cli, proxy, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(10)})
    proxy.add(r"^PUT /[^/]+/p/f3\.txt", "status", times=1000, status=500, code="InternalError")
    result = proxied_cli(
        "upload",
        "src",
        f"s3://{bucket}/p",
        "--ledger",
        "l.db",
        env={"S3STOW_RETRY_BASE_DELAY": "0.01", "S3STOW_MAX_ATTEMPTS": "2"},
    )
    assert result.code == 1
    assert "9 uploaded" in result.stdout
    assert "InternalError" in result.stdout
    # 2 attempts per request x (2 file retries + 1)
    assert len(proxy.requests(r"^PUT /[^/]+/p/f3\.txt")) == 6
    proxy.reset()
    again = proxied_cli("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert again.code == 0
    assert [r.split("?")[0] for r in proxy.requests(r"^PUT ")] == [f"PUT /{bucket}/p/f3.txt"]


def test_usage_error_exits_2(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("upload", "--no-such-option")
    assert result.code == 2
    assert "Traceback" not in result.output


def test_version_and_help(cli) -> None:  # type: ignore[no-untyped-def]
    assert cli("--version").code == 0
    help_text = cli("--help")
    assert help_text.code == 0
    for command in ("upload", "status", "dev-server"):
        assert command in help_text.stdout


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this OS")
def test_special_files_and_symlinks_are_reported(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"real.txt": 5, "inner/x.txt": 3})
    os.mkfifo(tmp_path / "src" / "pipe")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "src" / "sock"))
    os.symlink(tmp_path / "src" / "real.txt", tmp_path / "src" / "link.txt")
    os.symlink(tmp_path / "src", tmp_path / "src" / "inner" / "loop")
    os.symlink("/etc/hostname", tmp_path / "src" / "outside.txt")
    result = cli("--json", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    sock.close()
    assert result.code == 0, result.output
    assert "not a regular file" in result.stdout
    assert "symlink not followed" in result.stdout
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert keys == {"p/real.txt", "p/inner/x.txt"}
    followed = cli(
        "--json", "upload", "src", f"s3://{bucket}/q", "--ledger", "l.db", "--follow-symlinks"
    )
    assert followed.code == 0, followed.output
    assert "outside the source tree" in followed.stdout
    assert "symlink loop" in followed.stdout
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="q/")["Contents"]}
    assert keys == {"q/real.txt", "q/inner/x.txt", "q/link.txt"}


def test_non_utf8_names_are_reported_not_mangled(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "src"
    src.mkdir()
    (src / "good.txt").write_bytes(b"1")
    bad = os.path.join(os.fsencode(src), b"bad\xff.txt")
    with open(bad, "wb") as handle:
        handle.write(b"2")
    result = cli("--json", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert result.code == 1
    assert "not valid UTF-8" in result.stdout
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert keys == {"p/good.txt"}


def test_unreadable_directory_is_reported(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from s3stow.models import Skipped
    from s3stow.plan import discover as discover_module

    make_tree(tmp_path / "src", {"ok/a.txt": 1, "locked/b.txt": 1})
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if str(path).endswith("locked"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(discover_module.os, "scandir", scandir)
    found = list(discover_module.discover([tmp_path / "src"]))
    skipped = [f for f in found if isinstance(f, Skipped)]
    assert len(skipped) == 1
    assert "cannot read directory" in skipped[0].reason
    assert [f.rel_path for f in found if not isinstance(f, Skipped)] == ["ok/a.txt"]


def test_a_source_gone_before_its_walk_is_reported_not_raised(tmp_path: Path) -> None:
    """A source folder removed between the sources check and the walk (another program
    cleaning up) is one failed path with its reason: it raised a bare FileNotFoundError
    out of the walk, an unexpected error (exit 3) instead of the run's report."""
    from s3stow.models import Skipped
    from s3stow.plan.discover import discover

    gone = tmp_path / "gone"
    make_tree(tmp_path / "here", {"a.txt": 1})
    found = list(discover([gone, tmp_path / "here"]))
    assert isinstance(found[0], Skipped)
    assert found[0].path == gone
    assert found[0].reason == "cannot read directory: No such file or directory"
    assert [f.path.name for f in found[1:]] == ["a.txt"]  # the other source is walked


def test_an_aws_configuration_that_cannot_be_used_is_named_with_its_exit_code(
    cli, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """``--profile nosuch`` and an AWS config file that does not parse were a transient
    failure (``ProfileNotFound on s3://b``, exit 1, no hint), and "unexpected" in
    ``doctor`` and ``bucket check``; a failed ``credential_process`` was exit 1 too."""
    make_tree(tmp_path / "src", {"a.txt": 1})
    upload = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    (tmp_path / "bad-config").write_text("[profile broken\nregion = x\n")
    (tmp_path / "process-config").write_text("[profile cp]\ncredential_process = false\n")
    no_keys = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    cases = [
        (("--profile", "nosuch", *upload), {}, 2, "The config profile (nosuch) could not be"),
        (("--profile", "nosuch", "bucket", "check", bucket), {}, 2, "--profile (or AWS_PROFILE)"),
        (("--profile", "nosuch", "doctor", f"s3://{bucket}/p"), {}, 3, "FAIL credentials"),
        (upload, {"AWS_CONFIG_FILE": str(tmp_path / "bad-config")}, 2, "Unable to parse config"),
        (
            ("--profile", "cp", *upload),
            {"AWS_CONFIG_FILE": str(tmp_path / "process-config"), **no_keys},
            3,
            "no usable AWS credentials were found",
        ),
    ]
    for args, env, code, words in cases:
        result = cli(*args, env=env)
        assert result.code == code, (args, result.output)
        assert words in result.output, (args, result.output)
        assert "unexpected" not in result.output
        assert "Traceback" not in result.output


@pytest.mark.parametrize("prefix", ["a\tb", "x\ny/", "\x1b[2J"])
def test_a_prefix_with_a_control_character_is_refused_before_any_file(
    cli, bucket, tmp_path: Path, prefix: str
) -> None:  # type: ignore[no-untyped-def]
    # every key under it failed as UnsafeKey, file by file (exit 1)
    make_tree(tmp_path / "src", {"a.txt": 1, "b.txt": 2})
    result = cli("upload", "src", f"s3://{bucket}/{prefix}", "--ledger", "l.db")
    assert result.code == 2, result.output
    assert "holds a control character" in result.stderr
    assert "\x1b" not in result.output
