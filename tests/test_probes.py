"""Server behaviour probes (issue 21 part 2, issue 19's backslash on SeaweedFS).

On each server, against the real thing: SeaweedFS refuses a wrong checksum, so under
``etag_check: auto`` no MD5 is computed (no ``Content-MD5`` on the wire); moto stores
it, so the ETag check stays. The answer is cached in the ledger (a second run sends
no probe) for a day; ``etag_check: on|off`` (``S3STOW_ETAG_CHECK``) wins without a
probe; a dry run never probes; a refused probe keeps the check. SeaweedFS stores a
key's ``\\`` as ``/``: such keys are folded before they are claimed, so a file
``back\\slash.txt`` never overwrites the verified object of ``back/slash.txt`` and
verify agrees with the server.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from s3stow.config import Settings
from s3stow.ledger import open_ledger
from s3stow.ledger import probes as cache
from s3stow.models import PlannedUpload, SourceFile
from s3stow.plan.collisions import KeyClaims
from s3stow.store.base import ObjectInfo, ObjectStore, PutResult
from s3stow.transfer.probes import ServerProbes
from tests.conftest import FIVE_MIB_PARTS, make_tree

MiB = 1024 * 1024
PROBE = r"^PUT .*/\.s3stow-probe/"
AUTO = {"S3STOW_ETAG_CHECK": "auto"}  # proxied_cli pins the check on: these tests probe
POSIX_ONLY = pytest.mark.skipif(os.name == "nt", reason="a backslash is a separator on Windows")


def _probes(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT name, result FROM probes").fetchall())


def _md5_headers(proxy: Any) -> list[str | None]:
    """The Content-MD5 of every data PUT (objects and parts, not the probe)."""
    return [
        headers.get("content-md5")
        for line, headers in zip(proxy.log, proxy.headers, strict=True)
        if line.startswith("PUT /") and "/p/" in line and ".s3stow-probe" not in line
    ]


def _keys(s3: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]


@pytest.mark.engines
def test_the_etag_check_follows_the_servers_checksum_validation(
    proxied_cli, proxy, s3, bucket, engine: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """One probe per endpoint and bucket, cleaned up; SeaweedFS: no MD5 anywhere (not
    for single PUTs, not for parts); moto: every body carries one. The next run
    reuses the ledger's answer and sends no probe."""
    make_tree(tmp_path / "src", {"a.bin": 3000, "b.bin": 2 * MiB, "big.bin": 11 * MiB})
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", *FIVE_MIB_PARTS)
    first = proxied_cli(*args, env=AUTO)
    assert first.code == 0, first.output
    validates = engine == "seaweedfs"
    assert len(proxy.requests(PROBE)) == 1
    assert _probes(tmp_path / "l.db") == {
        "checksum-validation": "validates" if validates else "stores"
    }
    md5s = _md5_headers(proxy)
    assert len(md5s) == 5  # a.bin, b.bin, three parts of big.bin
    assert all((md5 is None) is validates for md5 in md5s), md5s
    assert not [k for k in _keys(s3, bucket) if ".s3stow-probe" in k]  # cleaned up
    assert "transient" not in first.stdout  # a refused probe is no server fault

    make_tree(tmp_path / "src", {"c.bin": 4000}, seed=2)
    proxy.reset()
    second = proxied_cli(*args, env=AUTO)
    assert second.code == 0, second.output
    assert proxy.requests(PROBE) == []
    assert [md5 is None for md5 in _md5_headers(proxy)] == [validates]


@pytest.mark.engines
def test_a_probe_answer_older_than_a_day_is_asked_again(
    proxied_cli, proxy, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.bin": 3000})
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    assert proxied_cli(*args, env=AUTO).code == 0
    with sqlite3.connect(tmp_path / "l.db") as conn:
        conn.execute("UPDATE probes SET probed_at = probed_at - :age", {"age": cache.MAX_AGE + 1})
    make_tree(tmp_path / "src", {"b.bin": 3000}, seed=2)
    proxy.reset()
    assert proxied_cli(*args, env=AUTO).code == 0
    assert len(proxy.requests(PROBE)) == 1
    with sqlite3.connect(tmp_path / "l.db") as conn:
        (probed_at,) = conn.execute("SELECT probed_at FROM probes").fetchone()
    assert time.time() - probed_at < cache.MAX_AGE


@pytest.mark.engines
def test_an_endpoint_from_aws_endpoint_url_is_probed_like_a_flag(
    proxied_cli, proxy, bucket, engine: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Users name their server with the standard variable, not the flag: the probe and
    what follows from it are the same (the store asks botocore which endpoint it uses)."""
    make_tree(tmp_path / "src", {"a.bin": 3000})
    env = proxied_cli.env({**AUTO, "AWS_ENDPOINT_URL": proxied_cli.endpoint})
    command = [sys.executable, "-m", "s3stow", "upload", "src", f"s3://{bucket}/p"]
    done = subprocess.run(
        [*command, "--ledger", "l.db"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(proxy.requests(PROBE)) == 1
    validates = engine == "seaweedfs"
    assert _probes(tmp_path / "l.db") == {
        "checksum-validation": "validates" if validates else "stores"
    }
    assert [md5 is None for md5 in _md5_headers(proxy)] == [validates]


@pytest.mark.engines
@pytest.mark.parametrize("setting", ["on", "off"])
@pytest.mark.parametrize("via", ["environment", "flag"])
def test_an_explicit_etag_check_wins_and_sends_no_probe(
    proxied_cli, proxy, bucket, tmp_path: Path, setting: str, via: str
) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.bin": 3000, "b.bin": 2 * MiB})
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db")
    if via == "flag":  # the flag wins over the environment's auto
        result = proxied_cli(*args, "--etag-check", setting, env=AUTO)
    else:
        result = proxied_cli(*args, env={"S3STOW_ETAG_CHECK": setting})
    assert result.code == 0, result.output
    assert proxy.requests(PROBE) == []
    assert [md5 is not None for md5 in _md5_headers(proxy)] == [setting == "on"] * 2
    assert _probes(tmp_path / "l.db") == {}


def test_a_dry_run_never_probes(proxied_cli, proxy, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "src", {"a.bin": 3000, "back\\slash.bin": 10})
    args = ("upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", "--dry-run")
    result = proxied_cli(*args, env=AUTO)
    assert result.code == 0, result.output
    assert proxy.requests(r"^(PUT|POST|DELETE) ") == []


def test_a_refused_probe_keeps_the_check_and_fails_nothing(
    proxied_cli, proxy, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """No write permission for the probe (403): the ETag check stays on, nothing is
    cached (the next run asks again), and the run itself is not affected."""
    make_tree(tmp_path / "src", {"a.bin": 3000})
    proxy.add(PROBE, "status", status=403, code="AccessDenied", times=10)
    result = proxied_cli("-v", "upload", "src", f"s3://{bucket}/p", "--ledger", "l.db", env=AUTO)
    assert result.code == 0, result.output
    assert len(proxy.requests(PROBE)) == 1
    assert _md5_headers(proxy) != [None]
    assert _probes(tmp_path / "l.db") == {}
    assert "AccessDenied" not in result.output  # reported at debug level only


def test_a_key_without_a_backslash_sends_no_backslash_probe(cli, bucket, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    make_tree(tmp_path / "t", {"plain.txt": b"x"})
    assert cli("upload", "t", f"s3://{bucket}/c", "--ledger", "l.db").code == 0
    assert "backslash-keys" not in _probes(tmp_path / "l.db")


@POSIX_ONLY
@pytest.mark.engines
def test_a_backslash_key_collides_where_the_server_folds_it(
    cli, s3, bucket, engine: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """SeaweedFS stores ``back\\slash.txt`` as ``back/slash.txt``: the second file is
    refused naming the server's behaviour and the verified object stays; moto keeps
    both keys apart, so both files are uploaded."""
    make_tree(tmp_path / "t", {"back/slash.txt": b"REAL"})
    args = ("upload", "t", f"s3://{bucket}/c", "--ledger", "l.db")
    assert cli(*args).code == 0
    (tmp_path / "t" / "back\\slash.txt").write_bytes(b"OTHER")
    again = cli(*args)
    body = s3.get_object(Bucket=bucket, Key="c/back/slash.txt")["Body"].read()
    assert body == b"REAL"
    folds = engine == "seaweedfs"
    assert _probes(tmp_path / "l.db")["backslash-keys"] == ("folds" if folds else "keeps")
    if folds:
        assert again.code == 1, again.output
        assert "KeyCollision" in again.stdout
        assert "stores '\\' in keys as '/'" in again.stdout
        assert _keys(s3, bucket) == ["c/back/slash.txt"]
    else:
        assert again.code == 0, again.output
        assert sorted(_keys(s3, bucket)) == ["c/back/slash.txt", "c/back\\slash.txt"]
    # verify agrees: the refused file is not in S3 (named, exit 1), the verified one is
    verify = cli("--json", "verify", "t", f"s3://{bucket}/c", "--ledger", "l.db")
    classes = {f["path"]: f["class"] for f in json.loads(verify.stdout)["findings"]}
    refused = {"not-uploadable"} if folds else {"ok"}
    assert classes[str(Path("t") / "back" / "slash.txt")] == "ok", verify.output
    assert {classes[str(Path("t") / "back\\slash.txt")]} == refused, verify.output
    assert (verify.code, len(classes)) == ((1 if folds else 0), 2), verify.output


@POSIX_ONLY
@pytest.mark.engines
def test_a_backslash_key_is_recorded_as_the_server_stores_it(
    cli, s3, bucket, engine: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Alone, ``back\\slash.txt`` is uploaded; on SeaweedFS under the key it really
    gets, so the ledger, a re-run and verify agree with the listing."""
    make_tree(tmp_path / "t", {"back\\slash.txt": b"ONLY"})
    args = ("upload", "t", f"s3://{bucket}/c", "--ledger", "l.db")
    first = cli(*args)
    assert first.code == 0, first.output
    key = "c/back/slash.txt" if engine == "seaweedfs" else "c/back\\slash.txt"
    assert _keys(s3, bucket) == [key]
    with sqlite3.connect(tmp_path / "l.db") as conn:
        recorded = conn.execute("SELECT key, status FROM items").fetchall()
    assert recorded == [(key, "done")]
    again = cli(*args)
    assert again.code == 0, again.output
    assert "0 uploaded" in again.stdout
    verify = cli("verify", "t", f"s3://{bucket}/c", "--ledger", "l.db")
    assert verify.code == 0, verify.output
    assert "1 ok" in verify.stdout


# ---- the cache ----------------------------------------------------------------------


def _cache_round_trip(target: str) -> None:
    ledger = open_ledger(target)
    try:
        name = "checksum-validation"
        assert cache.cached(ledger, "http://e", "b", name) is None
        cache.remember(ledger, "http://e", "b", name, "stores", now=1000.0)
        cache.remember(ledger, "http://e", "b", name, "validates", now=2000.0)  # replaces
        assert cache.cached(ledger, "http://e", "b", name, now=2000.0 + 60) == "validates"
        assert cache.cached(ledger, "http://e", "other", name, now=2000.0) is None
        assert cache.cached(ledger, "http://f", "b", name, now=2000.0) is None
        expired = 2000.0 + cache.MAX_AGE + 1
        assert cache.cached(ledger, "http://e", "b", name, now=expired) is None
    finally:
        ledger.close()


def test_the_probe_cache_on_sqlite_and_an_older_ledger_gains_the_table(tmp_path: Path) -> None:
    db = tmp_path / "l.db"
    open_ledger(str(db)).close()
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE probes")  # a ledger from before the probes
    _cache_round_trip(str(db))


@pytest.mark.postgres
def test_the_probe_cache_on_postgresql(pg_schema_url: str) -> None:
    _cache_round_trip(pg_schema_url)


@pytest.mark.engines
def test_doctor_reports_the_servers_behaviour(cli, s3, bucket, engine: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("--json", "doctor", f"s3://{bucket}/jobs")
    assert result.code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)["checks"]}
    seaweed = engine == "seaweedfs"
    validation = checks["checksum validation"]
    assert validation["status"] == "OK"
    assert ("refused (BadDigest)" in validation["detail"]) is seaweed
    assert ("no MD5" in validation["detail"]) is seaweed
    backslash = checks["backslash in keys"]
    assert backslash["status"] == "OK"
    assert ("stored as '/'" in backslash["detail"]) is seaweed
    assert _keys(s3, bucket) == []  # every probe object removed


class _OwnStore(ObjectStore):
    """An embedder's own store (not botocore's), that stores a key's ``\\`` as ``/``
    the way SeaweedFS does: only what the backslash probe sends is implemented."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def custom_endpoint(self) -> bool:
        return True

    def put_object(self, bucket: str, key: str, body: Any, **_: Any) -> PutResult:
        self.keys.add(key.replace("\\", "/"))
        return PutResult(etag='"e"')

    def list_objects(self, bucket: str, prefix: str) -> Iterator[ObjectInfo]:
        return iter([ObjectInfo(k, 1, '"e"') for k in sorted(self.keys) if k.startswith(prefix)])

    def delete_object(self, bucket: str, key: str) -> None:
        self.keys.discard(key)


def test_an_embedders_own_store_that_folds_backslashes_is_named_this_server(
    tmp_path: Path,
) -> None:
    """A store with no botocore endpoint is probed all the same, and the messages of its
    folded keys call it "this server" (there is no endpoint to name)."""
    store = _OwnStore()
    probes = ServerProbes(Settings(), store=store, ledger=None)
    (tmp_path / "f").write_bytes(b"x")
    source = SourceFile(tmp_path / "f", "f", 1, 0, tmp_path)
    batch = [PlannedUpload(source, "bucket", key) for key in ("a\\b.txt", "trailing\\")]
    kept, refused = probes.fold_keys(batch, KeyClaims())
    assert probes.sent == 1
    assert store.keys == set()  # the probe object removed
    assert [item.key for item in kept] == ["a/b.txt"]
    assert len(refused) == 1
    assert refused[0].reason.startswith(
        "key 'trailing\\\\' would be stored as 'trailing/'"
        " (this server stores '\\' in keys as '/'): "
    )
