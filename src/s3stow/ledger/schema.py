"""Ledger tables, declared once with SQLAlchemy Core for SQLite and PostgreSQL.

``items``: one row per (bucket, key), the latest outcome, the attempt count, and the
S3 (``store``) that outcome was reached against: a ``done`` row proves nothing about
the same bucket name on another endpoint.
``attempts``: one row per failed attempt, so history survives retries.
``runs``: one row per run, with its settings (never secrets).
``multipart`` / ``parts``: in-progress multipart uploads and their completed
parts, which is what makes a resume send only the missing parts.
``s3stow_meta``: the ``schema_version`` row (``marker.py``: what a ledger is).
``restores`` / ``restore_ranges``: one row per object restored to a local path (its
outcome, and the state of an unfinished ranged download) and the ranges of that
download already written, which is what makes a resumed restore fetch only the rest.
``probes``: what a server does where s3stow's checks depend on it (does it refuse a
wrong checksum, does it keep a ``\\`` in a key), per endpoint and bucket, with when it
was found out (``ledger/probes.py``).
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
    # Which S3 the row's outcome was reached against (``ObjectStore.store_id``: the
    # configured endpoint, or ``aws:<partition>``); NULL in rows from before it existed.
    Column("store", Text),
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
    # The file's identity when the upload started (localfiles.FileIdentity.file_id).
    Column("ctime_ns", BigInteger),
    Column("file_id", String(80)),
    # What the upload was created with beyond the bytes (content type, metadata, SSE,
    # storage class: transfer/multipart.py, ``upload_options``); NULL in older ledgers.
    Column("options", Text),
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

restores = Table(
    "restores",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("bucket", String(255), nullable=False),
    Column("key", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),  # the restored file's, once done
    Column("etag", String(128)),
    Column("status", String(16), nullable=False),  # downloading | done | failed
    Column("tier", String(32)),  # what proved the file: checksum, sha256-metadata, ...
    Column("checksum", String(128)),
    Column("download_id", String(64)),  # an unfinished ranged download, else NULL
    Column("range_size", BigInteger),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error_class", String(64)),
    Column("error_message", Text),
    Column("run_id", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("bucket", "key", "path", name="uq_restores_bucket_key_path"),
)

restore_ranges = Table(
    "restore_ranges",
    metadata,
    Column("download_id", String(64), nullable=False),
    Column("first_byte", BigInteger, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("digest", String(128)),  # the range's checksum, where the proof combines
    PrimaryKeyConstraint("download_id", "first_byte", name="pk_restore_ranges"),
)

probes = Table(
    "probes",
    metadata,
    Column("endpoint", Text, nullable=False),  # botocore's endpoint URL
    Column("bucket", String(255), nullable=False),
    Column("name", String(64), nullable=False),  # checksum-validation | backslash-keys
    Column("result", String(32), nullable=False),  # validates | stores | keeps | folds
    Column("probed_at", Float, nullable=False),
    PrimaryKeyConstraint("endpoint", "bucket", "name", name="pk_probes"),
)
