"""``s3stow dev-server``: a local S3-compatible server (moto) for trying s3stow."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer

from s3stow.cli.helptext import examples
from s3stow.errors import ConfigError


def dev_server(
    host: Annotated[
        str, typer.Option(help="Listen address (loopback only).", metavar="ADDRESS")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.", metavar="PORT")] = 9000,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep buckets and objects here across restarts: loaded at start, saved at "
            "Ctrl+C/SIGTERM (without it, data lives in memory only).",
            metavar="DIR",
        ),
    ] = None,
) -> None:
    """Run a local S3-compatible server (moto) until Ctrl+C or SIGTERM."""
    from s3stow.devserver import LocalS3Server
    from s3stow.devsnapshot import load_snapshot, save_snapshot

    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(
            f"refusing to listen on {host}: the dev server has no authentication",
            hint="use 127.0.0.1",
        )
    if data_dir is not None and data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"--data-dir {data_dir} is not a directory")
    server = LocalS3Server(host=host, port=port)
    server.start()
    where = "in memory"
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        loaded = load_snapshot(server.endpoint_url, data_dir)
        where = f"in {data_dir}, saved at exit; {loaded['objects']} object(s) loaded"
    print(f"local S3 server running at {server.endpoint_url} (data is kept {where})")
    print("use it with:")
    print(
        "  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        "AWS_DEFAULT_REGION=us-east-1"
    )
    print(f"  s3stow --endpoint-url {server.endpoint_url} upload ./dir s3://demo-bucket/prefix")
    print("press Ctrl+C to stop", flush=True)

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, _terminate)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        if data_dir is not None and server.process is not None and server.process.poll() is None:
            saved = save_snapshot(server.endpoint_url, data_dir)
            print(
                f"saved {saved['objects']} object(s) in {saved['buckets']} bucket(s) to {data_dir}"
            )
        server.stop()


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
