"""The media table, read and updated through SQLAlchemy Core with a column map.

Column names default to the seed's ``post_media`` schema; ``--column-map
KEY=COLUMN`` adapts to another schema. Table and column names are validated
identifiers and always quoted by SQLAlchemy; values are always bound
parameters, never string-built SQL. Rows are streamed by primary key (keyset
pagination), so a table of millions is never loaded at once. ``--where`` filters are
``COLUMN OP VALUE`` triples (``archive/filters.py``), never SQL fragments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, Engine, MetaData, Table, bindparam, create_engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import NullType

from s3stow.archive.filters import RowFilter, bind_filters
from s3stow.errors import ConfigError, LedgerError
from s3stow.ledger.database import database_url
from s3stow.logs import redact

DEFAULT_COLUMNS: dict[str, str] = {
    "id": "media_id",
    "media_type": "media_type",
    "local_file_path": "local_file_path",
    "md5_sum": "md5_sum",
    "file_size": "file_size",
    "mime_type": "mime_type",
    "archive_url": "archive_url",
    "created_at": "created_at",
}
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True, slots=True)
class MediaRow:
    """One row of the media table, in s3stow's terms."""

    id: str
    media_type: str | None
    local_file_path: str | None
    md5_sum: str | None
    file_size: int | None
    mime_type: str | None
    archive_url: str | None
    created_at: datetime | None


def parse_column_map(pairs: Sequence[str]) -> dict[str, str]:
    """``["md5_sum=hash", ...]`` merged over the defaults; names are validated."""
    columns = dict(DEFAULT_COLUMNS)
    for pair in pairs:
        key, sep, column = pair.partition("=")
        if not sep or key not in DEFAULT_COLUMNS:
            raise ConfigError(
                f"--column-map {pair!r} is not KEY=COLUMN with a known KEY",
                hint=f"keys: {', '.join(DEFAULT_COLUMNS)}",
            )
        columns[key] = column
    for column in columns.values():
        if not _IDENTIFIER.match(column):
            raise ConfigError(f"{column!r} is not a plain column name")
    return columns


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class MediaTable:
    """Reads unarchived rows and writes ``archive_url`` back in batches."""

    def __init__(
        self,
        url: str,
        *,
        table: str = "post_media",
        columns: Mapping[str, str] | None = None,
        filters: Sequence[RowFilter] = (),
    ) -> None:
        if not _IDENTIFIER.match(table):
            raise ConfigError(f"{table!r} is not a plain table name")
        self.columns = dict(columns or DEFAULT_COLUMNS)
        self.url = url
        try:
            self.engine: Engine = create_engine(database_url(url))
        except (SQLAlchemyError, ModuleNotFoundError) as exc:
            raise ConfigError(f"cannot use the database {redact(url)}: {exc}") from exc
        self.filters = bind_filters(self.engine, table, filters) if filters else []
        names = set(self.columns.values()) | {f.column for f in self.filters}
        self.table = Table(table, MetaData(), *(Column(name, NullType()) for name in names))
        self.transactions = 0  # committed update batches (tests count them)

    def _col(self, key: str) -> Any:
        return self.table.c[self.columns[key]]

    def _row(self, raw: Any) -> MediaRow:
        m = raw._mapping
        size = m[self.columns["file_size"]]
        return MediaRow(
            id=str(m[self.columns["id"]]),
            media_type=m[self.columns["media_type"]],
            local_file_path=m[self.columns["local_file_path"]],
            md5_sum=(m[self.columns["md5_sum"]] or None),
            file_size=int(size) if size is not None else None,
            mime_type=m[self.columns["mime_type"]],
            archive_url=m[self.columns["archive_url"]],
            created_at=_as_datetime(m[self.columns["created_at"]]),
        )

    def _filtered(self, query: Any) -> Any:
        for f in self.filters:
            query = query.where(f.clause(self.table.c[f.column]))
        return query

    def rows(
        self, *, archived: bool | None, limit: int | None = None, page: int = 500
    ) -> Iterator[MediaRow]:
        """Rows by id that pass the filters; ``archived`` False = archive_url IS NULL,
        None = all."""
        key = self._col("id")
        last: Any = None
        returned = 0
        while True:
            query = self._filtered(select(self.table).order_by(key).limit(page))
            if archived is False:
                query = query.where(self._col("archive_url").is_(None))
            elif archived is True:
                query = query.where(self._col("archive_url").is_not(None))
            if last is not None:
                query = query.where(key > last)
            batch = self._fetch(query)
            if not batch:
                return
            for raw in batch:
                row = self._row(raw)
                yield row
                returned += 1
                if limit is not None and returned >= limit:
                    return
            last = batch[-1]._mapping[self.columns["id"]]

    def _fetch(self, query: Any) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query))
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot read the media table: {redact(str(exc).splitlines()[0])}",
                hint="check --db, --table and --column-map",
            ) from exc

    def set_archive_urls(self, updates: Sequence[tuple[str, str]]) -> None:
        """Write ``(id, url)`` pairs in one transaction."""
        if not updates:
            return
        statement = (
            self.table.update()
            .where(self._col("id") == bindparam("row_id"))
            .values({self.columns["archive_url"]: bindparam("url")})
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(statement, [{"row_id": i, "url": u} for i, u in updates])
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot update archive_url: {redact(str(exc).splitlines()[0])}",
                hint="check that the database is writable",
            ) from exc
        self.transactions += 1

    def counts(self) -> list[tuple[str, int, int]]:
        """``(media_type, total, archived)`` per media type, aggregated in SQL."""
        media_type = self._col("media_type")
        archived = func.count(self._col("archive_url"))
        query = select(media_type, func.count(), archived).group_by(media_type).order_by(media_type)
        query = self._filtered(query.select_from(self.table))
        return [(str(t or "(none)"), int(n), int(a)) for t, n, a in self._fetch(query)]

    def close(self) -> None:
        self.engine.dispose()
