"""A fault-injecting HTTP reverse proxy for the test suite (loopback only).

Runs an asyncio server in a background thread in front of the moto server.
Tests add rules ``(pattern, action, times)`` matched against
``"METHOD /path?query"``; actions: ``status`` (answer with an S3 error, before
the body when ``Expect: 100-continue`` is set, as S3 does), ``delay`` (then
forward), ``reset`` (drop the connection halfway through the request body),
``forward_then_reset`` (apply upstream, then drop the answer), ``corrupt``
(flip one byte of the request body before forwarding), ``rewrite_header``
(change a response header, e.g. a lying ETag), ``rewrite_body`` (replace the
answer's body with ``value``, its status kept: a gateway's page where XML was
due), ``append_query`` (forward the request with ``value`` added to its query
string, e.g. ``max-parts=1`` to force small ListParts pages), ``hold`` (forward
only once the test calls the rule's ``release()``: a run kept busy for as long as
the test needs, however slow the machine), ``rate`` (forward, then send the answer
at most ``rate`` bytes/s: a per-connection bandwidth cap, as a remote S3 puts on each
stream, so that only more streams in parallel go faster), ``link`` (the same, but
``rate`` bytes/s shared by every answer of the rule: a full link or a busy server,
where more streams add nothing) and ``callback`` (forward, answer, then call a test
function: the crash harness kills the client there). A rule with
``agent`` applies only to requests whose User-Agent contains it (e.g.
``fastpath``). Every request is logged, with its headers, so tests can assert
exactly what was sent.
"""

from __future__ import annotations

import asyncio
import re
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Rule:
    pattern: re.Pattern[str]
    action: str
    times: int
    status: int = 503
    code: str = "SlowDown"
    delay: float = 0.0
    rate: float = 0.0  # bytes/s of an answer (``rate``) or of all answers (``link``)
    link_free: float = 0.0  # ``link``: when the shared link can take the next block
    header: str = ""
    value: str = ""
    callback: Callable[[str], None] | None = None
    agent: str = ""
    hits: int = 0
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        """Let every request this ``hold`` rule keeps (and any later one) go on."""
        self.released.set()


@dataclass
class FaultProxy:
    upstream_host: str
    upstream_port: int
    host: str = "127.0.0.1"
    port: int = 0
    rules: list[Rule] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    def start(self) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._handle, self.host, self.port)
            )
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def reset(self) -> None:
        self.rules.clear()
        self.log.clear()
        self.headers.clear()

    def add(self, pattern: str, action: str, *, times: int = 1, **kw: object) -> Rule:
        rule = Rule(re.compile(pattern), action, times, **kw)  # type: ignore[arg-type]
        self.rules.append(rule)
        return rule

    def requests(self, pattern: str = "") -> list[str]:
        regex = re.compile(pattern)
        return [r for r in list(self.log) if regex.search(r)]

    def _match(self, line: str, agent: str) -> Rule | None:
        for rule in self.rules:
            if rule.agent and rule.agent not in agent:
                continue
            if rule.hits < rule.times and rule.pattern.search(line):
                rule.hits += 1
                return rule
        return None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = [line.split(":", 1) for line in lines[1:] if ":" in line]
        lookup = {k.strip().lower(): v.strip() for k, v in headers}
        line = f"{method} {target}"
        self.log.append(line)
        self.headers.append(lookup)
        rule = self._match(line, lookup.get("user-agent", ""))
        length = int(lookup.get("content-length", "0"))
        expect = lookup.get("expect", "").lower() == "100-continue"
        if rule is not None and rule.action == "status":
            if rule.callback is not None:  # runs before the client sees the error
                rule.callback(line)
            await self._error(writer, rule)
            return
        if expect:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        if rule is not None and rule.action == "reset":
            await reader.readexactly(length // 2)
            self._rst(writer)
            return
        body = await reader.readexactly(length) if length else b""
        if rule is not None and rule.action == "delay":
            await asyncio.sleep(rule.delay)
        if rule is not None and rule.action == "hold":
            while not rule.released.is_set():
                await asyncio.sleep(0.05)
        if rule is not None and rule.action == "corrupt" and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0x01]) + body[middle + 1 :]
        kept = [(k, v) for k, v in headers if k.strip().lower() not in ("connection", "expect")]
        if rule is not None and rule.action == "append_query":
            target += ("&" if "?" in target else "?") + rule.value
        request = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}:{v}\r\n" for k, v in kept)
        request += "Connection: close\r\n\r\n"
        up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        up_writer.write(request.encode("latin-1") + body)
        await up_writer.drain()
        response = await up_reader.read()
        up_writer.close()
        if rule is not None and rule.action == "forward_then_reset":
            self._rst(writer)
            return
        if rule is not None and rule.action == "truncate_body":  # head, half the body, FIN
            head, sep, rest = response.partition(b"\r\n\r\n")
            writer.write(head + sep + rest[: len(rest) // 2])
            await writer.drain()
            writer.close()
            return
        if rule is not None and rule.action == "rewrite_header":
            response = self._rewrite(response, rule.header, rule.value)
        if rule is not None and rule.action == "rewrite_body":
            response = self._replace_body(response, rule.value.encode())
        if rule is not None and rule.action in ("rate", "link"):
            await self._paced(writer, response, rule)
            response = b""  # all of it sent
        writer.write(response)
        await writer.drain()
        writer.close()
        if rule is not None and rule.action == "callback" and rule.callback is not None:
            rule.callback(line)

    @staticmethod
    async def _paced(writer: asyncio.StreamWriter, response: bytes, rule: Rule) -> None:
        """Write ``response`` at ``rule.rate`` bytes/s, alone (``rate``) or sharing
        the rate with the rule's other answers (``link``): each block of 64 KiB leaves
        when the rate allows it."""
        loop = asyncio.get_running_loop()
        start, step = loop.time(), 64 * 1024
        for offset in range(0, len(response), step):
            block = response[offset : offset + step]
            if rule.action == "link":  # the block takes the link's next free moment
                due = max(loop.time(), rule.link_free)
                rule.link_free = due + len(block) / rule.rate
            else:
                due = start + offset / rule.rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            writer.write(block)
            await writer.drain()

    @staticmethod
    def _replace_body(response: bytes, body: bytes) -> bytes:
        head = response.partition(b"\r\n\r\n")[0].split(b"\r\n")
        drop = (b"content-length:", b"transfer-encoding:")
        kept = [ln for ln in head if not ln.lower().startswith(drop)]
        return b"\r\n".join([*kept, f"Content-Length: {len(body)}".encode()]) + b"\r\n\r\n" + body

    @staticmethod
    def _rewrite(response: bytes, header: str, value: str) -> bytes:
        head, sep, body = response.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        name = header.lower().encode()
        out = [ln for ln in lines if not ln.lower().startswith(name + b":")]
        out.append(f"{header}: {value}".encode("latin-1"))
        return b"\r\n".join(out) + sep + body

    async def _error(self, writer: asyncio.StreamWriter, rule: Rule) -> None:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{rule.code}</Code>'
            f"<Message>injected {rule.code}</Message></Error>"
        ).encode()
        reason = {
            503: "Slow Down",
            500: "Internal Server Error",
            403: "Forbidden",
            400: "Bad Request",
            404: "Not Found",
        }.get(rule.status, "Error")
        writer.write(
            f"HTTP/1.1 {rule.status} {reason}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    @staticmethod
    def _rst(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
