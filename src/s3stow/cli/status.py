"""``s3stow status PATH``: print a ``--status-json`` heartbeat file readably."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from s3stow.cli.app import GlobalOptions, output_console
from s3stow.cli.globalopts import release_collector
from s3stow.cli.helptext import examples
from s3stow.errors import ConfigError
from s3stow.units import format_duration, format_size, plural


def status(
    ctx: typer.Context,
    given: Annotated[str, typer.Argument(help="The file given to --status-json.", metavar="FILE")],
    serve: Annotated[
        bool, typer.Option("--serve", help="Serve a live web page of it (until Ctrl+C).")
    ] = False,
    port: Annotated[
        int, typer.Option(help="Port of the page (0: any free port).", metavar="PORT")
    ] = 8765,
    host: Annotated[
        str,
        typer.Option(
            help="Address of the page; anything but loopback shows it to others.",
            metavar="ADDRESS",
        ),
    ] = "127.0.0.1",
    ledger: Annotated[
        str | None,
        typer.Option(
            help="Also show this ledger's recent runs and the run's failures.",
            metavar="FILE|URL",
        ),
    ] = None,
    refresh: Annotated[
        float, typer.Option(help="Seconds between page refreshes.", metavar="SECONDS")
    ] = 3.0,
) -> None:
    """Show the progress recorded in a status heartbeat file (--serve: as a live page)."""
    options: GlobalOptions = ctx.obj
    if not given.strip():  # an unset variable: it was read as ".", "status file . is a folder"
        raise ConfigError(
            f"the status file is empty ({given!r})",
            hint=f"{_WHICH} (check the variable that should hold it)",
        )
    path = Path(given)
    if serve:
        _serve(options, path, host=host, port=port, ledger=ledger, refresh=refresh)
        return
    data = _read(path)
    if options.json:
        print(json.dumps(data))
        return
    from rich.markup import escape

    from s3stow.report.status import fields_of

    console = output_console()
    totals = data.get("totals", {})
    names = fields_of(data)  # a restore's: restored, bytes_restored, received
    done, moved = names.done, names.moved
    now = time.time()
    updated = _seconds(data.get("last_update")) or now
    age = now - updated
    elapsed = updated - (_seconds(data.get("started_at")) or updated)
    console.print(
        f"{escape(str(data.get('command') or 'upload'))}: "  # as the page's heading
        f"[bold]{data.get('phase', '?')}[/] {data.get('target', '')} "
        f"(run {data.get('run_id', '?')}), running {format_duration(elapsed)}, "
        f"updated {format_duration(age)} ago"
    )
    if "backlog" in data:  # a watch: files wait in a backlog, there is no total
        console.print(
            f"backlog {data['backlog']} (oldest waiting "
            f"{format_duration(float(data.get('oldest_waiting_seconds') or 0))}), "
            f"{totals.get('uploaded', 0)} uploaded, {totals.get('skipped', 0)} already done, "
            f"{plural(totals.get('failed', 0), 'failed attempt')}, "
            f"{totals.get('still_changing', 0)} still changing; "
            f"{format_size(totals.get('bytes_uploaded', 0))} sent"
        )
    else:
        console.print(
            f"files: {totals.get('files', 0)} total, {totals.get(done, 0)} "
            f"{done}, {totals.get('skipped', 0)} skipped, {totals.get('failed', 0)} failed"
            + (
                f", {totals['not_started']} not started (--limit)"
                if totals.get("not_started")
                else ""
            )
            + (
                f", {totals['unfinished']} left unfinished by the interrupt (the same "
                "command continues them)"
                if totals.get("unfinished")
                else ""
            )
            + (
                f", {totals['pending']} waiting for a restore from Glacier"
                if totals.get("pending")
                else ""
            )
            + f"; {format_size(totals.get(names.bytes, 0))} {moved}"
        )
    if data.get("current_file"):
        console.print(
            f"current: {data['current_file']} "
            f"({format_size(data.get('current_file_bytes', 0))} of "
            f"{format_size(data.get('current_file_size', 0))})"
        )
    groups = next((v for k, v in data.items() if isinstance(v, dict) and k != "totals"), {})
    if groups:
        from s3stow.report.console import table as new_table

        table = new_table(
            "group",
            "planned",
            done,
            "skipped",
            "failed",
            "bytes",
            numeric=("planned", done, "skipped", "failed", "bytes"),
        )
        for name, group in groups.items():
            table.add_row(
                name,
                *(str(group.get(k, 0)) for k in ("planned_files", done, "skipped", "failed")),
                format_size(group.get(names.bytes, 0)),
            )
        console.print(table)


_WHICH = "pass the file given to --status-json (upload, restore, retry, watch, archive, job work)"


def _read(path: Path) -> dict[str, Any]:
    """The status file's content; a usage error (exit 2) when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"status file {path} does not exist", hint=_WHICH) from None
    except IsADirectoryError:
        raise ConfigError(f"status file {path} is a folder", hint=_WHICH) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"status file {path} is not readable JSON: {exc}", hint=_WHICH) from None
    if not isinstance(data, dict) or not isinstance(data.get("totals"), dict):
        raise ConfigError(
            f"{path} is not an s3stow status file (it has no 'totals' object)", hint=_WHICH
        )
    return data


def _seconds(value: object) -> float | None:
    """A point in time the file holds, or None (absent, or not a number)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _serve(
    options: GlobalOptions, path: Path, *, host: str, port: int, ledger: str | None, refresh: float
) -> None:
    """Serve the status page until interrupted."""
    import logging

    from s3stow.report.statuspage import serve_status

    if refresh <= 0:
        raise ConfigError("--refresh must be more than 0 seconds")
    db = None
    reader = None
    if ledger is not None:
        from s3stow.ledger import open_ledger
        from s3stow.ledger.queries import recent_runs, run_failures

        settings = options.settings(ledger=ledger)
        db = open_ledger(settings.ledger or ledger)

        def reader(run_id: str | None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            assert db is not None
            return recent_runs(db), (run_failures(db, run_id) if run_id else [])

    release_collector()  # it serves until stopped: start-up is over
    server = serve_status(path, host=host, port=port, ledger=reader, refresh=refresh)
    if not server.loopback:
        logging.getLogger("s3stow").warning(
            "the status page on %s shows paths and errors to every machine that reaches it", host
        )
    thread = server.start()
    if not options.quiet:
        print(f"status page: {server.url} (Ctrl+C to stop)", file=sys.stderr, flush=True)
    try:
        while thread.is_alive():
            thread.join(0.5)  # a timeout keeps Ctrl+C deliverable on Windows
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if db is not None:
            db.close()


def register(app: typer.Typer) -> None:
    app.command(
        epilog=examples(
            (
                "Follow a long upload from another terminal (or host):",
                "s3stow upload /data s3://archive/data --status-json /tmp/up.json",
            ),
            ("", "s3stow status /tmp/up.json"),
            (
                "The same as a live page in the browser, with the ledger's recent runs:",
                "s3stow status /tmp/up.json --serve --ledger l.db",
            ),
        )
    )(status)
