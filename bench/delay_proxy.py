"""A loopback TCP proxy that adds latency, for the benchmark's "latency" scenario.

Every connection waits half the delay before it is connected upstream and half
before the first byte of the answer is passed back, so a request costs at least
one full delay more, as a round trip to a real S3 region does. The local server
(moto) closes the connection after each answer, so every request pays it.
(``tc netem`` would be the cleaner tool; this machine's kernel has no netem.)

    python bench/delay_proxy.py UPSTREAM_PORT DELAY_MS   # prints the port it listens on
"""

from __future__ import annotations

import asyncio
import sys


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, first_delay: float
) -> None:
    delayed = first_delay <= 0
    try:
        while chunk := await reader.read(256 * 1024):
            if not delayed:
                await asyncio.sleep(first_delay)
                delayed = True
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        if not writer.is_closing():
            writer.close()


async def serve(upstream_port: int, delay: float) -> None:
    half = delay / 2

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(half)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            _pump(reader, up_writer, first_delay=0),
            _pump(up_reader, writer, first_delay=half),
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), float(sys.argv[2]) / 1000))
