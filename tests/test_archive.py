"""``s3stow archive``: the seed's media archive, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from s3stow.archive.demo import init_demo
from s3stow.archive.table import MediaTable
from tests.conftest import ledger_rows

DEMO_MISSING = {"med-0007", "med-0027", "med-0047"}


def _rows(db: Path) -> dict[str, str | None]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT media_id, archive_url FROM post_media"))


def _demo(tmp_path: Path) -> tuple[Path, Path]:
    db, root = tmp_path / "demo.db", tmp_path / "cache" / "media"
    init_demo(db, root)
    return db, root


@pytest.mark.engines
def test_demo_archives_fully_and_second_run_uploads_nothing(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    db, root = _demo(tmp_path)
    args = (
        "archive",
        "run",
        f"s3://{bucket}",
        "--db",
        str(db),
        "--media-root",
        str(root),
        "--ledger",
        "l.db",
        "--batch-size",
        "20",
    )
    first = proxied_cli("--json", *args)
    assert first.code == 1  # three rows have no file
    report = json.loads(first.stdout.splitlines()[-1])
    assert report["archive_urls_written"] == 57
    assert report["transactions"] == 3  # 57 rows in batches of 20
    assert sorted(report["missing_files"]) == sorted(DEMO_MISSING)
    assert report["no_created_at"] == ["med-0011"]
    urls = _rows(db)
    with sqlite3.connect(db) as conn:
        meta = {
            r[0]: r[1:]
            for r in conn.execute("SELECT media_id, md5_sum, mime_type, created_at FROM post_media")
        }
    for media_id, url in urls.items():
        if media_id in DEMO_MISSING:
            assert url is None
            continue
        md5, mime, created = meta[media_id]
        ext = {
            "image/jpeg": "jpg",
            "image/png": "png",
            "video/mp4": "mp4",
            "application/pdf": "pdf",
        }[mime]
        if created:
            assert url == f"s3://{bucket}/cache/{created[:4]}/{created[5:7]}/{md5}.{ext}"
        key = url.split("/", 3)[3]  # type: ignore[union-attr]
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        assert hashlib.md5(body, usedforsecurity=False).hexdigest() == md5
    mismatched = [m for m, (md5, _, _) in meta.items() if m.endswith("3")]  # .bin files
    assert all(not urls[m].endswith(".bin") for m in mismatched)  # type: ignore[union-attr]
    proxy.log.clear()
    second = proxied_cli(*args)
    assert second.code == 1
    assert proxy.requests(r"^(PUT|POST) ") == []


def test_update_lost_after_upload_is_finished_without_reupload(
    proxied_cli,
    proxy,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    db, root = _demo(tmp_path)
    args = (
        "archive",
        "run",
        f"s3://{bucket}",
        "--db",
        str(db),
        "--media-root",
        str(root),
        "--ledger",
        "l.db",
    )
    assert proxied_cli(*args).code == 1
    with sqlite3.connect(db) as conn:  # simulate a crash between upload and UPDATE
        conn.execute("UPDATE post_media SET archive_url = NULL WHERE media_id < 'med-0020'")
    proxy.log.clear()
    again = proxied_cli(*args)
    assert again.code == 1
    assert proxy.requests(r"^(PUT|POST) ") == []
    assert sum(1 for u in _rows(db).values() if u) == 57


def test_kill9_mid_run_leaves_every_row_consistent(
    proxied_cli,
    proxy,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    db, root = _demo(tmp_path)
    proxy.add(r"^PUT ", "delay", times=1000, delay=0.15)
    args = (
        "archive",
        "run",
        f"s3://{bucket}",
        "--db",
        str(db),
        "--media-root",
        str(root),
        "--ledger",
        "l.db",
        "--batch-size",
        "5",
        "--concurrency",
        "2",
    )
    process = proxied_cli.start(*args)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and sum(1 for u in _rows(db).values() if u) < 10:
        time.sleep(0.05)
    process.kill()
    process.wait(10)
    stored = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    archived = {m: u for m, u in _rows(db).items() if u}
    assert 10 <= len(archived) < 57
    for url in archived.values():  # no row points at a missing object
        assert url.split("/", 3)[3] in stored  # type: ignore[union-attr]
    proxy.reset()
    assert proxied_cli(*args).code == 1
    final = _rows(db)
    assert {m for m, u in final.items() if u is None} == DEMO_MISSING
    stored = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert {u.split("/", 3)[3] for u in final.values() if u} == stored  # type: ignore[union-attr]


def test_md5_mismatch_is_never_uploaded(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, root = _demo(tmp_path)
    with sqlite3.connect(db) as conn:
        path = conn.execute(
            "SELECT local_file_path FROM post_media WHERE media_id = 'med-0000'"
        ).fetchone()[0]
    (root / path).write_bytes(b"corrupted cache file")
    result = cli(
        "--json",
        "archive",
        "run",
        f"s3://{bucket}",
        "--db",
        str(db),
        "--media-root",
        str(root),
        "--ledger",
        "l.db",
    )
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["md5_mismatch"] == ["med-0000"]
    assert _rows(db)["med-0000"] is None
    assert len(s3.list_objects_v2(Bucket=bucket)["Contents"]) == 56


def test_column_map_stats_and_verify(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, root = _demo(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE post_media RENAME COLUMN md5_sum TO content_hash")
        conn.execute("ALTER TABLE post_media RENAME COLUMN archive_url TO s3_url")
    mapping = ("--column-map", "md5_sum=content_hash", "--column-map", "archive_url=s3_url")
    stats = cli("--json", "archive", "stats", "--db", str(db), *mapping)
    assert json.loads(stats.stdout)["all"] == {
        "total": 60,
        "archived": 0,
        "not_archived": 60,
        "percent": 0.0,
    }
    run = cli(
        "archive",
        "run",
        f"s3://{bucket}/p",
        "--db",
        str(db),
        "--media-root",
        str(root),
        "--ledger",
        "l.db",
        *mapping,
    )
    assert run.code == 1, run.output
    stats = json.loads(cli("--json", "archive", "stats", "--db", str(db), *mapping).stdout)
    assert stats["all"]["archived"] == 57
    assert stats["image"] == {"total": 30, "archived": 30, "not_archived": 0, "percent": 100.0}
    assert stats["document"]["not_archived"] == 3
    with sqlite3.connect(db) as conn:
        url, path = conn.execute(
            "SELECT s3_url, local_file_path FROM post_media WHERE media_id = 'med-0001'"
        ).fetchone()
    s3.delete_object(Bucket=bucket, Key=url.split("/", 3)[3])
    (root / path).unlink()
    verify = cli(
        "--json",
        "archive",
        "verify",
        "--db",
        str(db),
        "--media-root",
        str(root),
        "--verify-s3",
        "--check-local",
        "--ledger",
        "l.db",
        *mapping,
    )
    assert verify.code == 1
    problems = {(p["id"], p["class"]) for p in json.loads(verify.stdout)["problems"]}
    assert ("med-0001", "missing-in-s3") in problems
    assert ("med-0001", "local-missing") in problems
    assert {i for i, c in problems if c == "local-missing"} == DEMO_MISSING | {"med-0001"}


def test_cleanup_local_deletes_only_archived_files(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, root = _demo(tmp_path)
    before = sum(1 for p in root.rglob("*") if p.is_file())
    result = cli(
        "archive",
        "run",
        f"s3://{bucket}",
        "--db",
        str(db),
        "--media-root",
        str(root),
        "--ledger",
        "l.db",
        "--cleanup-local",
    )
    assert result.code == 2  # needs --yes off a terminal
    result = cli(
        "archive",
        "run",
        f"s3://{bucket}",
        "--db",
        str(db),
        "--media-root",
        str(root),
        "--ledger",
        "l.db",
        "--cleanup-local",
        "--yes",
    )
    assert "57 local files deleted" in result.stdout
    assert before == 57
    assert sum(1 for p in root.rglob("*") if p.is_file()) == 0


def test_where_filters_rows_with_bound_values(cli, s3, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, root = _demo(tmp_path)
    common = ("--db", str(db), "--media-root", str(root), "--ledger", "l.db")
    images = cli(
        "archive", "run", f"s3://{bucket}", *common,
        "--where", "mime_type~image/%", "--where", "media_id!=med-0000",
    )  # fmt: skip
    assert images.code == 0, images.output
    with sqlite3.connect(db) as conn:
        done = dict(
            conn.execute("SELECT media_id, mime_type FROM post_media WHERE archive_url IS NOT NULL")
        )
    assert done
    assert set(done.values()) <= {"image/jpeg", "image/png"}
    assert "med-0000" not in done
    stats = json.loads(
        cli("--json", "archive", "stats", "--db", str(db), "--where", "mime_type=image/png").stdout
    )
    assert set(stats) == {"all", "image"}
    assert stats["all"]["total"] == stats["image"]["total"] > 0
    # A value is data, never SQL: the quote ends up compared, nothing is dropped.
    odd = cli(
        "archive", "stats", "--db", str(db), "--where", "media_id=x'; DROP TABLE post_media; --"
    )
    assert odd.code == 0, odd.output
    assert len(_rows(db)) == 60
    for bad, problem in (
        ("media_type", "is not COLUMN OP VALUE"),
        ("no_such_column=1", "not a column of post_media"),
        ("md5_sum is null x", "nothing may follow"),
    ):
        result = cli("archive", "run", f"s3://{bucket}", *common, "--where", bad)
        assert result.code == 2, result.output
        assert problem in result.stderr
        assert "Traceback" not in result.stderr


def test_empty_paths_and_unusable_demo_paths_are_usage_errors(  # type: ignore[no-untyped-def]
    cli, s3, bucket, tmp_path: Path
) -> None:
    """``--media-root ""`` (an unset variable) meant the current folder: ``archive run``
    looked for the files there, ``init-demo`` wrote its cache there, ``verify`` checked
    there; ``--db ""`` was SQLite's "unable to open database file" (exit 3) or an
    unexpected OperationalError; ``init-demo --db FOLDER`` or a path below a file, an
    unexpected error asking for a report."""
    db, root = _demo(tmp_path)
    (tmp_path / "plain").write_text("a file")
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ("--ledger", "l.db")
    cases = {
        ("run", f"s3://{bucket}", "--db", str(db), *args, "--media-root", ""): "--media-root",
        ("verify", "--db", str(db), *args, "--check-local", "--media-root", " "): "--media-root",
        ("init-demo", "--db", "new.db", "--media-root", ""): "--media-root",
        ("run", f"s3://{bucket}", "--db", "", *args, "--media-root", str(root)): "--db is empty",
        ("stats", "--db", ""): "--db is empty",
        ("init-demo", "--db", ""): "--db is empty",
        ("init-demo", "--db", str(root)): "it is a folder",
        ("init-demo", "--db", "plain/new.db"): "plain is a file, not a folder",
        ("init-demo", "--db", "new.db", "--media-root", "plain/m"): "demo files under plain/m",
    }
    for command, words in cases.items():
        result = cli("archive", *command)
        assert result.code == 2, (command, result.output)
        assert words in result.stderr, (command, result.stderr)
        assert "unexpected" not in result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == before, command
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_bad_table_name_is_refused() -> None:
    with pytest.raises(Exception, match="not a plain table name"):
        MediaTable("x.db", table="post_media; DROP TABLE x")


def test_archive_on_postgres(cli, s3, bucket, tmp_path: Path, postgres_url: str) -> None:  # type: ignore[no-untyped-def]
    db, root = _demo(tmp_path)
    table = f"post_media_{uuid.uuid4().hex[:8]}"
    with sqlite3.connect(db) as src:
        rows: list[Any] = src.execute(
            "SELECT media_id, post_id, media_type, media_url, local_file_path, md5_sum, "
            "file_size, mime_type, created_at FROM post_media"
        ).fetchall()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            f"CREATE TABLE {table} (media_id TEXT PRIMARY KEY, post_id TEXT NOT NULL, "
            "media_type TEXT NOT NULL, media_url TEXT NOT NULL, local_file_path TEXT, "
            "md5_sum TEXT, file_size INTEGER, mime_type TEXT, width INTEGER, height INTEGER, "
            "archive_url TEXT, created_at TIMESTAMP, updated_at TIMESTAMP)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {table} (media_id, post_id, media_type, media_url, "
                "local_file_path, md5_sum, file_size, mime_type, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
    try:
        common = ("--db", postgres_url, "--table", table, "--media-root", str(root))
        recent = cli(
            "archive", "run", f"s3://{bucket}", *common, "--ledger", "l.db",
            "--where", "created_at>=2025-12-01",
        )  # fmt: skip
        assert recent.code == 1, recent.output  # index 47 has no file
        with psycopg.connect(postgres_url) as conn:
            dates = [
                r[0]
                for r in conn.execute(
                    f"SELECT created_at FROM {table} WHERE archive_url IS NOT NULL"
                )
            ]
        assert len(dates) == 28
        assert min(dates).date().isoformat() >= "2025-12-01"
        result = cli(
            "archive",
            "run",
            f"s3://{bucket}",
            "--db",
            postgres_url,
            "--table",
            table,
            "--media-root",
            str(root),
            "--ledger",
            "l.db",
        )
        assert result.code == 1, result.output
        with psycopg.connect(postgres_url) as conn:
            archived = conn.execute(
                f"SELECT media_id, archive_url, md5_sum, created_at FROM "
                f"{table} WHERE archive_url IS NOT NULL"
            ).fetchall()
        assert len(archived) == 57
        for _, url, md5, created in archived:
            if created is not None:
                assert url.startswith(f"s3://{bucket}/cache/{created:%Y}/{created:%m}/{md5}.")
        stats = json.loads(
            cli("--json", "archive", "stats", "--db", postgres_url, "--table", table).stdout
        )
        assert stats["all"]["archived"] == 57
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_archive_restore_rebuilds_the_cache_checked_against_md5(
    cli,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    import shutil

    db, root = _demo(tmp_path)
    args = ("--db", str(db), "--media-root", str(root), "--ledger", "l.db")
    assert cli("archive", "run", f"s3://{bucket}", *args).code == 1  # three rows have no file
    cached = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    shutil.rmtree(root)
    with sqlite3.connect(db) as conn:  # this row's md5_sum no longer matches its object
        conn.execute("UPDATE post_media SET md5_sum = ? WHERE media_id = 'med-0000'", ("0" * 32,))
        tampered = conn.execute(
            "SELECT local_file_path FROM post_media WHERE media_id = 'med-0000'"
        ).fetchone()[0]
    result = cli("--json", "archive", "restore", *args, env={"S3STOW_STATUS_JSON": "st.json"})
    assert result.code == 1
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    # the S3 location read from, as a restore's (it was the media root)
    status = json.loads((tmp_path / "st.json").read_text())
    assert status["target"] == events[0]["target"] == f"s3://{bucket}/"
    assert status["command"] == "archive restore"
    run = events[0]["run_id"]
    assert ledger_rows(tmp_path / "l.db", f"SELECT bucket FROM runs WHERE run_id = '{run}'") == [
        (bucket,)
    ]
    failed = [e for e in events if e.get("event") == "result" and e["status"] != "done"]
    assert [e["error_class"] for e in failed] == ["md5-mismatch"]
    restored = {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert restored == {path: data for path, data in cached.items() if path != Path(tampered)}
    assert events[-1]["restored"] == 56
    again = cli("--json", "archive", "restore", *args)
    summary = json.loads(again.stdout.splitlines()[-1])
    assert (summary["restored"], summary["skipped"], summary["failed"]) == (0, 56, 1)


def test_an_archive_restore_status_file_says_archive_restore(
    cli,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """``archive restore``'s status file said ``"command": "restore"``: ``s3stow status``
    and the page named it a plain restore. It says ``archive restore``, with a restore's
    counters (restored, received)."""
    import shutil

    from s3stow.report.statushtml import render_main

    db, root = _demo(tmp_path)
    args = ("--db", str(db), "--media-root", str(root), "--ledger", "l.db")
    assert cli("archive", "run", f"s3://{bucket}", *args).code == 1  # three rows have no file
    shutil.rmtree(root)
    result = cli("archive", "restore", *args, env={"S3STOW_STATUS_JSON": "st.json"})
    assert result.code == 0, result.output
    status = json.loads((tmp_path / "st.json").read_text())
    assert status["command"] == "archive restore"
    assert (status["phase"], status["totals"]["restored"]) == ("done", 57)
    assert "uploaded" not in status["totals"]
    shown = cli("status", "st.json")
    assert shown.code == 0, shown.output
    assert shown.stdout.startswith("archive restore: done"), shown.stdout
    assert "57 restored" in shown.stdout
    assert "uploaded" not in shown.stdout
    page = render_main(status, path=tmp_path / "st.json")
    assert "s3stow archive restore: done" in page
    assert ">restored<" in page


def test_an_archive_restores_run_id_is_a_restore_for_stats_and_restore(
    cli,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """The ledger names an ``archive restore`` run ``archive-restore``, which ``stats
    --run`` and ``restore --run`` did not know as a restore: ``stats`` showed a table of
    zero uploads (exit 0), ``restore --run`` said the "upload run" left nothing done."""
    import re
    import shutil

    db, root = _demo(tmp_path)
    args = ("--db", str(db), "--media-root", str(root), "--ledger", "l.db")
    assert cli("archive", "run", f"s3://{bucket}", *args).code == 1  # three rows have no file
    shutil.rmtree(root)
    restored = cli("archive", "restore", *args)
    assert restored.code == 0, restored.output
    shown = re.search(r"; run (\S+)$", restored.stdout, re.MULTILINE)
    assert shown is not None, restored.stdout
    run = shown.group(1)
    data = json.loads(cli("--json", "stats", "--run", run, "--ledger", "l.db").stdout)
    assert (data["restores"]["restored"], data["overall"]["items"]) == (57, 0)
    text = cli("stats", "--run", run, "--ledger", "l.db")
    assert f"run {run} is a restore" in text.stdout
    again = cli("restore", "--run", run, "elsewhere", "--ledger", "l.db")
    assert again.code == 2, again.output
    assert f"run {run!r} is a restore" in again.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_archive_says_its_run_id_and_names_every_bucket_it_restores_from(
    cli,
    s3,
    bucket,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """``archive run``'s summary did not say its run id; ``archive restore`` of rows
    pointing at two buckets named only the first as its target (``--json`` start
    event, status file, the ledger's run row)."""
    import re
    import shutil

    from s3stow.ledger import open_ledger
    from s3stow.ledger.queries import recent_runs

    db, root = _demo(tmp_path)
    args = ("--db", str(db), "--media-root", str(root), "--ledger", "l.db")
    archived = cli("archive", "run", f"s3://{bucket}", *args)
    assert archived.code == 1  # three rows have no file
    shown = re.search(r"; run (\S+)$", archived.stdout, re.MULTILINE)
    assert shown is not None, archived.stdout
    assert ledger_rows(
        tmp_path / "l.db", f"SELECT command FROM runs WHERE run_id = '{shown.group(1)}'"
    ) == [("archive",)]
    other = f"{bucket}-b"  # a second bucket the same objects were copied to
    s3.create_bucket(Bucket=other)
    with sqlite3.connect(db) as conn:
        moved = conn.execute(
            "SELECT media_id, archive_url FROM post_media WHERE archive_url IS NOT NULL "
            "ORDER BY media_id LIMIT 2"
        ).fetchall()
        for media_id, url in moved:
            key = url.split("/", 3)[3]
            s3.copy_object(Bucket=other, Key=key, CopySource={"Bucket": bucket, "Key": key})
            conn.execute(
                "UPDATE post_media SET archive_url = ? WHERE media_id = ?",
                (f"s3://{other}/{key}", media_id),
            )
    shutil.rmtree(root)
    env = {"S3STOW_STATUS_JSON": "st.json"}
    result = cli("--json", "archive", "restore", *args, env=env)
    assert result.code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    both = f"s3://{bucket}/, s3://{other}/"
    status = json.loads((tmp_path / "st.json").read_text())
    assert status["target"] == events[0]["target"] == both
    assert events[-1]["restored"] == 57
    run = events[0]["run_id"]
    assert ledger_rows(tmp_path / "l.db", f"SELECT bucket FROM runs WHERE run_id = '{run}'") == [
        (f"{bucket},{other}",)
    ]
    ledger = open_ledger(str(tmp_path / "l.db"))
    try:
        listed = {r["run_id"]: r["target"] for r in recent_runs(ledger)}
    finally:
        ledger.close()
    assert listed[run] == f"s3://{bucket}, s3://{other}"
    again = cli("archive", "restore", *args)  # a human summary says the run id too
    assert again.code == 0, again.output
    assert re.search(r"; run \S+$", again.stdout, re.MULTILINE), again.stdout
    for key in (url.split("/", 3)[3] for _, url in moved):
        s3.delete_object(Bucket=other, Key=key)
    s3.delete_bucket(Bucket=other)


def test_a_mistyped_db_or_media_root_is_a_usage_error_that_creates_nothing(  # type: ignore[no-untyped-def]
    cli, s3, bucket, tmp_path: Path
) -> None:
    """``--db typo.db``: SQLite created an empty file, and the command said "no such
    table: post_media" (exit 3) and left it behind; ``archive run --media-root typo``
    reported every row "without a local file" (exit 1)."""
    db, root = _demo(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    args = ("--ledger", "l.db")
    cases = {
        ("run", f"s3://{bucket}", "--db", "typo.db", *args, "--media-root", str(root)): (
            "no database at --db typo.db"
        ),
        ("stats", "--db", "typo.db"): "no database at --db typo.db",
        ("verify", "--db", "sqlite:///typo.db", *args): "no database at --db sqlite:///typo.db",
        ("restore", "--db", "typo.db", *args, "--media-root", str(root)): "no database at",
        ("run", f"s3://{bucket}", "--db", str(db), *args, "--media-root", "typo"): (
            "--media-root typo is not a folder (it does not exist)"
        ),
        ("run", f"s3://{bucket}", "--db", str(db), *args, "--media-root", str(db)): (
            "is not a folder"
        ),
    }
    for command, words in cases.items():
        result = cli("archive", *command)
        assert result.code == 2, (command, result.output)
        assert words in result.stderr, (command, result.stderr)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, command
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
