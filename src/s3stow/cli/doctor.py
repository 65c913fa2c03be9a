"""``s3stow doctor [s3://BUCKET/PREFIX]``: the preflight checklist."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from s3stow.cli.app import GlobalOptions, output_console
from s3stow.cli.helptext import examples
from s3stow.errors import ExitCode
from s3stow.plan.keys import parse_target


def doctor(
    ctx: typer.Context,
    destination: Annotated[
        str | None,
        typer.Argument(
            help="The bucket and prefix to probe (write, read and delete a test object).",
            metavar="s3://BUCKET[/PREFIX]",
        ),
    ] = None,
) -> None:
    """Check credentials, endpoint, clock, bucket and permissions before a long job."""
    from s3stow.tools.doctor import run_checks

    options: GlobalOptions = ctx.obj
    target = parse_target(destination) if destination else None
    checks = run_checks(options.settings(), target)
    failed = any(c.status == "FAIL" for c in checks)
    if options.json:
        print(
            json.dumps(
                {
                    "ok": not failed,
                    "checks": [
                        {"name": c.name, "status": c.status, "detail": c.detail, "fix": c.fix}
                        for c in checks
                    ],
                }
            )
        )
    else:
        console = output_console()
        colour = {"OK": "green", "WARN": "yellow", "FAIL": "red"}
        for c in checks:
            console.print(f"[{colour[c.status]}]{c.status:4}[/] {c.name}: {c.detail}")
            if c.fix:
                console.print(f"     fix: {c.fix}")
    if failed:
        raise typer.Exit(int(ExitCode.FATAL))


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            (
                "Check credentials, clock and permissions on a bucket:",
                "s3stow doctor s3://my-bucket/backups",
            ),
            (
                "The same against an S3-compatible server:",
                "s3stow doctor s3://backup --endpoint-url http://nas:9000",
            ),
        )
    )(doctor)
