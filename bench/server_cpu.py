"""What a tool costs the server: server CPU per run, and what the tool sends, side by side.

The side-by-side benchmark (upload_bench.py) starts a fresh server for every run; this
keeps one SeaweedFS and alternates the tools on it, rotated round by round, so that
many runs of each fit in a few minutes on a machine shared with other work. Each tool
uploads the small dataset (2,000 x 16 KiB, nested) to a fresh prefix (``up``), or
restores the same seeded prefix into an empty folder under /dev/shm (``dl``; the
objects are uploaded once by s3stow, untimed, as upload_bench.py seeds them). Per run:
the server's CPU (its process tree, user + sys), the wall time, the tool's CPU and the
load; per tool, the median and range.

A tool is ``LABEL=SPEC``: ``s3stow [ARGS...]`` runs this tree's s3stow (``s3stow@SRC``:
the tree ``SRC``, ``PYTHONPATH``), ``s5cmd [GLOBAL ARGS...]`` runs s5cmd (e.g.
``--numworkers 64``, its requests in flight; 256 by default):

    python bench/server_cpu.py dl --rounds 8 --tool "s3stow=s3stow" \\
        --tool "c256=s3stow --concurrency 256" --tool "s5cmd=s5cmd" \\
        --tool "s5w64=s5cmd --numworkers 64"

``--wire`` sends each run through a logging proxy on loopback (a thread per
connection, which slows the runs; take CPU figures from runs without it) and prints,
per tool, its connections, its requests by method and query parameters, the answers'
status codes and the header names it sends. Default tools: s3stow and s5cmd.
"""

from __future__ import annotations

import argparse
import collections
import compileall
import contextlib
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upload_bench as ub
from servers import BUCKET, BenchServer

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


@dataclass
class Tool:
    label: str
    argv: list[str]  # before the command's own arguments
    src: Path | None  # s3stow's tree (PYTHONPATH); None: s5cmd
    extra: list[str]  # s3stow's extra arguments


def parse_tool(text: str) -> Tool:
    label, _, spec = text.partition("=")
    words = shlex.split(spec)
    if not label or not words or words[0].split("@")[0] not in ("s3stow", "s5cmd"):
        raise SystemExit(f"--tool {text!r}: write LABEL=s3stow[@SRC] [ARGS] or LABEL=s5cmd [ARGS]")
    name, _, tree = words[0].partition("@")
    if name == "s5cmd":
        s5 = ub.tool_path("s5cmd")
        if s5 is None:
            raise SystemExit("s5cmd is not installed (make bench installs it into bench/.venv)")
        return Tool(label, [s5, *words[1:]], None, [])
    src = Path(tree).resolve() if tree else SRC
    return Tool(label, [sys.executable, "-m", "s3stow", "-q"], src, words[1:])


def command(
    tool: Tool, phase: str, endpoint: str, data: Path, prefix: str, dest: Path
) -> list[str]:
    if tool.src is None:
        where = [f"{data}/*", f"s3://{BUCKET}/{prefix}/"]
        if phase == "dl":
            where = [f"s3://{BUCKET}/seed/*", f"{dest}/"]
        return [*tool.argv, "--endpoint-url", endpoint, "cp", *where]
    ledger = ["--ledger", str(dest.parent / f"{dest.name}.db")]
    verb = ["upload", str(data), f"s3://{BUCKET}/{prefix}"]
    if phase == "dl":
        verb = ["restore", f"s3://{BUCKET}/seed", str(dest)]
    return [*tool.argv, "--endpoint-url", endpoint, *verb, *ledger, *tool.extra]


# ---- the logging proxy (--wire) -------------------------------------------------------------
@dataclass
class Wire:
    """What went through the proxy during one run."""

    connections: int = 0
    requests: collections.Counter[str] = field(default_factory=collections.Counter)
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    headers: collections.Counter[str] = field(default_factory=collections.Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Messages:
    """HTTP/1.1 heads read off one direction of a connection (bodies skipped)."""

    def __init__(self, wire: Wire, methods: list[str], *, requests: bool) -> None:
        self.wire, self.methods, self.requests = wire, methods, requests
        self.buffer = b""
        self.body = 0  # bytes of a body still to skip
        self.chunked = False

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.body:
                taken = min(self.body, len(self.buffer))
                self.buffer, self.body = self.buffer[taken:], self.body - taken
                if self.body:
                    return
            if self.chunked and not self._chunk():
                return
            if self.chunked:
                continue
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end].decode("latin-1"), self.buffer[end + 4 :]
            self._head(head)

    def _chunk(self) -> bool:
        """Skip one chunk; False when more bytes are needed."""
        end = self.buffer.find(b"\r\n")
        if end < 0:
            return False
        size = int(self.buffer[:end].split(b";")[0] or b"0", 16)
        if size == 0:  # the last chunk (no trailers expected from S3)
            if len(self.buffer) < end + 4:
                return False
            self.buffer, self.chunked = self.buffer[end + 4 :], False
            return True
        self.buffer, self.body = self.buffer[end + 2 :], size + 2
        return True

    def _head(self, head: str) -> None:
        first, *lines = head.split("\r\n")
        names = {line.partition(":")[0].strip().lower(): line.partition(":")[2] for line in lines}
        no_body = False
        with self.wire.lock:
            if self.requests:
                method, target = first.split(" ")[:2]
                query = sorted(
                    p.partition("=")[0] for p in target.partition("?")[2].split("&") if p
                )
                self.wire.requests[" ".join([method, *query])] += 1
                self.wire.headers.update(names.keys())
                self.methods.append(method)
            else:
                code = first.split(" ")[1]
                self.wire.codes[code] += 1
                method = self.methods.pop(0) if self.methods else ""
                no_body = method == "HEAD" or code in ("204", "304")
        self.chunked = not no_body and "chunked" in names.get("transfer-encoding", "")
        self.body = 0 if no_body or self.chunked else int(names.get("content-length", "0"))


def _pump(source: socket.socket, sink: socket.socket, messages: _Messages) -> None:
    try:
        parsing = True
        while data := source.recv(256 * 1024):
            if parsing:
                try:
                    messages.feed(data)
                except (ValueError, IndexError):  # not read as HTTP: still passed on
                    parsing = False
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def start_proxy(port: int, wire: Wire) -> tuple[socket.socket, str]:
    """A logging proxy on loopback in front of ``port``: its socket and endpoint URL."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", port))
                with wire.lock:
                    wire.connections += 1
                methods: list[str] = []
                out = _Messages(wire, methods, requests=True)
                back = _Messages(wire, methods, requests=False)
                for a, b, m in ((client, upstream, out), (upstream, client, back)):
                    threading.Thread(target=_pump, args=(a, b, m), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}"


def show_wire(label: str, wires: list[Wire]) -> None:
    wire = wires[-1]
    count = sum(wire.requests.values())
    print(f"{label}: {wire.connections} connections, {count} requests (its last run)")
    for kind, n in wire.requests.most_common():
        print(f"    {n:6d} {kind}")
    print(f"    answers: {dict(wire.codes)}")
    print(f"    header names sent (requests with each): {dict(wire.headers)}")


# ---- the runs ---------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("phase", choices=("up", "dl"))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tool", action="append", default=[], help="LABEL=SPEC (repeatable)")
    parser.add_argument("--wire", action="store_true", help="log each run's requests")
    parser.add_argument("--json", type=Path, help="write every run here")
    args = parser.parse_args()
    tools = [parse_tool(t) for t in args.tool or ["s3stow=s3stow", "s5cmd=s5cmd"]]
    for tree in {t.src for t in tools if t.src is not None}:
        compileall.compile_dir(str(tree), quiet=1)
    data = ub.make_dataset("small", ub.SIZES["small"])
    work = Path(tempfile.mkdtemp(prefix="s3stow-scpu-", dir="/dev/shm"))
    runs: dict[str, list[dict[str, float]]] = {t.label: [] for t in tools}
    wires: dict[str, list[Wire]] = {t.label: [] for t in tools}
    loads = [os.getloadavg()[0]]
    try:
        with BenchServer("seaweedfs") as server:
            if args.phase == "dl":
                seed = [sys.executable, "-m", "s3stow", "-q", "--endpoint-url"]
                seed += [server.endpoint_url, "upload", str(data), f"s3://{BUCKET}/seed"]
                env = {**os.environ, **ub.ENV, "PYTHONPATH": str(SRC)}
                ledger = ["--ledger", str(work / "seed.db")]
                subprocess.run([*seed, *ledger], env=env, check=True, capture_output=True)
            for round_ in range(args.rounds):
                turn = round_ % len(tools)
                for tool in tools[turn:] + tools[:turn]:
                    run = one_run(server, tool, args.phase, data, work, round_, args.wire)
                    runs[tool.label].append(run[0])
                    if run[1] is not None:
                        wires[tool.label].append(run[1])
                    loads.append(run[0]["load"])
                    print(
                        f"round {round_} {tool.label:10s} server {run[0]['server']:.2f} s, "
                        f"wall {run[0]['wall']:.2f}, client {run[0]['client']:.2f}, "
                        f"load {run[0]['load']:.1f}",
                        flush=True,
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\n{args.phase}, {args.rounds} rounds; load {min(loads):.1f}-{max(loads):.1f}")
    for label, samples in runs.items():
        cells = []
        for key in ("server", "wall", "client"):
            values = [s[key] for s in samples]
            med = statistics.median(values)
            cells.append(f"{key} {med:.2f} ({min(values):.2f}-{max(values):.2f})")
        print(f"  {label:10s} " + ", ".join(cells))
    for label, seen in wires.items():
        if seen:
            show_wire(label, seen)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=1))
    return 0


def one_run(
    server: BenchServer, tool: Tool, phase: str, data: Path, work: Path, round_: int, wire: bool
) -> tuple[dict[str, float], Wire | None]:
    dest = work / f"{tool.label}-{round_}"
    endpoint, listener, seen = server.endpoint_url, None, None
    if wire:
        seen = Wire()
        listener, endpoint = start_proxy(server.port, seen)
    argv = command(tool, phase, endpoint, data, f"{tool.label}-{round_}", dest)
    env = {**os.environ, **ub.ENV}
    if tool.src is not None:
        env["PYTHONPATH"] = str(tool.src)
    if phase == "dl":
        dest.mkdir()
    time.sleep(0.3)  # the previous run's answers settled
    before = os.times()
    cpu0, start = server.cpu(), time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall, cpu1 = time.perf_counter() - start, server.cpu()
    after = os.times()
    if listener is not None:
        listener.close()
    if done.returncode != 0:
        raise SystemExit(f"{tool.label}: exit {done.returncode}: {done.stderr[-500:]}")
    shutil.rmtree(dest, ignore_errors=True)
    client = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    sample = {"server": cpu1 - cpu0, "wall": wall, "client": client, "load": os.getloadavg()[0]}
    return sample, seen


if __name__ == "__main__":
    raise SystemExit(main())
