"""Ledger tables, declared once with SQLAlchemy Core for SQLite and PostgreSQL.

``items``: one row per (bucket, key), the latest outcome and the attempt count.
``attempts``: one row per failed attempt, so history survives retries.
``runs``: one row per run, with its settings (never secrets).
``multipart`` / ``parts``: in-progress multipart uploads and their completed
parts, which is what makes a resume send only the missing parts.
``s3stow_meta``: the ``schema_version`` row (``marker.py``: what a ledger is).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

meta = Table(
    "s3stow_meta",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("command", String(32), nullable=False),
    Column("bucket", String(255), nullable=False),
    Column("prefix", Text, nullable=False),
    Column("sources", Text, nullable=False),
    Column("settings", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("summary", Text),
)

items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bucket", String(255), nullable=False),
    Column("key", Text, nullable=False),
    Column("source_path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("checksum_algorithm", String(16)),
    Column("checksum", String(128)),
    Column("etag", String(128)),
    Column("version_id", String(1024)),
    Column("status", String(16), nullable=False),
    Column("grp", String(255)),
    Column("ext", String(32)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error_class", String(64)),
    Column("error_message", Text),
    Column("run_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("bucket", "key", name="uq_items_bucket_key"),
)
Index("ix_items_status", items.c.status)
Index("ix_items_run", items.c.run_id)

attempts = Table(
    "attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bucket", String(255), nullable=False),
    Column("key", Text, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("error_class", String(64)),
    Column("error_message", Text),
    Column("at", Float, nullable=False),
)
Index("ix_attempts_key", attempts.c.bucket, attempts.c.key)

multipart = Table(
    "multipart",
    metadata,
    Column("bucket", String(255), nullable=False),
    Column("key", Text, nullable=False),
    Column("upload_id", String(1024), nullable=False),
    Column("source_path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("part_size", BigInteger, nullable=False),
    Column("checksum_algorithm", String(16)),
    Column("created_at", Float, nullable=False),
    # The file's identity when the upload started (transfer.context.FileIdentity).
    Column("ctime_ns", BigInteger),
    Column("file_id", String(80)),
    PrimaryKeyConstraint("bucket", "key", name="pk_multipart"),
)

parts = Table(
    "parts",
    metadata,
    Column("upload_id", String(1024), nullable=False),
    Column("number", Integer, nullable=False),
    Column("etag", String(128), nullable=False),
    Column("checksum", String(128)),
    Column("size", BigInteger, nullable=False),
    PrimaryKeyConstraint("upload_id", "number", name="pk_parts"),
)
