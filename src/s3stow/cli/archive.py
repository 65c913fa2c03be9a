"""``s3stow archive run|init-demo|stats|verify|restore``: database-driven media archiving."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from s3stow.archive import DEFAULT_TEMPLATE
from s3stow.cli.app import GlobalOptions, heading, output_console
from s3stow.cli.helptext import examples
from s3stow.cli.restore import (
    DaysOpt,
    DryRunOpt,
    OverwriteOpt,
    PollOpt,
    RequestOpt,
    TierOpt,
    WaitOpt,
)
from s3stow.cli.runoptions import ConcurrencyOpt, LedgerOpt
from s3stow.errors import ConfigError, ExitCode
from s3stow.plan.keys import parse_target
from s3stow.units import plural

if TYPE_CHECKING:
    from s3stow.archive.table import MediaTable


archive_app = typer.Typer(
    rich_markup_mode=None,  # help texts show s3://BUCKET[/PREFIX] literally
    help="Archive media files listed in a database table, writing archive_url back.",
    no_args_is_help=True,
    epilog=examples(
        ("Try it on a demo database:", "s3stow archive init-demo --db demo.db"),
        (
            "Archive every row not yet archived:",
            "s3stow archive run s3://media-archive --db app.db",
        ),
        ("How much is archived:", "s3stow archive stats --db app.db"),
    ),
)
Opt = typer.Option
DbOpt = Annotated[
    str,
    Opt(
        "--db",
        help="The database: a SQLite file, a sqlite:/// URL or a postgresql:// URL.",
        metavar="FILE|URL",
    ),
]
TableOpt = Annotated[str, Opt("--table", help="The media table.", metavar="TABLE")]
MapOpt = Annotated[
    list[str] | None,
    Opt(
        "--column-map",
        help="Map a field to another schema's column, e.g. md5=checksum.",
        metavar="FIELD=COLUMN",
    ),
]
WhereOpt = Annotated[
    list[str] | None,
    Opt(
        "--where",
        help="Only rows where COLUMN OP VALUE holds (OP: = != < <= > >= ~ for LIKE, or "
        "'COLUMN is null'; all must hold; values are bound, never SQL).",
        metavar="CONDITION",
    ),
]
# text, so an empty value (an unset variable) is refused (``_media_root``), never taken
# as Path("") = the current folder (run would archive, init-demo write, restore rebuild)
RootOpt = Annotated[
    str,
    Opt(
        "--media-root",
        help="Root of the media cache (images/, videos/, documents/).",
        metavar="DIR",
    ),
]


def _media_root(value: str) -> Path:
    from s3stow.localfiles import given_path

    return given_path(value, what="--media-root", fix="name the media cache folder")


def _check_db(db: str) -> None:
    """An empty ``--db`` (an unset variable) is a usage error, not SQLite's "unable to
    open database file" (exit 3) or a traceback."""
    if not db.strip():
        raise ConfigError(
            f"--db is empty ({db!r})",
            hint="give the media database: a SQLite file, a sqlite:/// URL or a "
            "postgresql:// URL (check the variable that should hold it)",
        )


def _table(
    db: str, table: str, column_map: list[str] | None, where: list[str] | None = None
) -> MediaTable:
    from s3stow.archive.filters import parse_filters
    from s3stow.archive.table import MediaTable, parse_column_map

    _check_db(db)
    columns = parse_column_map(column_map or [])
    filters = parse_filters(where or [], columns)
    return MediaTable(db, table=table, columns=columns, filters=filters)


@archive_app.command(
    "run",
    epilog=examples(
        (
            "Archive every row without archive_url (files read from cache/media):",
            "s3stow archive run s3://media-archive --db app.db",
        ),
        (
            "Only videos, 100 rows, from PostgreSQL; see first, then run:",
            "s3stow archive run s3://media-archive --db postgresql://app@db/app "
            "--where 'media_type = video' --limit 100 --dry-run",
        ),
    ),
)
def run(
    ctx: typer.Context,
    destination: Annotated[
        str,
        typer.Argument(help="Where the files go.", metavar="s3://BUCKET[/PREFIX]"),
    ],
    db: DbOpt,
    table: TableOpt = "post_media",
    column_map: MapOpt = None,
    where: WhereOpt = None,
    media_root: RootOpt = "cache/media",
    key_template: Annotated[
        str,
        Opt(help="Key template with the row's fields (see the README).", metavar="TEMPLATE"),
    ] = DEFAULT_TEMPLATE,
    limit: Annotated[int | None, Opt(help="Archive at most N rows.", metavar="N")] = None,
    batch_size: Annotated[int, Opt(help="Rows per archive_url transaction.", metavar="N")] = 50,
    force: Annotated[bool, Opt("--force", help="Re-archive rows that have archive_url.")] = False,
    dry_run: Annotated[bool, Opt("--dry-run", help="Show what would be archived.")] = False,
    ledger: LedgerOpt = None,
    concurrency: ConcurrencyOpt = None,
    cleanup_local: Annotated[
        bool, Opt("--cleanup-local", help="Delete local files once archived and committed.")
    ] = False,
    yes: Annotated[bool, Opt("--yes", help="Do not ask before --cleanup-local.")] = False,
) -> None:
    """Upload every unarchived row's file and write its s3:// URL to archive_url."""
    from s3stow.archive.archiver import Archiver
    from s3stow.cli.runsupport import (
        default_ledger,
        exit_for,
        install_signal_handlers,
        observers_for,
    )
    from s3stow.ledger import open_ledger
    from s3stow.ledger.lock import run_lock
    from s3stow.report.console import print_summary, summary_dict
    from s3stow.transfer.engine import Uploader

    options: GlobalOptions = ctx.obj
    target = parse_target(destination)
    root = _media_root(media_root)
    _check_db(db)
    if batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if cleanup_local and not yes and not dry_run:
        if not sys.stdin.isatty():
            raise ConfigError("--cleanup-local deletes local files; confirm with --yes")
        typer.confirm("Delete each local file after it is archived and recorded?", abort=True)
    settings = options.settings(  # held: released by StartupOver (observers_for) or the client
        keep_held=True,
        ledger=ledger,
        dry_run=dry_run or None,
        force=force or None,
        concurrency=concurrency,
    )
    ledger_db = open_ledger(settings.ledger or default_ledger())
    held = ExitStack()  # the lock first: a run turned away must not touch the running one's files
    try:
        held.enter_context(nullcontext() if dry_run else run_lock(ledger_db, target))
    except BaseException:
        ledger_db.close()
        raise
    media = _table(db, table, column_map, where)
    uploader = Uploader(
        settings, ledger=ledger_db, observers=observers_for(options, settings, command="archive")
    )
    restore = install_signal_handlers(uploader)
    try:
        archiver = Archiver(
            media,
            uploader,
            target,
            media_root=root,
            key_template=key_template,
            batch_size=batch_size,
            cleanup_local=cleanup_local and not dry_run,
        )
        report = archiver.run(limit=limit, force=force)
    finally:
        restore()
        held.close()
        ledger_db.close()
        media.close()
    summary = archiver.summary
    if options.json:
        print(
            json.dumps(
                summary_dict(summary)
                | {
                    "event": "archive_summary",
                    "rows": report.rows,
                    "archive_urls_written": report.urls_written,
                    "transactions": report.transactions,
                    "missing_files": report.missing,
                    "md5_mismatch": report.md5_mismatch,
                    "no_created_at": report.no_created_at,
                    "cleaned": report.cleaned,
                }
            )
        )
    elif not options.quiet:  # -q: the failures were printed as they happened
        console = output_console()
        every = options.verbose > 0 or not console.is_terminal
        print_summary(
            summary,
            console,
            resume_hint="the same s3stow archive run command",
            list_all=every,
            run_id=None if dry_run else summary.run_id,
        )
        console.print(
            f"archive: {plural(report.rows, 'row')} read, archive_url written for "
            f"{report.urls_written} in {plural(report.transactions, 'transaction')}"
        )
        if report.missing:
            console.print(
                f"  {plural(len(report.missing), 'row')} without a local file (left "
                f"untouched): {', '.join(report.missing[:5])}"
                + (" ..." if len(report.missing) > 5 else "")
            )
        if report.md5_mismatch:
            console.print(
                f"  {plural(len(report.md5_mismatch), 'row')} whose file does not match "
                f"md5_sum: {', '.join(report.md5_mismatch[:5])}"
            )
        if report.no_created_at:
            console.print(
                f"  {plural(len(report.no_created_at), 'row')} without created_at used the "
                f"file's mtime: {', '.join(report.no_created_at[:5])}"
            )
        if report.cleaned:
            console.print(f"  {plural(report.cleaned, 'local file')} deleted after archiving")
    exit_for(summary, uploader)


@archive_app.command(
    "init-demo",
    epilog=examples(
        (
            "A demo database and media cache, then archive it:",
            "s3stow archive init-demo --db demo.db",
        ),
        ("", "s3stow archive run s3://demo-bucket --db demo.db"),
    ),
)
def demo(
    db: DbOpt,
    media_root: RootOpt = "cache/media",
    rows: Annotated[int, Opt(help="How many rows.", metavar="N")] = 60,
) -> None:
    """Create a sample post_media database and media cache to try archiving."""
    from s3stow.archive.demo import init_demo
    from s3stow.localfiles import output_problem

    root = _media_root(media_root)
    _check_db(db)
    if "://" in db and not db.startswith("sqlite:///"):
        raise ConfigError("init-demo writes a SQLite file", hint="pass --db demo.db")
    path = Path(db.removeprefix("sqlite:///"))
    problem = output_problem(path)  # else "unexpected OperationalError", exit 3
    if problem is not None:
        raise ConfigError(
            f"cannot create the demo database {path}: {problem}",
            hint="give --db a file path in a folder (demo.db)",
        )
    try:
        root.mkdir(parents=True, exist_ok=True)  # before the database is created
        counts = init_demo(path, root, rows=rows)
    except OSError as exc:  # a media root below a file, a folder this user cannot write
        raise ConfigError(
            f"cannot create the demo files under {root}: {exc.strerror or exc}"
            + (f" ({exc.filename})" if exc.filename else ""),
            hint="give --media-root a folder this user can write",
        ) from exc
    print(
        f"created {counts['rows']} rows in {path} and their files under {root}: "
        f"{counts['mismatched_extension']} with a mismatched extension, "
        f"{counts['no_local_path']} without local_file_path, {counts['missing_file']} "
        f"without a file, {counts['no_created_at']} without created_at"
    )


@archive_app.command(
    "stats",
    epilog=examples(
        ("How much is archived, by media type:", "s3stow archive stats --db app.db"),
        (
            "Only this year's rows:",
            "s3stow archive stats --db app.db --where 'created_at >= 2025-01-01'",
        ),
    ),
)
def stats(
    ctx: typer.Context,
    db: DbOpt,
    table: TableOpt = "post_media",
    column_map: MapOpt = None,
    where: WhereOpt = None,
) -> None:
    """Archive statistics: total, archived, not archived, by media type."""
    from s3stow.archive.report import archive_stats

    options: GlobalOptions = ctx.obj
    media = _table(db, table, column_map, where)
    try:
        overall, by_type = archive_stats(media)
    finally:
        media.close()
    if options.json:
        print(
            json.dumps(
                {
                    s.media_type: {
                        "total": s.total,
                        "archived": s.archived,
                        "not_archived": s.not_archived,
                        "percent": round(s.percent, 1),
                    }
                    for s in [overall, *by_type]
                }
            )
        )
        return
    console = output_console()
    heading(console, "S3 Archive Statistics")
    from s3stow.report.console import table as new_table

    table_ = new_table(
        "",
        "total",
        "archived",
        "%",
        "not archived",
        numeric=("total", "archived", "%", "not archived"),
    )
    for s in [overall, *by_type]:
        table_.add_row(
            "Overall" if s is overall else s.media_type.capitalize(),
            f"{s.total:,}",
            f"{s.archived:,}",
            f"{s.percent:.1f}",
            f"{s.not_archived:,}",
        )
    console.print(table_)


@archive_app.command(
    "verify",
    epilog=examples(
        ("HEAD every archived object (size and checksum):", "s3stow archive verify --db app.db"),
        (
            "Also find rows whose local file is gone:",
            "s3stow archive verify --db app.db --check-local",
        ),
    ),
)
def verify(
    ctx: typer.Context,
    db: DbOpt,
    table: TableOpt = "post_media",
    column_map: MapOpt = None,
    where: WhereOpt = None,
    media_root: RootOpt = "cache/media",
    verify_s3: Annotated[bool, Opt("--verify-s3", help="HEAD each archived object.")] = False,
    check_local: Annotated[
        bool, Opt("--check-local", help="Find rows whose file is gone.")
    ] = False,
    limit: Annotated[int | None, Opt(help="Check at most N rows.", metavar="N")] = None,
    ledger: Annotated[
        str | None,
        Opt(
            help="The ledger, to compare checksums with.",
            metavar="FILE|URL",
            show_default="ledger.db in the user state directory",
        ),
    ] = None,
) -> None:
    """Prove archived rows: objects exist with the right size/checksum; files exist."""
    from s3stow.archive.report import verify_archive
    from s3stow.cli.runsupport import default_ledger
    from s3stow.ledger import open_ledger
    from s3stow.store.s3 import S3Store

    options: GlobalOptions = ctx.obj
    root = _media_root(media_root)
    if not verify_s3 and not check_local:
        verify_s3 = True
    settings = options.settings(ledger=ledger)
    media = _table(db, table, column_map, where)
    ledger_db = open_ledger(settings.ledger or default_ledger())
    try:
        report = verify_archive(
            media,
            S3Store.from_settings(settings),
            ledger=ledger_db,
            media_root=root,
            verify_s3=verify_s3,
            check_local=check_local,
            limit=limit,
        )
    finally:
        ledger_db.close()
        media.close()
    if options.json:
        print(
            json.dumps(
                {
                    "checked": report.checked,
                    "ok": report.ok,
                    "problems": [{"id": i, "class": c, "detail": d} for i, c, d in report.problems],
                }
            )
        )
    else:
        console = output_console()
        for row_id, kind, detail in report.problems:
            console.print(f"[red]{kind}[/] {row_id}: {detail}")
        console.print(
            f"checked {plural(report.checked, 'row')}: {report.ok} ok, "
            f"{plural(len(report.problems), 'problem')}"
        )
    if report.problems:
        raise typer.Exit(int(ExitCode.SOME_FAILED))


@archive_app.command(
    "restore",
    epilog=examples(
        (
            "Rebuild the media cache of every archived row (each file checked against md5_sum):",
            "s3stow archive restore --db app.db --media-root cache/media",
        ),
        (
            "Only the videos of one year, overwriting files that differ:",
            "s3stow archive restore --db app.db --where 'media_type = video' "
            "--where 'created_at >= 2024-01-01' --overwrite",
        ),
    ),
)
def restore(
    ctx: typer.Context,
    db: DbOpt,
    table: TableOpt = "post_media",
    column_map: MapOpt = None,
    where: WhereOpt = None,
    media_root: RootOpt = "cache/media",
    limit: Annotated[int | None, Opt(help="Restore at most N rows.", metavar="N")] = None,
    overwrite: OverwriteOpt = False,
    dry_run: DryRunOpt = None,
    request_restore: RequestOpt = False,
    days: DaysOpt = None,
    tier: TierOpt = None,
    wait: WaitOpt = False,
    poll_interval: PollOpt = None,
    ledger: LedgerOpt = None,
    concurrency: ConcurrencyOpt = None,
    failures_file: Annotated[
        Path | None, Opt(help="Write each failed row as a JSON line.", metavar="FILE")
    ] = None,
) -> None:
    """Rebuild the media files of rows that have archive_url, each checked against md5_sum."""
    from s3stow.archive.restore import archive_buckets, restore_items
    from s3stow.cli.restore import finish, glacier_options, observers_for
    from s3stow.cli.runsupport import default_ledger, install_signal_handlers, resume_command
    from s3stow.ledger import open_ledger
    from s3stow.restore.engine import Restorer
    from s3stow.restore.worker import RestoreOptions

    options: GlobalOptions = ctx.obj
    given_root = _media_root(media_root)
    glacier = glacier_options(
        request_restore, wait, days=days, tier=tier, poll_interval=poll_interval
    )
    settings = options.settings(  # held: released by StartupOver (observers_for) or the client
        keep_held=True,
        ledger=ledger,
        dry_run=dry_run,
        concurrency=concurrency,
        failures_file=failures_file,
    )
    media = _table(db, table, column_map, where)
    ledger_db = open_ledger(settings.ledger or default_ledger())
    restorer = Restorer(
        settings,
        ledger=ledger_db,
        observers=observers_for(options, settings, command="archive restore"),
        options=RestoreOptions(overwrite=overwrite, glacier=glacier),
    )
    undo = install_signal_handlers(restorer, resume=resume_command())
    try:
        root = restorer.prepare_root(given_root)
        buckets = archive_buckets(media, limit=limit)  # the run's target names each
        items = restore_items(media, media_root=root, rules=restorer.rules, limit=limit)
        summary = restorer.restore_items(items, root, command="archive-restore", buckets=buckets)
    finally:
        restorer.drop_unused_dest()  # the media root it created, if nothing was written
        undo()
        ledger_db.close()
        media.close()
    finish(options, summary, restorer)


def register(app: typer.Typer) -> None:
    app.add_typer(archive_app, name="archive")
