"""A timeline of one s3stow upload over an added round trip: what waits on what.

Starts a SeaweedFS server and ``bench/delay_proxy.py`` at ``--latency-ms``, then runs
``python -m s3stow upload`` on the small dataset (bench/latency_bench.py's) in a child
process with trace hooks installed (this file again, ``--child``): every store call
(HeadBucket, ListObjectsV2 page, PutObject, DeleteObject ...) with its start and end
relative to the child's start, the thread, the key's kind (a file's or a probe's),
whether it went through botocore or the fast path, the requests in flight and the
limiter's limit when it started; the milestones of start-up (ledger open, the first
planned batch, the compare stage, the client's creation, the probe's answer, the
first submit), the learning gate's waits, fast-path connections opened, and the end
(the last answer, the ledger's last flush, exit). Nothing in ``src/`` changes: the
hooks wrap functions as their modules are imported (a post-import hook on
``sys.meta_path``), in the child only, so the child's timings are a little above an
untraced run's.

    PYTHONPATH=src python bench/trace_upload.py [--latency-ms 50] [--files 2000]
        [--json trace.json] [--runs 1] [-- EXTRA UPLOAD ARGS]

Prints, per run: the milestones, time to the first PutObject of a file and what was
on the critical path before it, how the limit and the requests in flight climbed
(per 100 ms), and the tail (from the last PutObject's start to exit).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import importlib.abc
import importlib.machinery
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EVENTS: list[dict[str, Any]] = []
T0 = [0.0]  # the child's start (time.time() of the parent's spawn, passed in)
STATE: dict[str, Any] = {"inflight": 0, "limiter": None}
LOCK = threading.Lock()


def _now() -> float:
    return time.time() - T0[0]


def _mark(what: str, **fields: Any) -> None:
    EVENTS.append({"t": _now(), "what": what, "thread": threading.current_thread().name, **fields})


def _limit() -> int | None:
    limiter = STATE["limiter"]
    return int(limiter.limit) if limiter is not None else None


def _kind(key: object) -> str:
    return "probe" if isinstance(key, str) and ".s3stow-probe/" in key else "file"


def _request(operation: str, call: Callable[[], Any], key: object = None) -> Any:
    with LOCK:
        STATE["inflight"] += 1
        inflight = STATE["inflight"]
    start = _now()
    error = None
    try:
        return call()
    except BaseException as exc:
        error = getattr(exc, "code", None) or type(exc).__name__
        raise
    finally:
        with LOCK:
            STATE["inflight"] -= 1
        EVENTS.append(
            {
                "t": start,
                "end": _now(),
                "what": "request",
                "op": operation,
                "kind": _kind(key),
                "thread": threading.current_thread().name,
                "inflight": inflight,
                "limit": _limit(),
                "error": error,
                "botocore": getattr(_VIA, "botocore", False),
            }
        )
        _VIA.botocore = False


_VIA = threading.local()  # set when a request went through botocore


def _wrap_method(cls: type, name: str, operation: str, key_arg: int | None = None) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        key = args[key_arg] if key_arg is not None and len(args) > key_arg else None
        return _request(operation, lambda: original(self, *args, **kwargs), key)

    setattr(cls, name, wrapper)


def _span(module: Any, name: str, what: str) -> None:
    """Mark the start and end of ``module.name`` (a function or a method)."""
    owner, _, attr = name.rpartition(".")
    target = getattr(module, owner) if owner else module
    original = getattr(target, attr)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _mark(what + " start")
        try:
            return original(*args, **kwargs)
        finally:
            _mark(what + " end")

    setattr(target, attr, wrapper)


def _hook_s3(module: Any) -> None:
    cls = module.S3Store
    _wrap_method(cls, "head_bucket", "HeadBucket")
    _wrap_method(cls, "put_object", "PutObject", key_arg=1)
    _wrap_method(cls, "delete_object", "DeleteObject", key_arg=1)
    _wrap_method(cls, "head_object", "HeadObject", key_arg=1)
    _wrap_method(cls, "upload_part", "UploadPart", key_arg=1)
    _wrap_method(cls, "create_multipart", "CreateMultipartUpload", key_arg=1)
    _wrap_method(cls, "complete_multipart", "CompleteMultipartUpload", key_arg=1)
    original_page = cls._list_page

    def list_page(self: Any, bucket: str, prefix: str, token: Any, **kw: Any) -> Any:
        return _request("ListObjectsV2", lambda: original_page(self, bucket, prefix, token, **kw))

    cls._list_page = list_page
    original_through = cls.through_botocore

    def through(self: Any, *args: Any, **kwargs: Any) -> Any:
        _VIA.botocore = True
        return original_through(self, *args, **kwargs)

    cls.through_botocore = through


def _hook_fastpath(module: Any) -> None:
    cls = module.FastPath
    original_page = cls.list_page

    def list_page(self: Any, bucket: str, prefix: str, token: Any, **kw: Any) -> Any:
        return _request("ListObjectsV2", lambda: original_page(self, bucket, prefix, token, **kw))

    cls.list_page = list_page
    original_conn = cls._connection_to

    def connection_to(self: Any, template: Any) -> Any:
        sock, reused = original_conn(self, template)
        if not reused:
            _mark("fast-path connection opened")
        return sock, reused

    cls._connection_to = connection_to


def _hook_gate(module: Any) -> None:
    cls = module.LearningGate
    original = cls.first

    @contextmanager
    def first(self: Any, shape: Any, settled: Any, **kw: Any) -> Iterator[bool]:
        start = _now()
        with original(self, shape, settled, **kw) as learner:
            if not learner:
                _mark("gate waited", waited=_now() - start, op=str(shape[1]))
            else:
                _mark("gate learner", op=str(shape[1]))
            yield learner

    cls.first = first


def _hook_limits(module: Any) -> None:
    cls = module.RequestLimiter
    original = cls.__init__

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if STATE["limiter"] is None and type(self) is cls:
            STATE["limiter"] = self

    cls.__init__ = init


def _hook_urllib3(module: Any) -> None:
    original = module.create_connection

    def create_connection(*args: Any, **kwargs: Any) -> Any:
        _mark("botocore connection opened")
        return original(*args, **kwargs)

    module.create_connection = create_connection


def _hook_ahead(module: Any) -> None:
    cls = module.RunAhead
    original = cls.__iter__

    def iterate(self: Any) -> Iterator[Any]:
        for index, batch in enumerate(original(self)):
            _mark("batch planned", index=index, size=len(batch))
            yield batch

    cls.__iter__ = iterate


def _hook_pipeline(module: Any) -> None:
    cls = module.UploadPipeline
    _span(module, "UploadPipeline._run", "run")
    _span(module, "UploadPipeline._check_bucket", "check bucket")
    _span(module, "decide", "decide")
    original_submit = module.FileThreads.submit
    count = [0]

    def submit(self: Any, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        if count[0] == 1:
            _mark("first submit")
        return original_submit(self, *args, **kwargs)

    module.FileThreads.submit = submit
    del cls


HOOKS: dict[str, Callable[[Any], None]] = {
    "s3stow.store.s3": _hook_s3,
    "s3stow.store.fastpath": _hook_fastpath,
    "s3stow.store.learngate": _hook_gate,
    "s3stow.transfer.limits": _hook_limits,
    "urllib3.util.connection": _hook_urllib3,
    "s3stow.plan.ahead": _hook_ahead,
    "s3stow.transfer.pipeline": _hook_pipeline,
    "s3stow.store.client": lambda m: _span(m, "make_client", "botocore client"),
    "s3stow.ledger.opening": lambda m: _span(m, "open_ledger", "ledger open"),
    "s3stow.transfer.probes": lambda m: _span(m, "ServerProbes.answer", "probe answer"),
    "s3stow.plan.compare": lambda m: _span(m, "RemoteIndex.get", "remote get"),
    "s3stow.cli.app": lambda m: _mark("cli imported"),
}


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``HOOKS[name]`` on a module right after it is executed."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in HOOKS:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module  # type: ignore[union-attr]

        def exec_module(module: Any) -> None:
            original(module)
            HOOKS[name](module)

        loader.exec_module = exec_module  # type: ignore[union-attr]
        return spec


def child(trace: Path, started: float, argv: list[str]) -> None:
    T0[0] = started
    _mark("child python up")
    sys.meta_path.insert(0, _AfterImport())

    def dump() -> None:
        _mark("exit")
        trace.write_text(json.dumps(EVENTS))

    atexit.register(dump)
    sys.argv = ["s3stow", *argv]
    import runpy

    runpy.run_module("s3stow", run_name="__main__", alter_sys=True)


# ---- the parent: server, proxy, run, report ----------------------------------------------
def report(events: list[dict[str, Any]], wall: float) -> None:
    requests = sorted((e for e in events if e["what"] == "request"), key=lambda e: e["t"])
    marks = sorted((e for e in events if e["what"] != "request"), key=lambda e: e["t"])
    first_put = next((r for r in requests if r["op"] == "PutObject" and r["kind"] == "file"), None)
    print(f"wall (parent) {wall * 1000:.0f} ms; {len(requests)} requests")
    print("milestones (ms from spawn):")
    seen: set[str] = set()
    for m in marks:
        name = m["what"]
        once = name in ("gate waited", "fast-path connection opened", "botocore connection opened")
        if once and name in seen:
            continue
        seen.add(name)
        if name.startswith(("decide", "remote get", "probe answer", "check bucket")):
            key = name
            if sum(1 for x in marks if x["what"] == key) > 1 and key + "#" in seen:
                continue
            seen.add(key + "#")
        extra = {k: v for k, v in m.items() if k not in ("t", "what")}
        print(f"  {m['t'] * 1000:7.0f}  {name}  {extra}")
    print("requests before the first file's PutObject ended, and the first 20 PUTs:")
    shown = 0
    for r in requests:
        if first_put is not None and r["t"] > first_put["end"] and shown >= 20:
            break
        if r["op"] == "PutObject" and r["kind"] == "file":
            shown += 1
        via = "botocore" if r["botocore"] else "fast"
        print(
            f"  {r['t'] * 1000:7.0f}-{r['end'] * 1000:7.0f} {r['op']:<14} {r['kind']:<5} {via:<8} "
            f"{r['thread']:<14} inflight {r['inflight']:>3} limit {r['limit']} {r['error'] or ''}"
        )
    puts = [r for r in requests if r["op"] == "PutObject" and r["kind"] == "file"]
    if not puts:
        return
    waits = [m for m in marks if m["what"] == "gate waited"]
    conns = [m for m in marks if m["what"] == "fast-path connection opened"]
    longest = max((w["waited"] for w in waits), default=0) * 1000
    print(
        f"gate waits {len(waits)} (longest {longest:.0f}"
        f" ms); fast-path connections {len(conns)}; botocore requests "
        f"{sum(r['botocore'] for r in requests)}"
    )
    print("per 100 ms: PUTs ended, max in flight, limit (from the first PUT's start):")
    start = puts[0]["t"]
    end = max(r["end"] for r in puts)
    step = 0.1
    t = start - (start % step)
    line = []
    while t < end:
        done = sum(1 for r in puts if t <= r["end"] < t + step)
        inflight = max((r["inflight"] for r in puts if t <= r["t"] < t + step), default=0)
        limits = [r["limit"] for r in puts if t <= r["t"] < t + step and r["limit"]]
        line.append(f"{t * 1000:.0f}:{done}/{inflight}/{max(limits) if limits else '-'}")
        t += step
    for i in range(0, len(line), 8):
        print("  " + "  ".join(line[i : i + 8]))
    last_start = max(r["t"] for r in puts)
    exit_t = next((m["t"] for m in reversed(marks) if m["what"] == "exit"), end)
    lat = sorted(r["end"] - r["t"] for r in puts)
    print(
        f"first file PUT start {start * 1000:.0f} ms; last PUT start {last_start * 1000:.0f}, "
        f"last end {end * 1000:.0f}, run end {exit_t * 1000:.0f}, process end {wall * 1000:.0f}; "
        f"PUT latency min/median/p90 {lat[0] * 1000:.0f}/{lat[len(lat) // 2] * 1000:.0f}/"
        f"{lat[int(len(lat) * 0.9)] * 1000:.0f} ms"
    )


def brief(label: str, events: list[dict[str, Any]], wall: float) -> str:
    """One line: when the first file's PUT started, when the 16th, the 1,000th and the
    last ended, the run's end and the process's (ms from spawn)."""
    ends = sorted(
        e["end"] for e in events if e.get("op") == "PutObject" and e.get("kind") == "file"
    )
    starts = [e["t"] for e in events if e.get("op") == "PutObject" and e.get("kind") == "file"]
    exit_t = next((e["t"] for e in reversed(events) if e["what"] == "exit"), 0.0)

    def at(n: int) -> str:
        return f"{ends[n - 1] * 1000:.0f}" if len(ends) >= n else "-"

    return (
        f"{label:>8}: first PUT start {min(starts) * 1000:.0f}, 16th end {at(16)}, "
        f"1000th end {at(1000)}, last end {at(len(ends))}, exit {exit_t * 1000:.0f}, "
        f"wall {wall * 1000:.0f} ms"
    )


def arguments(doc: str, *, command: str, latency_help: str | None = None) -> argparse.Namespace:
    """The command line of a trace script (this one's and ``trace_restore.py``'s)."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--latency-ms", type=float, default=50.0, help=latency_help)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", type=Path, help="write the last run's events here")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="LABEL=SRC: also run the child with PYTHONPATH=SRC, alternating with this "
        "tree's; then one line per run (--brief) instead of the timeline",
    )
    parser.add_argument("--brief", action="store_true", help="one line per run")
    parser.add_argument("extra", nargs="*", help=f"more {command} arguments (after --)")
    return parser.parse_args()


def bench_bucket(endpoint_url: str, env: dict[str, str]) -> Any:
    """A boto3 client of the bench server, its bucket ``bench`` created."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )
    s3.create_bucket(Bucket="bench")
    return s3


def rounds(runs: int, variants: list[str]) -> list[tuple[str, str]]:
    """``(label, PYTHONPATH)`` per run: this tree and each ``LABEL=SRC``, alternating."""
    trees = [("this", os.environ.get("PYTHONPATH", ""))]
    trees += [tuple(v.split("=", 1)) for v in variants]  # type: ignore[misc]
    return [pair for run in range(runs) for pair in (trees if run % 2 == 0 else trees[::-1])]


def traced_run(
    script: str, trace: Path, argv: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], float, float]:
    """Run ``script --child`` (s3stow with the hooks) writing ``trace``: the finished
    process, its wall time and the load average before it."""
    load = os.getloadavg()[0]
    started = time.time()
    done = subprocess.run(
        [sys.executable, script, "--child", str(trace), str(started), *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return done, time.time() - started, load


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4:])
        return
    args = arguments(__doc__, command="upload")
    sys.path.insert(0, str(HERE))
    from latency_bench import ENV, dataset, start_proxy
    from s3stow.devserver.seaweedfs import SeaweedServer

    src = dataset(args.files, args.size)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "src")], check=True)
    server = SeaweedServer(env=ENV)
    server.start()
    work = Path(tempfile.mkdtemp(prefix="trace-upload-"))
    try:
        s3 = bench_bucket(server.endpoint_url, ENV)
        s3.put_object(Bucket="bench", Key="warm-up", Body=b"x")
        for run, (label, path) in enumerate(rounds(args.runs, args.variant)):
            proxy, endpoint = start_proxy(server.port, args.latency_ms)
            trace = work / f"trace-{run}.json"  # a prefix and ledger of its own per run
            argv = [
                *("-q", "--json", "--endpoint-url", endpoint, "upload", str(src)),
                *(f"s3://bench/trace-{run}", "--ledger", str(work / f"l{run}.db"), *args.extra),
            ]
            env = {**os.environ, **ENV, "PYTHONPATH": path}
            done, wall, load = traced_run(__file__, trace, argv, env)
            proxy.kill()
            proxy.wait()
            show(args, run, label, done, json.loads(trace.read_text()), wall, load)
    finally:
        server.stop()


def show(
    args: argparse.Namespace,
    run: int,
    label: str,
    done: subprocess.CompletedProcess[str],
    events: list[dict[str, Any]],
    wall: float,
    load: float,
    *,
    report_with: Callable[[list[dict[str, Any]], float], None] | None = None,
    brief_with: Callable[[str, list[dict[str, Any]], float], str] | None = None,
) -> None:
    """Print one run: a line (``--brief`` or variants) or the whole timeline; keep its
    events in ``--json``."""
    if done.returncode:
        print(f"{label}: exit {done.returncode}", done.stderr[-2000:])
    if args.brief or args.variant:
        print((brief_with or brief)(label, events, wall) + f", load {load:.2f}", flush=True)
    else:
        print(f"--- run {run} ({label}): exit {done.returncode}, load {load:.2f}")
        (report_with or report)(events, wall)
    if args.json:
        args.json.write_text(json.dumps(events, indent=0))


if __name__ == "__main__":
    main()
