"""The library API: Uploader.from_env, upload_file, check_bucket_access."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from s3stow.errors import BucketMissingError, ConfigError
from s3stow.ledger import open_ledger
from s3stow.models import Status
from s3stow.plan.keys import parse_target
from s3stow.transfer.engine import Uploader


def test_from_env_with_seed_variables(s3_server, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "BUCKET_NAME": bucket,
        "PREFIX": "xml-events/",
        "MAX_RETRIES": "4",
        "RETRY_BASE_DELAY": "0.5",
        "S3STOW_ENDPOINT_URL": s3_server.endpoint_url,
    }
    uploader = Uploader.from_env(env)
    assert uploader.settings.file_retries == 4
    assert uploader.settings.retry_base_delay == 0.5
    uploader.check_bucket_access()
    path = tmp_path / "20250729_161500.xml"
    path.write_text("<event/>")
    result = uploader.upload_file(path)
    assert result.status == Status.DONE
    assert result.key == "xml-events/20250729_161500.xml"
    head = s3.head_object(Bucket=bucket, Key=result.key)
    assert head["ContentType"] == "application/xml"


def test_from_env_requires_bucket() -> None:
    with pytest.raises(ConfigError, match="BUCKET_NAME"):
        Uploader.from_env({})


def test_no_destination_is_a_usage_error(tmp_path: Path) -> None:
    """``upload_file`` and ``upload_tree`` without a destination, on an uploader made
    without one: a ``ConfigError`` (exit 2, as on the command line), not a bare
    ``S3StowError`` (exit 3), before anything is read or sent."""
    from s3stow.config import Settings
    from s3stow.errors import ExitCode

    (tmp_path / "a.txt").write_bytes(b"a")
    uploader = Uploader(Settings(endpoint_url="http://127.0.0.1:9"))
    for call in (uploader.upload_file, uploader.upload_tree):
        with pytest.raises(ConfigError, match="no destination given") as caught:
            call(tmp_path / "a.txt")
        assert caught.value.exit_code == ExitCode.USAGE


def test_a_library_prefix_is_checked_as_a_url_prefix(tmp_path: Path) -> None:
    """``Uploader``'s ``Target`` and ``PREFIX`` took ``a//b`` and ``/a`` as ``a/b/`` and
    ``a/``, where ``s3://b/a//b`` is refused: the same ``ConfigError`` (exit 2) now,
    before anything is read or sent; ``Target("b", "a")`` is ``a/``, as a URL's."""
    from s3stow.config import Settings
    from s3stow.errors import ExitCode
    from s3stow.models import Target

    (tmp_path / "a.txt").write_bytes(b"a")
    uploader = Uploader(Settings(endpoint_url="http://127.0.0.1:9"))
    for call in (uploader.upload_file, uploader.upload_tree):
        with pytest.raises(ConfigError, match=r"has an empty segment \(//\)") as caught:
            call(tmp_path / "a.txt", target=Target("bkt", "a//b"))
        assert caught.value.exit_code == ExitCode.USAGE
        assert caught.value.hint == "write Target('bkt', 'a/b/')"
    defaulted = Uploader(
        Settings(endpoint_url="http://127.0.0.1:9"), default_target=Target("bkt", "/a")
    )
    with pytest.raises(ConfigError, match="starts with /"):
        defaulted.upload_tree(tmp_path)
    with pytest.raises(ConfigError, match=r"environment variable PREFIX='a//b'") as env:
        Uploader.from_env({"BUCKET_NAME": "bkt", "PREFIX": "a//b"})
    assert env.value.hint == "write PREFIX=a/b/"


@pytest.mark.parametrize("empty", ["", "  ", ["", "src"]], ids=["empty", "blank", "in-a-list"])
def test_an_empty_source_is_refused_not_taken_as_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty: str | list[str]
) -> None:
    """``upload_tree("")`` uploaded the current folder (``Path("")`` is ``.``), as the
    command line did before it refused an empty source; so does ``Restorer`` a ``""``
    destination. Refused before anything is read or sent (the endpoint answers nothing)."""
    from s3stow.config import Settings
    from s3stow.errors import ExitCode
    from s3stow.restore.engine import Restorer

    monkeypatch.chdir(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "a.txt").write_bytes(b"a")
    settings = Settings(endpoint_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError, match="the source path is empty") as caught:
        Uploader(settings).upload_tree(empty, "s3://bucket/p")
    assert caught.value.exit_code == ExitCode.USAGE
    assert ". for the current folder" in caught.value.hint
    if isinstance(empty, str):
        with pytest.raises(ConfigError, match="the destination folder is empty"):
            Restorer(settings).restore_tree("s3://bucket/p", empty)


def test_check_bucket_access_missing_bucket(s3_server) -> None:  # type: ignore[no-untyped-def]
    uploader = Uploader.from_env(
        {"BUCKET_NAME": "missing-bucket-xyz", "S3STOW_ENDPOINT_URL": s3_server.endpoint_url}
    )
    with pytest.raises(BucketMissingError):
        uploader.check_bucket_access()


def test_upload_file_records_in_ledger(s3_server, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ledger = open_ledger(str(tmp_path / "l.db"))
    uploader = Uploader.from_env(
        {"BUCKET_NAME": bucket, "S3STOW_ENDPOINT_URL": s3_server.endpoint_url}, ledger=ledger
    )
    path = tmp_path / "a.json"
    path.write_text("{}")
    result = uploader.upload_file(path, key="custom/a.json")
    assert result.url == f"s3://{bucket}/custom/a.json"
    assert ledger.lookup(bucket, ["custom/a.json"])["custom/a.json"].status == Status.DONE
    ledger.close()


@pytest.mark.parametrize("given", [str, Path, lambda p: [p]], ids=["str", "Path", "list"])
def test_upload_tree_takes_one_folder_or_several(  # type: ignore[no-untyped-def]
    s3_server, s3, bucket, tmp_path: Path, given
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("a")
    uploader = Uploader.from_env(
        {"BUCKET_NAME": bucket, "S3STOW_ENDPOINT_URL": s3_server.endpoint_url}
    )
    summary = uploader.upload_tree(given(src), f"s3://{bucket}/p")
    assert (summary.uploaded, summary.failed) == (1, 0)
    assert s3.get_object(Bucket=bucket, Key="p/a.txt")["Body"].read() == b"a"


def test_from_env_use_date_folders(s3_server, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    env = {
        "BUCKET_NAME": bucket,
        "USE_DATE_FOLDERS": "true",
        "S3STOW_ENDPOINT_URL": s3_server.endpoint_url,
    }
    uploader = Uploader.from_env(env)
    path = tmp_path / "20250729_161500.xml"
    path.write_text("<event/>")
    result = uploader.upload_file(path)
    assert result.status == Status.DONE
    assert result.key == "xml-events/2025/07/29/20250729_161500.xml"


class _MemoryKeyring:
    """A keyring backend holding secrets in memory (the OS keyring is not in CI)."""

    def __init__(self, secrets: dict[tuple[str, str], str]) -> None:
        import keyring.backend

        class Backend(keyring.backend.KeyringBackend):
            priority = 1  # type: ignore[assignment]

            def get_password(self, service: str, username: str) -> str | None:
                return secrets.get((service, username))

            def set_password(self, service: str, username: str, password: str) -> None:
                secrets[(service, username)] = password

            def delete_password(self, service: str, username: str) -> None:
                secrets.pop((service, username), None)

        self.backend = Backend()


def test_keyring_credentials(s3_server, bucket, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import keyring

    from s3stow.config import load_settings
    from s3stow.errors import AuthError

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    previous = keyring.get_keyring()
    keyring.set_keyring(
        _MemoryKeyring(
            {
                ("uploads", "aws_access_key_id"): "testing",
                ("uploads", "aws_secret_access_key"): "testing",
            }
        ).backend
    )
    try:
        settings = load_settings(
            env={},
            flags={
                "endpoint_url": s3_server.endpoint_url,
                "auth": "keyring",
                "keyring_service": "uploads",
            },
        )
        path = tmp_path / "k.txt"
        path.write_text("from the keyring")
        result = Uploader(settings, default_target=parse_target(f"s3://{bucket}/k")).upload_file(
            path
        )
        assert result.status == Status.DONE
        missing = load_settings(
            env={},
            flags={
                "endpoint_url": s3_server.endpoint_url,
                "auth": "keyring",
                "keyring_service": "nothing-here",
            },
        )
        with pytest.raises(AuthError, match="nothing-here"):
            Uploader(missing, default_target=parse_target(f"s3://{bucket}/k")).upload_file(path)
    finally:
        keyring.set_keyring(previous)


def test_keyring_cli_without_keys_exits_3(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "a.txt").write_text("x")
    result = cli(
        "--auth",
        "keyring",
        "--keyring-service",
        "empty",
        "upload",
        "a.txt",
        f"s3://{bucket}/k",
        "--ledger",
        "l.db",
        env={"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"},
    )
    assert result.code == 3
    assert "keyring" in result.stderr


def test_the_public_api_is_exported_at_the_top_and_loaded_on_use() -> None:
    """``from s3stow import ...`` gives every name ``__all__`` declares; importing the
    package alone loads none of them (a fresh interpreter, so nothing is cached)."""
    import subprocess
    import sys

    import s3stow

    for name in s3stow.__all__:
        assert getattr(s3stow, name) is not None, name
    assert set(s3stow.__all__) == {"__version__", *s3stow._EXPORTS}
    from s3stow import Restorer, Uploader, Watcher, load_settings, open_ledger, verify_tree

    assert (Uploader.__name__, Restorer.__name__, Watcher.__name__) == (
        "Uploader",
        "Restorer",
        "Watcher",
    )
    assert all(map(callable, (load_settings, open_ledger, verify_tree)))
    probe = (
        "import sys, s3stow; "
        "print(sorted(m for m in sys.modules if m.startswith(('s3stow.', 'botocore'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]", loaded
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = s3stow.Nope  # type: ignore[attr-defined]


def test_the_seed_variables_and_which_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The aggregator's variables (no server): each maps to its setting, an ``S3STOW_*``
    variable wins over it, and ``os.environ`` is read when no mapping is given."""
    from s3stow.transfer.envcompat import settings_and_target_from_env

    with pytest.raises(ConfigError) as missing:
        settings_and_target_from_env({"PREFIX": "p/"})
    assert missing.value.message == "BUCKET_NAME environment variable is required"
    assert missing.value.hint == "export BUCKET_NAME=my-bucket (or S3STOW_BUCKET)"
    seeds = {
        "BUCKET_NAME": "seed-bucket",
        "PREFIX": "events",
        "MAX_RETRIES": "4",
        "RETRY_BASE_DELAY": "0.5",
        "AWS_REGION": "eu-west-3",
        "USE_DATE_FOLDERS": "Yes ",
    }
    settings, target = settings_and_target_from_env(seeds)
    assert (target.bucket, target.prefix) == ("seed-bucket", "events/")
    assert (settings.file_retries, settings.retry_base_delay) == (4, 0.5)
    assert (settings.region, settings.layout) == ("eu-west-3", "date-folders")
    ours = {
        "S3STOW_BUCKET": "our-bucket",
        "S3STOW_PREFIX": "ours",
        "S3STOW_FILE_RETRIES": "1",
        "S3STOW_RETRY_BASE_DELAY": "2",
        "S3STOW_REGION": "us-east-2",
        "S3STOW_LAYOUT": "mirror",
    }
    settings, target = settings_and_target_from_env({**seeds, **ours})
    assert (target.bucket, target.prefix) == ("our-bucket", "ours/")
    assert (settings.file_retries, settings.retry_base_delay) == (1, 2.0)
    assert (settings.region, settings.layout) == ("us-east-2", "mirror")
    settings, target = settings_and_target_from_env({"BUCKET_NAME": "bkt", "USE_DATE_FOLDERS": "0"})
    assert (target.prefix, settings.layout, settings.file_retries) == ("xml-events/", "mirror", 2)
    for name in [*seeds, *ours]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BUCKET_NAME", "from-environ")
    assert settings_and_target_from_env()[1].bucket == "from-environ"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"USE_DATE_FOLDERS": "maybe"}, "USE_DATE_FOLDERS: 'maybe' is not true or false"),
        ({"MAX_RETRIES": "abc"}, "environment variable MAX_RETRIES: 'abc'"),
        ({"RETRY_BASE_DELAY": "-1"}, "environment variable RETRY_BASE_DELAY: '-1'"),
    ],
)
def test_from_env_refuses_a_wrong_seed_variable_by_its_name(
    env: dict[str, str], named: str
) -> None:
    """``USE_DATE_FOLDERS=maybe`` was taken as false (the mirror layout) without a word,
    and a wrong ``MAX_RETRIES`` was called ``S3STOW_FILE_RETRIES``, a variable never set."""
    with pytest.raises(ConfigError) as raised:
        Uploader.from_env({"BUCKET_NAME": "bkt", **env})
    assert named in str(raised.value)
    assert "S3STOW_" not in raised.value.message
    assert raised.value.hint  # the fix is named too, as for our own variable


def test_a_wrong_seed_variable_keeps_the_hint_of_the_setting_it_feeds() -> None:
    """``MAX_RETRIES=abc`` is refused under its own name with the same hint (how to
    write the value) as ``S3STOW_FILE_RETRIES=abc``: renaming the variable in the
    message must not drop the fix."""
    from s3stow.config import load_settings

    with pytest.raises(ConfigError) as ours:
        load_settings(env={"S3STOW_FILE_RETRIES": "abc"})
    with pytest.raises(ConfigError) as seeds:
        Uploader.from_env({"BUCKET_NAME": "bkt", "MAX_RETRIES": "abc"})
    assert ours.value.hint
    assert seeds.value.hint == ours.value.hint


@pytest.mark.parametrize("value", ["false", "0", "No", ""])
def test_from_env_use_date_folders_false(value: str) -> None:
    uploader = Uploader.from_env({"BUCKET_NAME": "bkt", "USE_DATE_FOLDERS": value})
    assert uploader.settings.layout == "mirror"


def test_an_embedders_store_raising_an_error_without_a_message_fails_the_file(
    tmp_path: Path,
) -> None:
    """An embedder's own ``ObjectStore`` may raise an ``OSError`` with no text (a bare
    ``TimeoutError()``): the file fails, named by the error's class, and nothing else
    breaks (the message of the result is the class, not an empty line)."""
    from collections.abc import Iterator

    from s3stow.config import Settings
    from s3stow.store.base import ObjectInfo, ObjectStore

    class TimingOut(ObjectStore):
        def custom_endpoint(self) -> bool:
            return False  # AWS's own: nothing to probe

        def head_bucket(self, bucket: str) -> None:
            return None

        def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
            return None

        def list_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
            return iter([])

        def put_object(self, *args: object, **kwargs: object) -> Any:
            raise TimeoutError

    path = tmp_path / "a.txt"
    path.write_text("abc")
    settings = Settings(max_attempts=1, file_retries=0)
    uploader = Uploader(
        settings, store=TimingOut(), default_target=parse_target("s3://own-bucket/p")
    )
    result = uploader.upload_file(path)
    assert (result.status, result.key) == (Status.FAILED, "p/a.txt")
    assert (result.error_class, result.error) == ("TimeoutError", "TimeoutError")
