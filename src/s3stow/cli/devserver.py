"""``s3stow dev-server``: a local S3-compatible server (moto) for trying s3stow."""

from __future__ import annotations

from typing import Annotated

import typer

from s3stow.errors import ConfigError


def dev_server(
    host: Annotated[str, typer.Option(help="Listen address (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 9000,
) -> None:
    """Run a local S3-compatible server (moto, in memory) until Ctrl+C."""
    from s3stow.devserver import LocalS3Server

    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError(
            f"refusing to listen on {host}: the dev server has no authentication",
            hint="use 127.0.0.1",
        )
    server = LocalS3Server(host=host, port=port)
    server.start()
    print(f"local S3 server running at {server.endpoint_url} (data is kept in memory)")
    print("use it with:")
    print(
        "  export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "
        "AWS_DEFAULT_REGION=us-east-1"
    )
    print(f"  s3stow --endpoint-url {server.endpoint_url} upload ./dir s3://demo-bucket/prefix")
    print("press Ctrl+C to stop", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


def register(app: typer.Typer) -> None:
    app.command("dev-server")(dev_server)
