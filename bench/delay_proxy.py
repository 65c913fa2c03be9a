"""A loopback TCP proxy that adds latency, for the benchmark's "latency" scenario.

It behaves like a network link with a round trip of DELAY_MS: every chunk of bytes,
in either direction, is passed on half the delay after it arrived (a one-way delay,
not a pause per chunk, so a stream keeps its bandwidth), and a new connection pays
one more round trip before its first byte reaches the server, as a TCP handshake
does. So every request costs one round trip more, whether the server keeps
connections alive (SeaweedFS, AWS) or closes them after each answer (moto: two
round trips then, as on a real network). (``tc netem`` would be the cleaner tool;
this machine's kernel has no netem.)

It is stdlib only and cheap: asyncio protocols, not streams, and one timer per
direction of a connection (uvloop's event loop is used where it is installed).
Reading stops while more than 4 MiB wait to be passed on in one direction.

With RATE_MBPS, each connection's answers (server to client) are passed on at most at
that many MB/s: a per-connection bandwidth cap, as a remote S3 puts on each stream
(tens of MB/s), so that only more connections in parallel go faster.

    python bench/delay_proxy.py UPSTREAM_PORT DELAY_MS [RATE_MBPS]  # prints its port
"""

from __future__ import annotations

import asyncio
import collections
import sys

_HIGH_WATER = 4 * 1024 * 1024  # bytes held per direction before reading pauses
_EOF = b""  # a queued end of stream


class _Direction:
    """Bytes from one transport to another, each chunk passed on ``delay`` after it
    arrived (and none before ``not_before``)."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, delay: float, not_before: float, rate: float = 0.0
    ) -> None:
        self.loop = loop
        self.delay = delay
        self.not_before = not_before
        self.rate = rate  # bytes/s at most (0: no cap)
        self.source: asyncio.Transport | None = None
        self.dest: asyncio.Transport | None = None
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.held = 0
        self.timer: asyncio.TimerHandle | None = None
        self.paused = False
        self.finished = False
        self.peer: _Direction | None = None  # the other way of the same connection

    def push(self, data: bytes) -> None:
        now = self.loop.time()
        due = max(now + self.delay, self.not_before)
        if self.rate and data:  # the chunk leaves once the ones before it have gone
            self.not_before = max(due, self.not_before) + len(data) / self.rate
        if due <= now and not self.queue and data and self.dest is not None:
            self.dest.write(data)  # no delay (0 ms): no timer either
            return
        self.queue.append((due, data))
        self.held += len(data)
        if self.held > _HIGH_WATER and self.source is not None and not self.paused:
            self.source.pause_reading()
            self.paused = True
        self.schedule()

    def schedule(self) -> None:
        if self.timer is None and self.queue and self.dest is not None:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)

    def flush(self) -> None:
        self.timer = None
        dest = self.dest
        if dest is None:
            return
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now:
            _, data = self.queue.popleft()
            if not data:  # _EOF
                self.end()
                return
            self.held -= len(data)
            if not dest.is_closing():
                dest.write(data)
        if self.paused and self.held <= _HIGH_WATER // 2 and self.source is not None:
            self.source.resume_reading()
            self.paused = False
        self.schedule()

    def end(self) -> None:
        """Pass the end of the stream on; close both ends once both ways ended."""
        self.finished = True
        self.queue.clear()
        dest = self.dest
        assert dest is not None
        assert self.peer is not None
        if self.peer.finished:
            dest.close()
            if self.source is not None:
                self.source.close()
            return
        try:
            if dest.is_closing() or not dest.can_write_eof():
                dest.close()
            else:
                dest.write_eof()
        except OSError:  # the other end went away meanwhile (ENOTCONN): nothing to end
            dest.close()


class _Side(asyncio.Protocol):
    """One end of a proxied connection: what it receives goes into ``out``."""

    def __init__(self, out: _Direction, back: _Direction) -> None:
        self.out = out
        self.back = back
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.out.source = transport
        self.back.dest = transport
        self.back.schedule()

    def data_received(self, data: bytes) -> None:
        self.out.push(data)

    def eof_received(self) -> bool:
        self.out.push(_EOF)
        return True  # keep the other direction open until its own end

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.out.finished and not (self.out.queue and not self.out.queue[-1][1]):
            self.out.push(_EOF)  # a reset ends the stream too, after what is queued


def _pair(loop: asyncio.AbstractEventLoop, delay: float, rate: float) -> tuple[_Side, _Side]:
    half = delay / 2
    # the first bytes to the server wait one more round trip: the TCP handshake
    up = _Direction(loop, half, loop.time() + delay + half)
    down = _Direction(loop, half, 0.0, rate)
    up.peer, down.peer = down, up
    return _Side(up, down), _Side(down, up)


async def serve(upstream_port: int, delay: float, rate: float = 0.0) -> None:
    loop = asyncio.get_running_loop()
    connecting: set[asyncio.Task[None]] = set()

    def accepted() -> _Side:
        client, server = _pair(loop, delay, rate)

        async def connect() -> None:
            try:
                await loop.create_connection(lambda: server, "127.0.0.1", upstream_port)
            except OSError:
                if client.transport is not None:
                    client.transport.close()

        task = loop.create_task(connect())
        connecting.add(task)
        task.add_done_callback(connecting.discard)
        return client

    listener = await loop.create_server(accepted, "127.0.0.1", 0, backlog=1024)
    print(listener.sockets[0].getsockname()[1], flush=True)
    async with listener:
        await listener.serve_forever()


def main() -> None:
    upstream, delay = int(sys.argv[1]), float(sys.argv[2]) / 1000
    rate = float(sys.argv[3]) * 1e6 if len(sys.argv) > 3 else 0.0
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        asyncio.run(serve(upstream, delay, rate))
    else:  # pragma: no cover - not installed here
        uvloop.run(serve(upstream, delay, rate))


if __name__ == "__main__":
    main()
