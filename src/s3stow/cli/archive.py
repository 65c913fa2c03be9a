"""``s3stow archive run|init-demo|stats|verify|restore``: database-driven media archiving.

The archive group and its commands: each command's own options and its run (the
settings, the ledger and its run lock, the media table, the engine). The options the
commands share are ``cli.archiveoptions``'; what they print, ``cli.archiveshow``'s."""

from __future__ import annotations

import sys
from contextlib import ExitStack, nullcontext
from pathlib import Path
from typing import Annotated

import typer

from s3stow.archive import DEFAULT_TEMPLATE
from s3stow.cli.app import GlobalOptions
from s3stow.cli.archiveoptions import (
    DbOpt,
    MapOpt,
    RootOpt,
    TableOpt,
    WhereOpt,
    check_db,
    given_media_root,
    open_table,
)
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
    from s3stow.cli.archiveshow import show_run
    from s3stow.cli.runsupport import (
        default_ledger,
        exit_for,
        install_signal_handlers,
        observers_for,
    )
    from s3stow.ledger import open_ledger
    from s3stow.ledger.lock import run_lock
    from s3stow.transfer.engine import Uploader

    options: GlobalOptions = ctx.obj
    target = parse_target(destination)
    root = given_media_root(media_root)
    if not root.is_dir():  # every row would be "without a local file" (exit 1)
        raise ConfigError(
            f"--media-root {root} is not a folder"
            + ("" if root.exists() else " (it does not exist)"),
            hint="give the folder that holds the media cache (images/, videos/, documents/)",
        )
    check_db(db)
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
    media = open_table(db, table, column_map, where)
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
    show_run(options, summary, report, dry_run=dry_run)
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

    root = given_media_root(media_root)
    check_db(db, existing=False)
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
    from s3stow.cli.archiveshow import show_stats

    options: GlobalOptions = ctx.obj
    media = open_table(db, table, column_map, where)
    try:
        overall, by_type = archive_stats(media)
    finally:
        media.close()
    show_stats(options, overall, by_type)


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
    from s3stow.cli.archiveshow import show_verify
    from s3stow.cli.runsupport import default_ledger
    from s3stow.ledger import open_ledger
    from s3stow.store.s3 import S3Store

    options: GlobalOptions = ctx.obj
    root = given_media_root(media_root)
    if not verify_s3 and not check_local:
        verify_s3 = True
    settings = options.settings(ledger=ledger)
    media = open_table(db, table, column_map, where)
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
    show_verify(options, report)
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
    given_root = given_media_root(media_root)
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
    media = open_table(db, table, column_map, where)
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
