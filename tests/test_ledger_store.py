"""A ledger row proves an object only on the S3 it was reached against.

The same bucket name on another endpoint (a test MinIO, then AWS; one SeaweedFS, then
another) is another bucket: a ``done`` row from the first must not let a run against
the second skip the file. Before the ledger recorded the store, the second run exited 0
having sent nothing.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3stow.config import load_settings
from s3stow.ledger import open_ledger
from s3stow.logs import redact
from s3stow.models import Status
from s3stow.store.s3 import S3Store
from s3stow.transfer.engine import Uploader
from tests.conftest import s3_client


def _uploader(endpoint: str, bucket: str, ledger_path: Path) -> Uploader:
    return Uploader.from_env(
        {"BUCKET_NAME": bucket, "S3STOW_ENDPOINT_URL": endpoint},
        ledger=open_ledger(str(ledger_path)),
    )


def _run(endpoint: str, bucket: str, ledger_path: Path, src: Path) -> Any:
    uploader = _uploader(endpoint, bucket, ledger_path)
    try:
        return uploader.upload_tree(src, f"s3://{bucket}/p")
    finally:
        assert uploader.ledger is not None
        uploader.ledger.close()


def _keys(endpoint: str, bucket: str) -> list[str]:
    listed = s3_client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(o["Key"] for o in listed.get("Contents", []))


@pytest.fixture
def two_servers(s3_server: Any, seaweed_server: Any) -> Iterator[tuple[str, str, str]]:
    """One bucket name on moto and on SeaweedFS: (moto URL, SeaweedFS URL, bucket)."""
    bucket = f"t-{uuid.uuid4().hex[:20]}"
    for server in (s3_server, seaweed_server):
        s3_client(server.endpoint_url).create_bucket(Bucket=bucket)
    yield s3_server.endpoint_url, seaweed_server.endpoint_url, bucket
    seaweed = s3_client(seaweed_server.endpoint_url)
    seaweed.delete_bucket(Bucket=bucket)  # SeaweedFS deletes a bucket with its objects


def test_a_row_from_another_endpoint_does_not_skip_the_file(
    two_servers: tuple[str, str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    moto, seaweed, bucket = two_servers
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    (src / "b.txt").write_text("world")
    ledger = tmp_path / "l.db"

    first = _run(moto, bucket, ledger, src)
    assert (first.uploaded, first.failed) == (2, 0)
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("SELECT DISTINCT store FROM items").fetchall() == [(moto,)]

    with caplog.at_level(logging.WARNING, logger="s3stow"):
        second = _run(seaweed, bucket, ledger, src)
    assert (second.uploaded, second.skipped, second.failed) == (2, 0, 0)
    assert _keys(seaweed, bucket) == ["p/a.txt", "p/b.txt"]
    warned = [r.getMessage() for r in caplog.records if "checked there" in r.getMessage()]
    assert len(warned) == 1, warned  # once per store, not per file
    assert moto in warned[0]
    assert seaweed in warned[0]
    with sqlite3.connect(ledger) as conn:
        assert conn.execute("SELECT DISTINCT store FROM items").fetchall() == [(seaweed,)]

    # On the store it now names, the row settles the file without a request.
    third = _run(seaweed, bucket, ledger, src)
    assert (third.uploaded, third.skipped) == (0, 2)

    # Back on moto, the objects are there: proven by checksum, not sent again.
    s3_client(moto).delete_object(Bucket=bucket, Key="p/b.txt")
    fourth = _run(moto, bucket, ledger, src)
    assert (fourth.uploaded, fourth.failed) == (1, 0)  # b.txt, deleted meanwhile
    assert _keys(moto, bucket) == ["p/a.txt", "p/b.txt"]


def test_a_row_from_before_stores_were_recorded_still_settles_the_file(
    s3_server: Any, bucket: str, tmp_path: Path
) -> None:
    """A ledger written by an older s3stow has no store in its rows: they are taken as
    the store's the next run uses (there is nothing else to go by)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    ledger = tmp_path / "l.db"
    assert _run(s3_server.endpoint_url, bucket, ledger, src).uploaded == 1
    with sqlite3.connect(ledger) as conn:
        conn.execute("UPDATE items SET store = NULL")
    s3_client(s3_server.endpoint_url).delete_object(Bucket=bucket, Key="p/a.txt")
    again = _run(s3_server.endpoint_url, bucket, ledger, src)
    assert (again.uploaded, again.skipped) == (0, 1)  # the row was trusted: no request


def test_a_done_row_names_the_store_it_was_reached_against(
    s3_server: Any, bucket: str, tmp_path: Path
) -> None:
    ledger = open_ledger(str(tmp_path / "l.db"))
    uploader = Uploader.from_env(
        {"BUCKET_NAME": bucket, "S3STOW_ENDPOINT_URL": s3_server.endpoint_url}, ledger=ledger
    )
    path = tmp_path / "a.txt"
    path.write_text("x")
    assert uploader.upload_file(path, key="a.txt").status == Status.DONE
    entry = ledger.lookup(bucket, ["a.txt"])["a.txt"]
    assert entry.store == s3_server.endpoint_url
    ledger.close()


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"region": "eu-west-1"}, "aws:aws"),
        ({"region": "us-east-1"}, "aws:aws"),  # one namespace whatever the region
        ({"region": "cn-north-1"}, "aws:aws-cn"),
        ({"endpoint_url": "http://127.0.0.1:9/"}, "http://127.0.0.1:9/"),
        ({"endpoint_url": "http://user:secret@127.0.0.1:9"}, "http://user:***@127.0.0.1:9"),
    ],
)
def test_the_store_is_the_configured_endpoint_or_the_aws_partition(
    overrides: dict[str, str], expected: str
) -> None:
    """As botocore resolves it (no request is sent to find out)."""
    settings = load_settings(env={}, flags=overrides)
    assert S3Store.from_settings(settings).store_id() == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/",
        "HTTP://LOCALHOST:9000/Path/",
        "https://minio.example:9000/x?y=1",
        "http://user:secret@127.0.0.1:9",
    ],
)
def test_an_endpoint_in_the_settings_is_the_store_botocore_resolves(url: str) -> None:
    """The store of a configured endpoint is known without a client (a no-op re-run
    makes none): it must equal what the client botocore makes for it says."""
    settings = load_settings(env={}, flags={"endpoint_url": url})
    without_client = S3Store.from_settings(settings)
    assert without_client.store_id() == redact(url)
    assert without_client._client is None
    with_client = S3Store(client=S3Store.from_settings(settings).client)
    assert with_client.store_id() == without_client.store_id()


@pytest.mark.parametrize("how", ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "config file"])
def test_an_endpoint_configured_for_botocore_is_the_same_store_as_the_flag(
    how: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Users configure endpoints in the environment or ``~/.aws/config`` as often as with
    ``--endpoint-url``: botocore resolves those (s3stow does not), and the store they
    name is the one the flag names, so rows written either way settle the other's."""
    url = "http://127.0.0.1:9000"
    if how == "config file":
        config = tmp_path / "config"
        config.write_text(f"[default]\nendpoint_url = {url}\n", encoding="utf-8")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    else:
        monkeypatch.setenv(how, url)
    configured = S3Store.from_settings(load_settings(env={}))
    assert configured.store_id() == url
    flagged = S3Store.from_settings(load_settings(env={}, flags={"endpoint_url": url}))
    assert flagged.store_id() == configured.store_id()


def test_rows_written_with_aws_endpoint_url_settle_a_run_with_the_flag(
    seaweed_server: Any, seaweed_bucket: str, tmp_path: Path
) -> None:
    """The same SeaweedFS named once by ``AWS_ENDPOINT_URL`` and once by the flag: the
    second run sends nothing (the CLI, as users run it)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("hello")
    ledger = str(tmp_path / "l.db")
    target = f"s3://{seaweed_bucket}/p"
    env = {**os.environ, "AWS_ENDPOINT_URL": seaweed_server.endpoint_url}
    base = [sys.executable, "-m", "s3stow", "--json"]
    first = subprocess.run(
        [*base, "upload", str(src), target, "--ledger", ledger],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    second = subprocess.run(
        [*base, "--endpoint-url", seaweed_server.endpoint_url, "upload", str(src), target,
         "--ledger", ledger],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    assert '"skipped": 1' in second.stdout
    assert "checked there" not in second.stderr
