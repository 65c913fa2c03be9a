"""Side-by-side upload (and download) benchmark: s3stow against boto3, aws, s5cmd, rclone.

Each tool uploads each dataset to a fresh local S3 server (bench/servers.py: SeaweedFS's
``weed mini`` by default where its wheel is installed, or moto; started anew for every
run so earlier data cannot slow it), runs interleaved and rotated (A B C, B C A, ...), and the
median of the runs is reported: wall seconds, client CPU seconds (user + sys of the
tool's process tree), peak RSS, server CPU seconds, files/s and MiB/s, plus s3stow's
ratio to the best peer on each figure (below 1.0 is better for time, CPU and memory).
``--server all`` runs everything on SeaweedFS, then on moto, and reports one table per
server. The "noop" scenario uploads the "many" dataset once, then times a second run
that has nothing to do (s3stow's ledger vs. the peers' sync commands). The "latency"
scenario uploads the "small" dataset through bench/delay_proxy.py, which delays every
connection's first request and answer, as a round trip to a real S3 region does; it
rewards pipelining. It runs once per ``--latency-ms`` value (``20,50`` gives
``latency20`` and ``latency50``; such a name also works in ``--datasets``). The "one"
dataset is a single 1 KiB file: its times are each tool's fixed cost per invocation
(start-up, first connection, exit). Every run is checked: the object count under its
prefix must equal the file count.

The download scenarios ``dl-small``, ``dl-medium`` and ``dl-large`` upload their
dataset once per run (untimed, with s3stow), then time the way back into an empty
folder: ``s3stow restore`` against ``aws s3 cp --recursive``, ``s5cmd cp`` and
``rclone copy``; a run is ok when the folder holds every file with its size.
``dl-latency`` (``dl-latencyNN`` per ``--latency-ms``) brings the small dataset back
through the delay proxy.

    python bench/upload_bench.py [--server seaweedfs|moto|all] [--runs 3] [--quick]
                                 [--datasets one,small,medium,large,noop,latency]
                                 [--latency-ms 20,50] [--variant LABEL=SPEC ...]
    python bench/upload_bench.py --datasets dl-small,dl-medium,dl-large --tools s3stow,aws,s5cmd

``--variant noetag=S3STOW_ETAG_CHECK=off`` adds a tool ``s3stow:noetag``: s3stow run with
that environment (``NAME=VALUE`` tokens) and those extra upload arguments (any other
tokens, e.g. ``"c64=--concurrency 64"``), interleaved with the rest, so the cost of one
setting is measured in the same run as the peers. Variants are never counted as peers.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import re
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from servers import (  # beside this file
    SERVERS,
    BenchServer,
    audit_missing,
    default_server,
    describe,
    servers_of,
    start_delay_proxy,
)

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
RESULTS = HERE / "results"
BIN = HERE / ".venv" / "bin"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
MiB = 1024 * 1024
SIZES = {  # name: (files, bytes each, nested)
    "small": (2000, 16 * 1024, True),
    "medium": (50, 8 * MiB, False),
    "large": (1, 1024 * MiB, False),
    "many": (20000, 1024, True),
    "one": (1, 1024, False),
}
QUICK = {
    "small": (500, 16 * 1024, True),
    "medium": (12, 8 * MiB, False),
    "large": (1, 256 * MiB, False),
    "many": (3000, 1024, True),
    "one": (1, 1024, False),
}


# --variant LABEL -> (extra environment, extra upload arguments) for tool "s3stow:LABEL"
VARIANTS: dict[str, tuple[dict[str, str], list[str]]] = {}


def parse_variant(text: str) -> tuple[str, tuple[dict[str, str], list[str]]]:
    label, sep, spec = text.partition("=")
    if not sep or not label:
        raise SystemExit(f"--variant {text!r}: write LABEL=SPEC, e.g. noetag=S3STOW_ETAG_CHECK=off")
    env: dict[str, str] = {}
    args: list[str] = []
    for token in shlex.split(spec):
        if re.match(r"^[A-Z][A-Z0-9_]*=", token):
            name, _, value = token.partition("=")
            env[name] = value
        else:
            args.append(token)
    return label, (env, args)


def variant_of(tool: str) -> tuple[dict[str, str], list[str]]:
    return VARIANTS[tool.split(":", 1)[1]] if tool.startswith("s3stow:") else ({}, [])


@dataclass
class Sample:
    server: str
    tool: str
    dataset: str
    wall: float
    cpu: float
    rss_mib: float
    server_cpu: float
    ok: bool


def make_dataset(name: str, spec: tuple[int, int, bool]) -> Path:
    count, size, nested = spec
    root = DATA / f"{name}-{count}x{size}"
    if root.exists():
        return root
    rng = random.Random(count * 7919 + size)
    tmp = root.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for index in range(count):
        folder = tmp / f"d{index % 20}" / f"e{index % 7}" if nested else tmp
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"f{index:05d}.bin", "wb") as handle:
            remaining = size
            while remaining:
                block = min(remaining, 8 * MiB)
                handle.write(rng.randbytes(block))
                remaining -= block
    tmp.rename(root)
    return root


def tool_path(name: str) -> str | None:
    local = BIN / name
    return str(local) if local.exists() else shutil.which(name)


def command(
    tool: str, src: Path, endpoint: str, prefix: str, *, sync: bool, ledger: Path
) -> list[str] | None:
    bucket = "bench"
    if tool == "s3stow" or tool.startswith("s3stow:"):
        return [
            sys.executable,
            "-m",
            "s3stow",
            "-q",
            "--endpoint-url",
            endpoint,
            "upload",
            str(src),
            f"s3://{bucket}/{prefix}",
            "--ledger",
            str(ledger),
            *variant_of(tool)[1],
        ]
    if tool == "boto3":
        return (
            None
            if sync
            else [
                sys.executable,
                str(HERE / "boto3_baseline.py"),
                endpoint,
                str(src),
                bucket,
                prefix,
            ]
        )
    if tool == "aws" and (aws := tool_path("aws")):
        verb = ["sync"] if sync else ["cp", "--recursive"]
        return [
            aws,
            "--endpoint-url",
            endpoint,
            "s3",
            *verb,
            str(src),
            f"s3://{bucket}/{prefix}",
            "--only-show-errors",
        ]
    if tool == "s5cmd" and (s5 := tool_path("s5cmd")):
        return [
            s5,
            "--endpoint-url",
            endpoint,
            "sync" if sync else "cp",
            f"{src}/*",
            f"s3://{bucket}/{prefix}/",
        ]
    if tool == "rclone" and (rc := tool_path("rclone")):
        return [rc, "copy", str(src), f"bench:{bucket}/{prefix}", "--transfers", "16"]
    return None


def download_command(
    tool: str, endpoint: str, prefix: str, dest: Path, *, ledger: Path
) -> list[str] | None:
    """The command that brings ``s3://bench/<prefix>/`` back into ``dest``."""
    source = f"s3://bench/{prefix}"
    if tool == "s3stow" or tool.startswith("s3stow:"):
        return [
            sys.executable,
            "-m",
            "s3stow",
            "-q",
            "--endpoint-url",
            endpoint,
            "restore",
            source,
            str(dest),
            "--ledger",
            str(ledger),
            *variant_of(tool)[1],
        ]
    if tool == "aws" and (aws := tool_path("aws")):
        return [
            aws,
            "--endpoint-url",
            endpoint,
            "s3",
            "cp",
            "--recursive",
            source,
            str(dest),
            "--only-show-errors",
        ]
    if tool == "s5cmd" and (s5 := tool_path("s5cmd")):
        return [s5, "--endpoint-url", endpoint, "cp", f"{source}/*", f"{dest}/"]
    if tool == "rclone" and (rc := tool_path("rclone")):
        return [rc, "copy", f"bench:bench/{prefix}", str(dest), "--transfers", "16"]
    return None


def same_files(src: Path, dest: Path) -> bool:
    """Whether ``dest`` holds every file of ``src`` (relative path and size), and no more."""

    def sizes(root: Path) -> dict[str, int]:
        return {
            p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()
        }

    return dest.is_dir() and sizes(src) == sizes(dest)


def rclone_env(endpoint: str) -> dict[str, str]:
    return {
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ENDPOINT": endpoint,
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": "testing",
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": "testing",
        "RCLONE_CONFIG_BENCH_REGION": "us-east-1",
    }


GNU_TIME = shutil.which("time") if Path("/usr/bin/time").exists() else None
STDERR = DATA / ".stderr"
# s3stow's ledgers, in a folder of this invocation's own (main), never shared with, or
# deleted under, another invocation running at the same time (see latency_bench.py).
LEDGERS = [DATA]
DEST_ROOT = [DATA]  # where dl-* scenarios restore to (--dest-root)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """Run ``argv``; return wall, CPU (children user+sys), peak RSS MiB, exit code.

    Peak RSS comes from GNU time around the tool: Linux starts a forked child's
    ``ru_maxrss`` at its parent's RSS, so measured from this (large) process every
    tool would seem to use at least what the benchmark itself holds. Its stderr goes
    to ``STDERR`` (read back when a run fails)."""
    rss_file = DATA / ".maxrss"
    wrapped = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *argv] if GNU_TIME else argv
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with STDERR.open("wb") as errors:
        process = subprocess.Popen(wrapped, env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rss_kib = float(usage.ru_maxrss)
    if GNU_TIME and rss_file.exists():
        lines = rss_file.read_text().split()
        rss_kib = float(lines[-1]) if lines and lines[-1].isdigit() else rss_kib
    return wall, cpu, rss_kib / 1024, os.waitstatus_to_exitcode(status)


def one_run(
    server_kind: str,
    tool: str,
    dataset: str,
    src: Path,
    files: int,
    run: int,
    *,
    latency_ms: float = 0,
) -> Sample | None:
    """One measured run of ``tool`` on ``dataset`` against a fresh server of ``server_kind``
    (None, and no server started, when the tool has no command for it)."""
    if dataset.startswith("dl-"):
        argv = download_command(tool, "", "", DATA, ledger=DATA)
    else:
        argv = command(tool, src, "", "", sync=dataset == "noop", ledger=DATA)
    if argv is None:
        return None
    failed = Sample(server_kind, tool, dataset, 0.0, 0.0, 0.0, 0.0, ok=False)
    proxy: subprocess.Popen[str] | None = None
    with BenchServer(server_kind) as server:
        try:
            endpoint = server.endpoint_url
            if latency_ms:
                proxy, endpoint = start_delay_proxy(server.port, latency_ms)
            env = {**os.environ, **ENV, **rclone_env(endpoint), **variant_of(tool)[0]}
            if tool == "rclone":  # rclone's S3 backend cannot load AWS_CA_BUNDLE here
                env.pop("AWS_CA_BUNDLE", None)
            name = f"{tool.replace(':', '-')}-{dataset}-{run}"
            ledger = LEDGERS[0] / f"ledger-{name}.db"
            for leftover in LEDGERS[0].glob(ledger.name + "*"):
                leftover.unlink()
            if dataset.startswith("dl-"):
                return download_run(tool, src, endpoint, name, env, ledger, server, failed)
            sync = dataset == "noop"
            argv = command(tool, src, endpoint, name, sync=sync, ledger=ledger)
            assert argv is not None
            if sync:  # the first, full upload is not measured
                first = command(tool, src, endpoint, name, sync=False, ledger=ledger)
                assert first is not None
                if not untimed(first, env):
                    return failed
            cpu0 = server.cpu()
            wall, cpu, rss, code = timed(argv, env)
            cpu1 = server.cpu()
            stored = server.count_objects(name)
            ok = code == 0 and stored == files
            if not ok:
                tail = STDERR.read_text(errors="replace")[-500:]
                print(f"  {name}: exit {code}, {stored} of {files} objects stored; {tail}")
                if stored < files:  # a listing that lags, or objects really missing?
                    why = audit_missing(server.endpoint_url, name, files, ledger=ledger)
                    print(f"  {name}: {why}")
            return Sample(server_kind, tool, dataset, wall, cpu, rss, cpu1 - cpu0, ok)
        finally:
            if proxy is not None:
                proxy.kill()
                proxy.wait()


def untimed(argv: list[str], env: dict[str, str]) -> bool:
    """Run ``argv`` unmeasured (a run's preparation); whether it succeeded."""
    done = subprocess.run(
        argv, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if done.returncode != 0:
        print(f"  preparation failed ({done.returncode}): {done.stderr[-500:]}", flush=True)
    return done.returncode == 0


def download_run(
    tool: str,
    src: Path,
    endpoint: str,
    prefix: str,
    env: dict[str, str],
    ledger: Path,
    server: BenchServer,
    failed: Sample,
) -> Sample:
    """Upload ``src`` (untimed), then time ``tool`` bringing it back to an empty folder."""
    dest = DEST_ROOT[0] / f"restored-{prefix}"
    shutil.rmtree(dest, ignore_errors=True)
    argv = download_command(tool, endpoint, prefix, dest, ledger=ledger)
    assert argv is not None
    seed = LEDGERS[0] / f"ledger-seed-{prefix}.db"
    upload = [sys.executable, "-m", "s3stow", "-q", "--endpoint-url", endpoint, "upload"]
    upload[upload.index(endpoint)] = server.endpoint_url  # seeded directly, not delayed
    seeded = untimed([*upload, str(src), f"s3://bench/{prefix}", "--ledger", str(seed)], env)
    for leftover in LEDGERS[0].glob(seed.name + "*"):
        leftover.unlink()
    if not seeded:
        return failed
    dest.mkdir(parents=True)
    cpu0 = server.cpu()
    wall, cpu, rss, code = timed(argv, env)
    cpu1 = server.cpu()
    ok = code == 0 and same_files(src, dest)
    if not ok:
        tail = STDERR.read_text(errors="replace")[-500:]
        print(f"  {prefix}: exit {code}, the restored files differ from the source; {tail}")
    shutil.rmtree(dest, ignore_errors=True)
    return Sample(failed.server, tool, failed.dataset, wall, cpu, rss, cpu1 - cpu0, ok)


def machine() -> str:
    cpu = "unknown CPU"
    info = Path("/proc/cpuinfo")
    if info.exists():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


def rotated(tools: list[str], run: int) -> list[str]:
    """The order of run ``run``: the tools rotated by one place each run.

    Whoever runs first after a dataset is prepared writes into the memory freed most
    recently, which this VM's free page reporting makes slower (docs/performance.md, "A
    large restore's kernel time is the VM's"), so no tool may always go first. s3stow's
    variants stay right after s3stow (one group), so each pair still runs back to back.
    """
    groups: list[list[str]] = []
    for tool in tools:
        if tool.startswith("s3stow:") and groups and groups[-1][0] == "s3stow":
            groups[-1].append(tool)
        else:
            groups.append([tool])
    turn = run % len(groups)
    return [tool for group in groups[turn:] + groups[:turn] for tool in group]


def median(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def ratios(samples: list[Sample]) -> dict[str, list[str]]:
    """Per dataset (and variant) row label: s3stow's wall, CPU and RSS over the best peer's."""
    rows: dict[str, list[str]] = {}
    for dataset in dict.fromkeys(s.dataset for s in samples):
        by_tool = runs_by_tool(samples, dataset)
        peers = [runs for tool, runs in by_tool.items() if not tool.startswith("s3stow")]
        for tool, mine in by_tool.items():
            if not tool.startswith("s3stow") or not peers:
                continue
            cells = []
            for attr in ("wall", "cpu", "rss_mib"):
                best = min(median(runs, attr) for runs in peers)
                cells.append(f"{median(mine, attr) / best:.2f}" if best else "-")
            rows[dataset if tool == "s3stow" else f"{dataset} ({tool})"] = cells
    return rows


def runs_by_tool(samples: list[Sample], dataset: str) -> dict[str, list[Sample]]:
    by_tool: dict[str, list[Sample]] = {}
    for sample in samples:
        if sample.dataset == dataset:
            by_tool.setdefault(sample.tool, []).append(sample)
    return by_tool


def server_table(samples: list[Sample], files: dict[str, tuple[int, int]]) -> str:
    """One server's medians per dataset and tool, then s3stow's ratios to the best peer."""
    lines = [
        "| dataset | tool | runs ok | wall s | client CPU s | peak RSS MiB | "
        "server CPU s | files/s | MiB/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in dict.fromkeys(s.dataset for s in samples):
        count, size = files[dataset]
        for tool, runs in runs_by_tool(samples, dataset).items():
            wall = median(runs, "wall")
            lines.append(
                f"| {dataset} | {tool} | {sum(r.ok for r in runs)}/{len(runs)} | {wall:.2f} | "
                f"{median(runs, 'cpu'):.2f} | {median(runs, 'rss_mib'):.0f} | "
                f"{median(runs, 'server_cpu'):.2f} | {count / wall if wall else 0:.0f} | "
                f"{count * size / MiB / wall if wall else 0:.1f} |"
            )
    lines += ["", "| dataset | s3stow / best peer: wall | CPU | RSS |", "|---|---|---|---|"]
    lines += [f"| {label} | {' | '.join(cells)} |" for label, cells in ratios(samples).items()]
    return "\n".join(lines)


def report(samples: list[Sample], files: dict[str, tuple[int, int]]) -> str:
    """One section per server (SeaweedFS first); with two, their ratios side by side."""
    kinds = [kind for kind in SERVERS if any(s.server == kind for s in samples)]
    of = {kind: [s for s in samples if s.server == kind] for kind in kinds}
    sections = [f"## {describe(kind)}\n\n{server_table(of[kind], files)}" for kind in kinds]
    if len(kinds) > 1:
        rows = {kind: ratios(of[kind]) for kind in kinds}
        head = " | ".join(f"{kind}: wall | CPU | RSS" for kind in kinds)
        lines = [
            "## s3stow / best peer, side by side",
            "",
            f"| dataset | {head} |",
            "|---|" + "---|" * 3 * len(kinds),
        ]
        for label in dict.fromkeys(label for kind in kinds for label in rows[kind]):
            cells = [" | ".join(rows[kind].get(label, ["-"] * 3)) for kind in kinds]
            lines.append(f"| {label} | {' | '.join(cells)} |")
        sections.append("\n".join(lines))
    return "\n\n".join(sections)


LATENCY = re.compile(r"latency(\d+(?:\.\d+)?)")


def source_of(dataset: str) -> str:
    """The dataset a scenario uploads (or, for ``dl-*``, downloads)."""
    if dataset == "noop":
        return "many"
    if LATENCY.fullmatch(dataset.removeprefix("dl-")):
        return "small"
    return dataset.removeprefix("dl-")


def latency_of(dataset: str) -> float:
    """The delay in ms of a ``latencyNN`` or ``dl-latencyNN`` scenario, else 0."""
    found = LATENCY.fullmatch(dataset.removeprefix("dl-"))
    return float(found.group(1)) if found else 0.0


def scenarios(datasets: str, latencies: str) -> list[str]:
    """``--datasets`` with ``latency`` expanded to one ``latencyNN`` per ``--latency-ms``."""
    try:
        delays = [float(ms) for ms in latencies.split(",")]
    except ValueError:
        delays = []
    if not delays or any(ms <= 0 for ms in delays):
        raise SystemExit(f"--latency-ms {latencies!r}: write milliseconds above 0, e.g. 20,50")
    names: list[str] = []
    for name in datasets.split(","):
        if name in ("latency", "dl-latency"):
            names += [f"{name}{ms:g}" for ms in delays]
        else:
            names.append(name)
    unknown = [name for name in names if source_of(name) not in SIZES]
    if unknown:
        raise SystemExit(
            f"--datasets: unknown {', '.join(unknown)}; use {', '.join(SIZES)}, noop, "
            "latency (or latencyNN), dl-small, dl-medium, dl-large, dl-latency (or dl-latencyNN)"
        )
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default=default_server(), help="seaweedfs, moto or all")
    parser.add_argument("--datasets", default="one,small,medium,large,noop,latency")
    parser.add_argument(
        "--latency-ms", default="20,50", help="the latency scenario's delays, e.g. 20,50"
    )
    parser.add_argument("--tools", default="s3stow,boto3,aws,s5cmd,rclone")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--dest-root",
        type=Path,
        default=None,
        help="where the dl-* scenarios restore to (default: the data folder; /dev/shm avoids "
        "the round-by-round inflation of a journal-less ext4, docs/performance.md)",
    )
    parser.add_argument("--quick", action="store_true", help="smaller datasets")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=SPEC",
        help="also run s3stow as tool s3stow:LABEL with SPEC's NAME=VALUE environment "
        "and extra upload arguments (repeatable)",
    )
    args = parser.parse_args()
    kinds = servers_of(args.server)
    names = scenarios(args.datasets, args.latency_ms)
    VARIANTS.update(parse_variant(text) for text in args.variant)
    os.environ.update(ENV)
    DATA.mkdir(exist_ok=True)
    LEDGERS[0] = Path(tempfile.mkdtemp(prefix="ledgers-", dir=DATA))
    DEST_ROOT[0] = args.dest_root or DATA
    # An installed wheel ships byte-compiled modules (pip compiles them); an editable
    # checkout under PYTHONDONTWRITEBYTECODE=1 would recompile s3stow at every start.
    # Compile it once so s3stow is measured as users run it (about 0.06 s per start).
    import s3stow

    compileall.compile_dir(Path(s3stow.__file__).parent, quiet=1)
    sizes = QUICK if args.quick else SIZES
    tools = args.tools.split(",")
    if VARIANTS:  # each variant right after s3stow, so the pair runs back to back
        at = tools.index("s3stow") + 1 if "s3stow" in tools else 0
        tools[at:at] = [f"s3stow:{label}" for label in VARIANTS]
    for tool in tools:
        if (
            tool not in ("s3stow", "boto3")
            and not tool.startswith("s3stow:")
            and tool_path(tool) is None
        ):
            print(f"{tool}: not installed (run bench/setup.sh)")
    samples: list[Sample] = []
    files: dict[str, tuple[int, int]] = {}
    began = time.monotonic()
    for kind in kinds:
        for dataset in names:
            spec = sizes[source_of(dataset)]
            src = make_dataset(source_of(dataset), spec)
            files[dataset] = (spec[0], spec[1])
            for run in range(args.runs):
                for tool in rotated(tools, run):  # interleaved: A B C, B C A, C A B ...
                    sample = one_run(
                        kind, tool, dataset, src, spec[0], run, latency_ms=latency_of(dataset)
                    )
                    if sample is not None:
                        samples.append(sample)
                        print(
                            f"  {kind:9} {dataset:9} {tool:7} run {run + 1}: "
                            f"wall {sample.wall:.2f}s cpu {sample.cpu:.2f}s "
                            f"rss {sample.rss_mib:.0f}MiB server {sample.server_cpu:.2f}s "
                            f"ok={sample.ok}",
                            flush=True,
                        )
    elapsed = time.monotonic() - began
    table = report(samples, files)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    out = RESULTS / f"{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(
        json.dumps(
            {
                "when": stamp,
                "quick": args.quick,
                "runs": args.runs,
                "dest_root": str(DEST_ROOT[0]),
                "servers": {kind: describe(kind) for kind in kinds},
                "latency_ms": sorted({latency_of(name) for name in names} - {0.0}),
                "machine": machine(),
                "elapsed_s": round(elapsed),
                "samples": [asdict(s) for s in samples],
                "table": table,
            },
            indent=2,
        )
    )
    (RESULTS / "latest.md").write_text(
        f"# Latest benchmark ({stamp})\n\n"
        f"`{' '.join(['python', 'bench/upload_bench.py', *sys.argv[1:]])}`: "
        f"{'quick' if args.quick else 'full'} datasets, median of {args.runs} runs, "
        f"a fresh server per run; {machine()}; the whole run took {elapsed / 60:.0f} min.\n\n"
        f"{table}\n"
    )
    print(f"results: {out} and {RESULTS / 'latest.md'} ({elapsed / 60:.1f} min)")
    if all(s.ok for s in samples):
        shutil.rmtree(LEDGERS[0], ignore_errors=True)
        return 0
    print(f"ledgers kept in {LEDGERS[0]}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
