"""The ledger on a real PostgreSQL server (required in CI)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest

from s3stow.ledger import MultipartState, open_ledger
from s3stow.models import PartRecord, Status, UploadResult
from tests.conftest import make_tree


def test_ledger_roundtrip_on_postgres(postgres_url: str) -> None:
    ledger = open_ledger(postgres_url)
    bucket = f"pg-{uuid.uuid4().hex[:12]}"
    run = uuid.uuid4().hex
    ledger.start_run(run, command="upload", bucket=bucket, prefix="", sources=["x"], settings={})
    ledger.record(
        UploadResult(
            Path("/x/a"),
            bucket,
            "a",
            Status.FAILED,
            size=3,
            error_class="InternalError",
            error="boom",
        ),
        mtime_ns=1,
        run_id=run,
    )
    ledger.flush()
    ledger.record(
        UploadResult(Path("/x/a"), bucket, "a", Status.DONE, size=3, etag="e"),
        mtime_ns=1,
        run_id=run,
    )
    ledger.flush()
    entry = ledger.lookup(bucket, ["a", "b"])["a"]
    assert entry.status == Status.DONE
    assert entry.attempts == 2
    state = MultipartState(
        bucket=bucket,
        key="big",
        upload_id="u1",
        source_path="/x/big",
        size=10,
        mtime_ns=1,
        part_size=5,
        checksum_algorithm="crc64nvme",
    )
    ledger.begin_multipart(state)
    ledger.record_part("u1", PartRecord(1, "etag1", "Y2hlY2s=", 5))
    loaded = ledger.multipart_state(bucket, "big")
    assert loaded is not None
    assert loaded.parts[0].etag == "etag1"
    ledger.forget_multipart(bucket, "big")
    assert ledger.multipart_state(bucket, "big") is None
    ledger.close()


def test_upload_with_postgres_ledger(cli, bucket, postgres_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {f"f{i}.txt": 10 for i in range(5)})
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", postgres_url)
    first = cli(*args)
    assert first.code == 0, first.output
    second = cli(*args)
    assert "0 uploaded, 5 skipped" in second.stdout
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM items WHERE bucket = %s GROUP BY 1", (bucket,)
        ).fetchall()
    assert rows == [("done", 5)]


def test_an_older_ledger_gains_new_columns(tmp_path: Path) -> None:
    import sqlite3

    from s3stow.ledger import sqlite_ddl

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a ledger from before items.grp/ext existed
        for statement in sqlite_ddl.STATEMENTS:
            if statement.startswith("CREATE TABLE items"):
                statement = statement.replace("grp VARCHAR(255), ext VARCHAR(32), ", "")
            conn.execute(statement)
    ledger = open_ledger(str(path))
    ledger.record(
        UploadResult(Path("/x/a.jpg"), "b", "a.jpg", Status.DONE, size=1),
        mtime_ns=1,
        run_id="r",
        group="g",
    )
    ledger.flush()
    assert ledger.lookup("b", ["a.jpg"])["a.jpg"].status == Status.DONE
    ledger.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT grp, ext FROM items").fetchone() == ("g", "jpg")


def test_a_postgres_ledger_from_before_stores_gains_the_column(pg_schema_url: str) -> None:
    """An existing shared ledger gets ``items.store`` on its next open; its old rows have
    none (taken as the next run's store), new rows name theirs."""
    import psycopg

    ledger = open_ledger(pg_schema_url)
    ledger.record(
        UploadResult(Path("/x/old.jpg"), "b", "old.jpg", Status.DONE, size=1),
        mtime_ns=1,
        run_id="r",
    )
    ledger.close()
    with psycopg.connect(pg_schema_url) as conn:  # as an older s3stow made it
        conn.execute("ALTER TABLE items DROP COLUMN store")
    ledger = open_ledger(pg_schema_url)
    ledger.record(
        UploadResult(Path("/x/new.jpg"), "b", "new.jpg", Status.DONE, size=1),
        mtime_ns=1,
        run_id="r2",
        store="http://127.0.0.1:9000",
    )
    ledger.flush()
    found = ledger.lookup("b", ["old.jpg", "new.jpg"])
    assert {k: e.store for k, e in found.items()} == {
        "old.jpg": None,
        "new.jpg": "http://127.0.0.1:9000",
    }
    ledger.close()


def test_no_secret_reaches_the_runs_settings(
    cli, bucket, pg_schema_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A database password in the ledger URL and credentials in the endpoint URL are
    redacted in ``runs.settings`` (``retry`` reads it back) and the job's settings."""
    make_tree(tmp_path / "src", {"a.txt": 5})
    secret_url = pg_schema_url.replace("postgres@", "postgres:hunter2secret@", 1)  # trust auth
    endpoint = cli.endpoint.replace("http://", "http://testing:topsecretkey@", 1)
    args = ("--endpoint-url", endpoint, "upload", "src", f"s3://{bucket}/p", "--ledger", secret_url)
    done = cli(*args)
    assert done.code == 0, done.output
    job = cli("--endpoint-url", endpoint, "job", "plan", "src", f"s3://{bucket}/j", "--job", "j1",
              "--ledger", secret_url)  # fmt: skip
    assert job.code == 0, job.output
    with psycopg.connect(pg_schema_url) as conn:
        stored = [r[0] for r in conn.execute("SELECT settings FROM runs").fetchall()]
        stored += [r[0] for r in conn.execute("SELECT settings FROM jobs").fetchall()]
    assert len(stored) == 2
    for settings in stored:
        assert "hunter2secret" not in settings
        assert "topsecretkey" not in settings


def test_retry_does_not_take_back_a_redacted_value(tmp_path: Path) -> None:
    from s3stow.config import load_settings
    from s3stow.errors import ConfigError
    from s3stow.plan.retries import run_settings

    stored = json.dumps(
        {
            "endpoint_url": "http://user:***@127.0.0.1:9000",
            "ledger": "postgresql://postgres:***@db/ledger",
            "concurrency": 7,
        }
    )
    base = load_settings(env={}, flags={"ledger": "postgresql://postgres:real@db/ledger"})
    with pytest.raises(ConfigError, match="give --endpoint-url again"):
        run_settings(stored, base=base, overrides={})
    again = run_settings(stored, base=base, overrides={"endpoint_url": "http://127.0.0.1:9000"})
    assert again.endpoint_url == "http://127.0.0.1:9000"
    assert again.ledger == "postgresql://postgres:real@db/ledger"  # this command's own
    assert again.concurrency == 7  # what the run used


def test_a_password_typed_unencoded_reaches_no_output_nor_the_ledger(
    cli, bucket, pg_schema_url: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """A base64 password (``/``, ``+``, ``=``) typed into the URL unencoded, as
    SQLAlchemy takes it: the URL pattern stopped at the ``/`` and let it through, into
    ``runs.settings`` and a failed open's message."""
    make_tree(tmp_path / "src", {"a.txt": 5})
    password = "hun/ter2+pw="
    secret_url = pg_schema_url.replace("postgres@", f"postgres:{password}@", 1)  # trust auth
    done = cli("--json", "upload", "src", f"s3://{bucket}/p", "--ledger", secret_url)
    assert done.code == 0, done.output
    assert password not in done.output
    with psycopg.connect(pg_schema_url) as conn:
        stored = [r[0] for r in conn.execute("SELECT settings FROM runs").fetchall()]
    assert len(stored) == 1
    assert password not in stored[0]
    assert "postgres:***@" in stored[0]
    for user in ("postgres", ""):  # an empty user too: the pattern wanted one
        unreachable = f"postgresql://{user}:{password}@127.0.0.1:1/nothing"
        failed = cli("upload", "src", f"s3://{bucket}/q", "--ledger", unreachable)
        assert failed.code == 3, failed.output
        shown = f"cannot open the ledger postgresql://{user}:***@127.0.0.1:1/nothing"
        assert shown in failed.output
        assert password not in failed.output
