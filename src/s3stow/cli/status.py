"""``s3stow status PATH``: print a ``--status-json`` heartbeat file readably."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from s3stow.cli.app import GlobalOptions, output_console
from s3stow.errors import ConfigError
from s3stow.units import format_duration, format_size


def status(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The file given to upload --status-json.")],
) -> None:
    """Show the progress recorded in a status heartbeat file."""
    options: GlobalOptions = ctx.obj
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            f"status file {path} does not exist", hint="pass the path given to upload --status-json"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"status file {path} is not readable JSON: {exc}") from None
    if options.json:
        print(json.dumps(data))
        return
    console = output_console()
    totals = data.get("totals", {})
    now = time.time()
    age = now - float(data.get("last_update") or now)
    elapsed = float(data.get("last_update") or now) - float(data.get("started_at") or now)
    console.print(
        f"[bold]{data.get('phase', '?')}[/] {data.get('target', '')} "
        f"(run {data.get('run_id', '?')}), running {format_duration(elapsed)}, "
        f"updated {format_duration(age)} ago"
    )
    if "backlog" in data:  # a watch: files wait in a backlog, there is no total
        console.print(
            f"backlog {data['backlog']} (oldest waiting "
            f"{format_duration(float(data.get('oldest_waiting_seconds') or 0))}), "
            f"{totals.get('uploaded', 0)} uploaded, {totals.get('skipped', 0)} already done, "
            f"{totals.get('failed', 0)} failed attempt(s), "
            f"{totals.get('still_changing', 0)} still changing; "
            f"{format_size(totals.get('bytes_uploaded', 0))} sent"
        )
    else:
        console.print(
            f"files: {totals.get('files', 0)} total, {totals.get('uploaded', 0)} "
            f"uploaded, {totals.get('skipped', 0)} skipped, {totals.get('failed', 0)} "
            f"failed; {format_size(totals.get('bytes_uploaded', 0))} sent"
        )
    if data.get("current_file"):
        console.print(
            f"current: {data['current_file']} "
            f"({format_size(data.get('current_file_bytes', 0))} of "
            f"{format_size(data.get('current_file_size', 0))})"
        )
    groups = next((v for k, v in data.items() if isinstance(v, dict) and k != "totals"), {})
    if groups:
        table = Table("group", "planned", "uploaded", "skipped", "failed", "bytes")
        for name, group in groups.items():
            table.add_row(
                name,
                *(str(group.get(k, 0)) for k in ("planned_files", "uploaded", "skipped", "failed")),
                format_size(group.get("bytes_uploaded", 0)),
            )
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command()(status)
