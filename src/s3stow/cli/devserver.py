"""``s3stow dev-server``: a local S3 server (SeaweedFS, or moto) for trying s3stow."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from s3stow.cli.helptext import examples
from s3stow.errors import ConfigError
from s3stow.units import plural

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def dev_server(
    engine: Annotated[
        str | None,
        typer.Option(
            help="seaweedfs (a real S3 server, objects on disk; the default where its wheel "
            "exists) or moto (an emulator in memory; the default elsewhere).",
            metavar="seaweedfs|moto",
            show_default=False,
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Listen address (loopback only).", metavar="ADDRESS")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.", metavar="PORT")] = 9000,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep buckets and objects here across restarts: SeaweedFS stores them there "
            "natively; moto loads them at start and saves them at Ctrl+C/SIGTERM. Without "
            "it, data lasts as long as the server.",
            metavar="DIR",
        ),
    ] = None,
) -> None:
    """Run a local S3 server until Ctrl+C or SIGTERM."""
    from s3stow.cli.globalopts import release_collector
    from s3stow.devserver.seaweedfs import (
        ENGINES,
        default_engine,
        describe_engine,
        local_server,
        port_is_free,
    )
    from s3stow.devserver.snapshot import MANIFEST, load_snapshot, save_snapshot

    release_collector()  # it runs until stopped: start-up is over

    chosen = engine or default_engine()
    if chosen not in ENGINES:
        raise ConfigError(f"unknown engine {chosen!r}", hint="use --engine seaweedfs or moto")
    if host not in LOOPBACK:
        raise ConfigError(
            f"refusing to listen on {host}: the dev server has no authentication",
            hint="use 127.0.0.1",
        )
    if host == "localhost":
        host = "127.0.0.1"  # one address: the port check and the server agree
    if data_dir is not None:
        if data_dir.exists() and not data_dir.is_dir():
            raise ConfigError(f"--data-dir {data_dir} is not a directory")
        _refuse_other_engines_data(data_dir, chosen, MANIFEST)
    if not port_is_free(host, port):
        raise ConfigError(
            f"port {port} on {host} is already in use",
            hint="stop what listens there, or choose another port with --port",
        )
    print(describe_engine(chosen), flush=True)
    server = local_server(chosen, host=host, port=port, data_dir=data_dir)
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)

    previous = _stop_on_signals()
    snapshot = False
    try:
        server.start()
        if chosen == "seaweedfs":
            where = f"in {data_dir}" if data_dir else "in a temporary directory, removed at exit"
        elif data_dir is not None:
            loaded = load_snapshot(server.endpoint_url, data_dir)
            snapshot = True
            where = f"in {data_dir}, saved at exit; {plural(loaded['objects'], 'object')} loaded"
        else:
            where = "in memory"
        _print_usage(server.endpoint_url, where)
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        _ignore_signals()  # a second signal must not cut the stop short: the child stays
        if snapshot and server.process is not None and server.process.poll() is None:
            assert data_dir is not None
            saved = save_snapshot(server.endpoint_url, data_dir)
            print(
                f"saved {plural(saved['objects'], 'object')} in "
                f"{plural(saved['buckets'], 'bucket')} to {data_dir}"
            )
        server.stop()
        print("local S3 server stopped", flush=True)
        for signum, handler in previous.items():  # a host calling main() gets its own back
            signal.signal(signum, handler)


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _stop_on_signals() -> dict[int, Any]:
    """SIGTERM (``kill PID``) and SIGINT stop the server like Ctrl+C, whatever this
    process inherited: a non-interactive shell starts a background job (``s3stow
    dev-server &`` in a script) with SIGINT ignored, and Python keeps an ignored SIGINT,
    so ``kill -INT PID`` did nothing. Set before the server starts, so a signal during
    its start-up also stops it and removes its temporary data. Returns the handlers
    it replaced."""
    previous = {}
    for name in ("SIGTERM", "SIGINT"):
        if hasattr(signal, name):
            signum = getattr(signal, name)
            previous[signum] = signal.signal(signum, _terminate)
    return previous


def _ignore_signals() -> None:
    """While the server is saved and stopped (bounded: SIGKILL after 20 s)."""
    for name in ("SIGTERM", "SIGINT"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def _print_usage(endpoint: str, where: str) -> None:
    print(f"local S3 server running at {endpoint} (data is kept {where})")
    print("use it with:")
    print(
        "  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        "AWS_DEFAULT_REGION=us-east-1"
    )
    print(f"  s3stow --endpoint-url {endpoint} upload ./dir s3://demo-bucket/prefix")
    print("press Ctrl+C to stop", flush=True)


def _refuse_other_engines_data(data_dir: Path, engine: str, manifest: str) -> None:
    """A directory holds one engine's data: never start the other on it (it would look empty)."""
    if engine == "seaweedfs" and (data_dir / manifest).exists():
        raise ConfigError(
            f"--data-dir {data_dir} holds a moto snapshot, not SeaweedFS data",
            hint="add --engine moto to serve it, or choose another directory",
        )
    if engine == "moto" and (data_dir / "master").is_dir():
        raise ConfigError(
            f"--data-dir {data_dir} holds SeaweedFS data, not a moto snapshot",
            hint="add --engine seaweedfs to serve it, or choose another directory",
        )


def register(app: typer.Typer) -> None:
    app.command(
        "dev-server",
        epilog=examples(
            ("A throw-away server on port 9000:", "s3stow dev-server"),
            (
                "Keep its buckets between runs:",
                "s3stow dev-server --port 9100 --data-dir ./s3-data",
            ),
        ),
    )(dev_server)
