"""The options the ``s3stow archive`` commands share (the media database, its table,
column map and ``--where`` conditions, the media root), and the values they give:
``given_media_root`` (an empty one refused), ``check_db`` and ``open_table``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from s3stow.errors import ConfigError

if TYPE_CHECKING:
    from s3stow.archive.table import MediaTable

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
# text, so an empty value (an unset variable) is refused (``given_media_root``), never taken
# as Path("") = the current folder (run would archive, init-demo write, restore rebuild)
RootOpt = Annotated[
    str,
    Opt(
        "--media-root",
        help="Root of the media cache (images/, videos/, documents/).",
        metavar="DIR",
    ),
]


def given_media_root(value: str) -> Path:
    from s3stow.localfiles import given_path

    return given_path(value, what="--media-root", fix="name the media cache folder")


def check_db(db: str, *, existing: bool = True) -> None:
    """An empty ``--db`` (an unset variable) is a usage error, not SQLite's "unable to
    open database file" (exit 3) or a traceback; so is a SQLite file that does not exist
    (``existing``: every command but ``init-demo``), which SQLite created empty and the
    command then called "no such table" (exit 3), leaving the file behind."""
    if not db.strip():
        raise ConfigError(
            f"--db is empty ({db!r})",
            hint="give the media database: a SQLite file, a sqlite:/// URL or a "
            "postgresql:// URL (check the variable that should hold it)",
        )
    path = db.removeprefix("sqlite:///") if "://" not in db or db.startswith("sqlite:///") else ""
    if existing and path and not Path(path).expanduser().exists():
        raise ConfigError(
            f"no database at --db {db}",
            hint="check the path (`s3stow archive init-demo --db FILE` creates a demo one)",
        )


def open_table(
    db: str, table: str, column_map: list[str] | None, where: list[str] | None = None
) -> MediaTable:
    """The media table of ``--db``, its columns mapped and its rows filtered."""
    from s3stow.archive.filters import parse_filters
    from s3stow.archive.table import MediaTable, parse_column_map

    check_db(db)
    columns = parse_column_map(column_map or [])
    filters = parse_filters(where or [], columns)
    return MediaTable(db, table=table, columns=columns, filters=filters)


__all__ = [
    "DbOpt",
    "MapOpt",
    "RootOpt",
    "TableOpt",
    "WhereOpt",
    "check_db",
    "given_media_root",
    "open_table",
]
