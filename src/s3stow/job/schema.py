"""Job tables (PostgreSQL): the job, its work items, and the workers serving it.

``job_items`` has one row per (job, key): the planned file, its state (``pending``,
``claimed``, ``done``, ``failed``), the lease (owner and expiry, in database time so
hosts' clocks do not matter), attempts and the last error. ``job_workers`` has one
row per worker with its host, pid, heartbeat and counters.

A file large enough to be split (``job work --split-above``) becomes one row of
``job_uploads`` (its multipart upload id, part size, the file's size and mtime when it
was opened, and a completion lease) and one row per part in ``job_parts`` (claimed and
leased like items, with the ETag and checksum S3 acknowledged); its item is in state
``split`` until the upload is completed and verified.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
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

jobs = Table(
    "jobs",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("bucket", String(255), nullable=False),
    Column("prefix", Text, nullable=False),
    Column("settings", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

job_items = Table(
    "job_items",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("job", String(255), nullable=False),
    Column("path", Text, nullable=False),
    Column("rel_path", Text, nullable=False),
    Column("key", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("grp", String(255)),
    Column("state", String(16), nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_until", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("error_class", String(64)),
    Column("error", Text),
    Column("done_by", String(128)),
    UniqueConstraint("job", "key", name="uq_job_items_key"),
)
Index("ix_job_items_claim", job_items.c.job, job_items.c.state, job_items.c.id)

job_uploads = Table(
    "job_uploads",
    metadata,
    Column("item_id", BigInteger, primary_key=True),
    Column("job", String(255), nullable=False),
    Column("upload_id", Text, nullable=False),
    Column("part_size", BigInteger, nullable=False),
    Column("parts_total", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("mtime_ns", BigInteger, nullable=False),
    Column("checksum_algorithm", String(16)),
    Column("state", String(16), nullable=False),  # parts, completing, done, failed
    Column("lease_owner", String(128)),
    Column("lease_until", DateTime(timezone=True)),
    Column("opened_by", String(128), nullable=False),
    Column("error", Text),
)
Index("ix_job_uploads_state", job_uploads.c.job, job_uploads.c.state)

job_parts = Table(
    "job_parts",
    metadata,
    Column("item_id", BigInteger, nullable=False),
    Column("number", Integer, nullable=False),
    Column("job", String(255), nullable=False),
    Column("offset", BigInteger, nullable=False),
    Column("length", BigInteger, nullable=False),
    Column("state", String(16), nullable=False),  # pending, claimed, done
    Column("lease_owner", String(128)),
    Column("lease_until", DateTime(timezone=True)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("etag", Text),
    Column("checksum", Text),
    Column("done_by", String(128)),
    Column("error", Text),
    PrimaryKeyConstraint("item_id", "number", name="pk_job_parts"),
)
Index("ix_job_parts_claim", job_parts.c.job, job_parts.c.state, job_parts.c.item_id)

job_workers = Table(
    "job_workers",
    metadata,
    Column("job", String(255), nullable=False),
    Column("worker", String(128), nullable=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("done", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    PrimaryKeyConstraint("job", "worker", name="pk_job_workers"),
)
