"""A timeline of one s3stow restore, optionally over an added round trip: what waits on what.

Starts a SeaweedFS server, uploads the small dataset (bench/latency_bench.py's: 2,000 x
16 KiB in 140 folders) to it directly (untimed), then runs ``python -m s3stow restore``
of that prefix into an empty folder in a child process with trace hooks installed
(this file again, ``--child``; the hooks are bench/trace_upload.py's, which wrap
functions as their modules are imported, so nothing in ``src/`` changes), through
``bench/delay_proxy.py`` at ``--latency-ms`` (``0``: straight to the server). Recorded
from the spawn: every store call (HeadBucket, each ListObjectsV2 page, each GetObject
from the call to the body's close, i.e. with its bytes read), its thread, botocore or
fast path, the requests in flight and the limiter's limit when it started; the
milestones (CLI imported, ledger open, botocore client, each planned batch and its
size, the first submit, the run's end, exit).

    PYTHONPATH=src python bench/trace_restore.py [--latency-ms 50] [--files 2000]
        [--runs 1] [--json trace.json] [--variant LABEL=SRC] [-- EXTRA RESTORE ARGS]

Prints, per run: the milestones, the requests up to the 20th GET, per 100 ms the GETs
ended, the most in flight and the limit, and the tail (the last GET's start and end,
the run's end, exit). ``--variant LABEL=SRC`` alternates runs of this tree with runs
of another source tree (the child's ``PYTHONPATH``), one line per run (``--brief``
prints that line without variants): the first listing page's end, the first GET's
start, the 16th, 1,000th and last GET's end, the run's end, exit.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import trace_upload as tu  # the hooks, the event list and the clock (tu.T0)

HERE = Path(__file__).resolve().parent


def _hook_s3(module: Any) -> None:
    tu._hook_s3(module)  # HeadBucket, listing pages, botocore's marks
    cls = module.S3Store
    original = cls.get_object

    @functools.wraps(original)
    def get_object(self: Any, bucket: str, key: str, **kwargs: Any) -> Any:
        with tu.LOCK:
            tu.STATE["inflight"] += 1
            inflight = tu.STATE["inflight"]
        start = tu._now()
        event = {
            "t": start,
            "what": "request",
            "op": "GetObject",
            "kind": "range" if kwargs.get("byte_range") else "file",
            "thread": threading.current_thread().name,
            "inflight": inflight,
            "limit": tu._limit(),
            "error": None,
        }
        try:
            body = original(self, bucket, key, **kwargs)
        except BaseException as exc:
            with tu.LOCK:
                tu.STATE["inflight"] -= 1
            event.update(end=tu._now(), answered=tu._now(), botocore=False)
            event["error"] = getattr(exc, "code", None) or type(exc).__name__
            tu.EVENTS.append(event)
            raise
        event["answered"] = tu._now()  # the answer's head: the bytes follow
        event["botocore"] = getattr(tu._VIA, "botocore", False)
        tu._VIA.botocore = False
        close = body.close

        def closed() -> None:  # the body read (or given up): the GET's end
            close()
            with tu.LOCK:
                tu.STATE["inflight"] -= 1
            event["end"] = tu._now()
            tu.EVENTS.append(event)

        body.close = closed
        return body

    cls.get_object = get_object


def _hook_restore(module: Any) -> None:
    tu._span(module, "Restorer._run", "run")


def _hook_pipeline(module: Any) -> None:
    tu._span(module, "decide", "decide")
    original_batched = module.batched

    def batched(found: Any) -> Iterator[Any]:
        for index, batch in enumerate(original_batched(found)):
            tu._mark("batch planned", index=index, size=len(batch))
            yield batch

    module.batched = batched
    files = module.FileThreads  # the run's file threads (patched for this process alone)
    original_submit = files.submit
    count = [0]

    def submit(self: Any, *args: Any, **kwargs: Any) -> Any:
        count[0] += 1
        if count[0] == 1:
            tu._mark("first submit")
        return original_submit(self, *args, **kwargs)

    files.submit = submit


HOOKS = {
    **{name: hook for name, hook in tu.HOOKS.items() if name != "s3stow.transfer.pipeline"},
    "s3stow.store.s3": _hook_s3,
    "s3stow.restore.engine": _hook_restore,
    "s3stow.restore.pipeline": _hook_pipeline,
}


def child(trace: Path, started: float, argv: list[str]) -> None:
    tu.HOOKS.clear()
    tu.HOOKS.update(HOOKS)  # what tu._AfterImport applies
    tu.child(trace, started, argv)


# ---- the parent: server, seed, proxy, run, report ----------------------------------------
def _gets(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    gets = (e for e in events if e["what"] == "request" and e["op"] == "GetObject")
    return sorted(gets, key=lambda e: e["t"])


def report(events: list[dict[str, Any]], wall: float) -> None:
    requests = sorted((e for e in events if e["what"] == "request"), key=lambda e: e["t"])
    marks = sorted((e for e in events if e["what"] != "request"), key=lambda e: e["t"])
    gets = _gets(events)
    print(f"wall (parent) {wall * 1000:.0f} ms; {len(requests)} requests, {len(gets)} GETs")
    print("milestones (ms from spawn):")
    seen: set[str] = set()
    batches = 0
    for m in marks:
        name = m["what"]
        if name == "batch planned":
            batches += 1
            if batches > 8:
                continue
        elif name.startswith("decide") or name.endswith("connection opened"):
            if name in seen:
                continue
        elif name == "gate waited":
            if name in seen:
                continue
            m = {**m, "times": sum(1 for x in marks if x["what"] == name)}
        seen.add(name)
        extra = {k: v for k, v in m.items() if k not in ("t", "what")}
        print(f"  {m['t'] * 1000:7.0f}  {name}  {extra}")
    print(f"  ({batches} batches planned)")
    print("requests up to the 20th GET (start-answer-end):")
    shown = 0
    for r in requests:
        if r.get("op") == "GetObject":
            shown += 1
            if shown > 20:
                break
        via = "botocore" if r.get("botocore") else "fast"
        answered = f"{r['answered'] * 1000:7.0f}" if "answered" in r else " " * 7
        print(
            f"  {r['t'] * 1000:7.0f} {answered} {r['end'] * 1000:7.0f} {r['op']:<14} {via:<8} "
            f"{r['thread']:<14} inflight {r['inflight']:>3} limit {r['limit']} "
            f"{r['error'] or ''}"
        )
    if not gets:
        return
    print("per 100 ms: GETs ended, max in flight, limit (from the first GET's start):")
    start, end = gets[0]["t"], max(g["end"] for g in gets)
    step, line = 0.1, []
    t = start - (start % step)
    while t < end:
        done = sum(1 for g in gets if t <= g["end"] < t + step)
        inflight = max((g["inflight"] for g in gets if t <= g["t"] < t + step), default=0)
        limits = [g["limit"] for g in gets if t <= g["t"] < t + step and g["limit"]]
        line.append(f"{t * 1000:.0f}:{done}/{inflight}/{max(limits) if limits else '-'}")
        t += step
    for i in range(0, len(line), 8):
        print("  " + "  ".join(line[i : i + 8]))
    run_end = next((m["t"] for m in reversed(marks) if m["what"] == "run end"), end)
    exit_t = next((m["t"] for m in reversed(marks) if m["what"] == "exit"), end)
    lat = sorted(g["end"] - g["t"] for g in gets)
    print(
        f"first GET start {start * 1000:.0f} ms; last GET start "
        f"{max(g['t'] for g in gets) * 1000:.0f}, last end {end * 1000:.0f}, run end "
        f"{run_end * 1000:.0f}, exit {exit_t * 1000:.0f}, process end {wall * 1000:.0f}; GET "
        f"latency min/median/p90 {lat[0] * 1000:.0f}/{lat[len(lat) // 2] * 1000:.0f}/"
        f"{lat[int(len(lat) * 0.9)] * 1000:.0f} ms; most in flight "
        f"{max(g['inflight'] for g in gets)}, last limit {gets[-1]['limit']}"
    )


def brief(label: str, events: list[dict[str, Any]], wall: float) -> str:
    """One line: the first listing page's end, the first GET's start, when the 16th,
    1,000th and last GET ended, the run's end and exit (ms from spawn)."""
    gets = _gets(events)
    ends = sorted(g["end"] for g in gets)
    pages = sorted(
        e["end"] for e in events if e["what"] == "request" and e["op"] == "ListObjectsV2"
    )
    marks = {e["what"]: e["t"] for e in events if e["what"] in ("run end", "exit")}

    def ms(value: float | None) -> str:
        return f"{value * 1000:.0f}" if value is not None else "-"

    def at(n: int) -> str:
        return ms(ends[n - 1]) if len(ends) >= n else "-"

    first_get = gets[0]["t"] if gets else None
    page = pages[0] if pages else None
    gap = ms(first_get - page) if first_get is not None and page is not None else "-"
    return (
        f"{label:>8}: first page end {ms(page)}, first GET start {ms(first_get)} (+{gap}), "
        f"16th end {at(16)}, 1000th end {at(1000)}, last end {at(len(ends))}, run end "
        f"{ms(marks.get('run end'))}, exit {ms(marks.get('exit'))}, wall {wall * 1000:.0f} ms, "
        f"most in flight {max((g['inflight'] for g in gets), default=0)}, last limit "
        f"{gets[-1]['limit'] if gets else '-'}"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4:])
        return
    args = tu.arguments(__doc__, command="restore", latency_help="0: no proxy")
    from latency_bench import ENV, dataset, start_proxy
    from s3stow.devserver.seaweedfs import SeaweedServer

    src = dataset(args.files, args.size)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "src")], check=True)
    server = SeaweedServer(env=ENV)
    server.start()
    work = Path(tempfile.mkdtemp(prefix="trace-restore-"))
    env = {**os.environ, **ENV}
    try:
        tu.bench_bucket(server.endpoint_url, ENV)
        seed = [sys.executable, "-m", "s3stow", "-q", "--endpoint-url", server.endpoint_url]
        seed += ["upload", str(src), "s3://bench/seed", "--ledger", str(work / "seed.db")]
        subprocess.run(seed, env=env, check=True, stdout=subprocess.DEVNULL)
        for run, (label, path) in enumerate(tu.rounds(args.runs, args.variant)):
            proxy, endpoint = None, server.endpoint_url
            if args.latency_ms > 0:
                proxy, endpoint = start_proxy(server.port, args.latency_ms)
            trace, dest = work / f"trace-{run}.json", work / f"dest-{run}"
            argv = [
                *("-q", "--json", "--endpoint-url", endpoint, "restore", "s3://bench/seed"),
                *(str(dest), "--ledger", str(work / f"r{run}.db"), *args.extra),
            ]
            done, wall, load = tu.traced_run(__file__, trace, argv, {**env, "PYTHONPATH": path})
            if proxy is not None:
                proxy.kill()
                proxy.wait()
            events = json.loads(trace.read_text())
            tu.show(
                args, run, label, done, events, wall, load, report_with=report, brief_with=brief
            )
            shutil.rmtree(dest, ignore_errors=True)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
