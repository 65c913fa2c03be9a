"""The ledger's tables as SQLite DDL, generated from ``schema.py``.

A new SQLite ledger is created from these statements with the standard library, so
the first run does not import SQLAlchemy either. ``schema.py`` stays the one place
the tables are declared: regenerate this file after changing it with
``python -m s3stow.ledger.sqlite_ddl > src/s3stow/ledger/sqlite_ddl.py`` (a test
fails while the two differ).
"""

# ruff: noqa: E501  (generated statements are one line each)

from __future__ import annotations

STATEMENTS: tuple[str, ...] = (
    'CREATE TABLE attempts ( id INTEGER NOT NULL, bucket VARCHAR(255) NOT NULL, "key" TEXT NOT NULL, run_id VARCHAR(64) NOT NULL, status VARCHAR(16) NOT NULL, error_class VARCHAR(64), error_message TEXT, at FLOAT NOT NULL, PRIMARY KEY (id) )',
    'CREATE INDEX ix_attempts_key ON attempts (bucket, "key")',
    'CREATE TABLE items ( id INTEGER NOT NULL, bucket VARCHAR(255) NOT NULL, "key" TEXT NOT NULL, source_path TEXT NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, checksum_algorithm VARCHAR(16), checksum VARCHAR(128), etag VARCHAR(128), version_id VARCHAR(1024), status VARCHAR(16) NOT NULL, grp VARCHAR(255), ext VARCHAR(32), attempts INTEGER NOT NULL, error_class VARCHAR(64), error_message TEXT, run_id VARCHAR(64) NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL, store TEXT, PRIMARY KEY (id), CONSTRAINT uq_items_bucket_key UNIQUE (bucket, "key") )',
    'CREATE INDEX ix_items_run ON items (run_id)',
    'CREATE INDEX ix_items_status ON items (status)',
    'CREATE TABLE multipart ( bucket VARCHAR(255) NOT NULL, "key" TEXT NOT NULL, upload_id VARCHAR(1024) NOT NULL, source_path TEXT NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, part_size BIGINT NOT NULL, checksum_algorithm VARCHAR(16), created_at FLOAT NOT NULL, ctime_ns BIGINT, file_id VARCHAR(80), options TEXT, CONSTRAINT pk_multipart PRIMARY KEY (bucket, "key") )',
    'CREATE TABLE parts ( upload_id VARCHAR(1024) NOT NULL, number INTEGER NOT NULL, etag VARCHAR(128) NOT NULL, checksum VARCHAR(128), size BIGINT NOT NULL, CONSTRAINT pk_parts PRIMARY KEY (upload_id, number) )',
    'CREATE TABLE probes ( endpoint TEXT NOT NULL, bucket VARCHAR(255) NOT NULL, name VARCHAR(64) NOT NULL, result VARCHAR(32) NOT NULL, probed_at FLOAT NOT NULL, CONSTRAINT pk_probes PRIMARY KEY (endpoint, bucket, name) )',
    'CREATE TABLE restore_ranges ( download_id VARCHAR(64) NOT NULL, first_byte BIGINT NOT NULL, length BIGINT NOT NULL, digest VARCHAR(128), CONSTRAINT pk_restore_ranges PRIMARY KEY (download_id, first_byte) )',
    'CREATE TABLE restores ( id INTEGER NOT NULL, bucket VARCHAR(255) NOT NULL, "key" TEXT NOT NULL, path TEXT NOT NULL, size BIGINT NOT NULL, mtime_ns BIGINT NOT NULL, etag VARCHAR(128), status VARCHAR(16) NOT NULL, tier VARCHAR(32), checksum VARCHAR(128), download_id VARCHAR(64), range_size BIGINT, attempts INTEGER NOT NULL, error_class VARCHAR(64), error_message TEXT, run_id VARCHAR(64) NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL, PRIMARY KEY (id), CONSTRAINT uq_restores_bucket_key_path UNIQUE (bucket, "key", path) )',
    'CREATE TABLE runs ( run_id VARCHAR(64) NOT NULL, command VARCHAR(32) NOT NULL, bucket VARCHAR(255) NOT NULL, prefix TEXT NOT NULL, sources TEXT NOT NULL, settings TEXT NOT NULL, status VARCHAR(16) NOT NULL, started_at FLOAT NOT NULL, finished_at FLOAT, summary TEXT, PRIMARY KEY (run_id) )',
    'CREATE TABLE s3stow_meta ( name VARCHAR(64) NOT NULL, value TEXT NOT NULL, PRIMARY KEY (name) )',
)  # fmt: skip


def generate() -> str:
    """This module's source, from the SQLAlchemy declaration."""
    from pathlib import Path

    from sqlalchemy.dialects import sqlite
    from sqlalchemy.schema import CreateIndex, CreateTable

    from s3stow.ledger import schema

    dialect = sqlite.dialect()
    statements = []
    for table in schema.metadata.sorted_tables:
        statements.append(" ".join(str(CreateTable(table).compile(dialect=dialect)).split()))
        for index in sorted(table.indexes, key=lambda index: str(index.name)):
            statements.append(" ".join(str(CreateIndex(index).compile(dialect=dialect)).split()))
    source = Path(__file__).read_text(encoding="utf-8")
    head, rest = source.split("STATEMENTS: tuple[str, ...] = (\n", 1)
    tail = rest.split(")  # fmt: skip\n", 1)[1]
    lines = "".join(f"    {statement!r},\n" for statement in statements)
    return f"{head}STATEMENTS: tuple[str, ...] = (\n{lines})  # fmt: skip\n{tail}"


if __name__ == "__main__":
    print(generate(), end="")
