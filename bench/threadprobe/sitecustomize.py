"""bench/thread_cpu.py's probe, loaded into the measured s3stow by ``PYTHONPATH`` (never
part of s3stow): with ``S3STOW_THREAD_PROBE=FILE`` set, every thread's own user and
system CPU and context switches (``getrusage(RUSAGE_THREAD)`` as the thread ends; the
main thread's at exit) and the number of sockets connected are written to FILE as JSON
at exit, one entry per thread, by thread name. Linux only."""

from __future__ import annotations

import os

_OUT = os.environ.get("S3STOW_THREAD_PROBE")
if _OUT:
    import atexit
    import json
    import resource
    import socket
    import threading

    _rows: list[tuple[str, float, float, int, int]] = []
    _connects = [0]
    _lock = threading.Lock()

    def _record(name: str) -> None:
        use = resource.getrusage(resource.RUSAGE_THREAD)
        with _lock:
            _rows.append((name, use.ru_utime, use.ru_stime, use.ru_nvcsw, use.ru_nivcsw))

    _run = threading.Thread.run

    def _run_and_record(self: threading.Thread) -> None:
        try:
            _run(self)
        finally:
            _record(self.name)

    threading.Thread.run = _run_and_record  # type: ignore[method-assign]

    _connect = socket.socket.connect

    def _counted(self: socket.socket, address: object) -> None:
        with _lock:
            _connects[0] += 1
        _connect(self, address)  # type: ignore[arg-type]

    socket.socket.connect = _counted  # type: ignore[method-assign]

    def _dump() -> None:
        _record("MainThread")
        with open(_OUT, "w", encoding="utf-8") as out:
            json.dump({"threads": _rows, "connects": _connects[0]}, out)

    atexit.register(_dump)
