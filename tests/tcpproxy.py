"""A loopback TCP forwarder the test controls, for database partitions (loopback only).

Each accepted connection is paired with one to the upstream (PostgreSQL) and pumped
both ways by two threads. ``drop()`` resets every open connection (a server restart or
a flaky network); ``blackhole()`` makes the network swallow everything: bytes in either
direction are read and discarded and new connections are accepted but never answered,
so clients hang until their own timeouts, as behind a dead router; ``heal()`` resets the
swallowed connections (their TCP state would have timed out) and forwards again;
``refuse()`` resets every new connection at once (nothing listening behind the port).
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Pair:
    client: socket.socket
    upstream: socket.socket | None
    swallowed: bool = False


@dataclass
class TcpProxy:
    upstream_port: int
    upstream_host: str = "127.0.0.1"
    host: str = "127.0.0.1"
    port: int = 0
    accepted: int = 0
    _pairs: set[_Pair] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _mode: str = "forward"  # forward, blackhole, refuse
    _closed: bool = False

    def start(self) -> None:
        self._listener = socket.create_server((self.host, self.port))
        self._listener.settimeout(0.2)  # accept() wakes up to see stop()
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True, name="tcpproxy")
        self._thread.start()

    def stop(self) -> None:
        self._closed = True
        self._thread.join(5)
        self._listener.close()
        self.drop()

    # ---- controls -------------------------------------------------------------------
    def drop(self) -> int:
        """Reset every open connection; returns how many there were."""
        with self._lock:
            pairs = list(self._pairs)
            self._pairs.clear()
        for pair in pairs:
            _reset(pair)
        return len(pairs)

    def blackhole(self) -> None:
        with self._lock:
            self._mode = "blackhole"
            for pair in self._pairs:
                pair.swallowed = True

    def heal(self) -> None:
        with self._lock:
            self._mode = "forward"
            swallowed = [p for p in self._pairs if p.swallowed]
            self._pairs.difference_update(swallowed)
        for pair in swallowed:
            _reset(pair)

    def refuse(self) -> None:
        with self._lock:
            self._mode = "refuse"
        self.drop()

    # ---- plumbing -------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            self.accepted += 1
            with self._lock:
                mode = self._mode
            if mode == "refuse":
                _reset(_Pair(client, None))
                continue
            upstream = None
            if mode == "forward":
                try:
                    upstream = socket.create_connection((self.upstream_host, self.upstream_port), 5)
                    upstream.settimeout(None)
                except OSError:
                    _reset(_Pair(client, None))
                    continue
            pair = _Pair(client, upstream, swallowed=mode == "blackhole")
            with self._lock:
                self._pairs.add(pair)
            threading.Thread(target=self._pump, args=(pair, True), daemon=True).start()
            if upstream is not None:
                threading.Thread(target=self._pump, args=(pair, False), daemon=True).start()

    def _pump(self, pair: _Pair, outbound: bool) -> None:
        source = pair.client if outbound else pair.upstream
        target = pair.upstream if outbound else pair.client
        assert source is not None
        try:
            while data := source.recv(65536):
                if pair.swallowed or target is None:
                    continue  # lost in the network
                target.sendall(data)
        except OSError:
            pass
        with self._lock:
            known = pair in self._pairs
            self._pairs.discard(pair)
        if known:
            _reset(pair)


def _reset(pair: _Pair) -> None:
    for sock in (pair.client, pair.upstream):
        if sock is None:
            continue
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
