"""Job tables (PostgreSQL): the job, its work items, split uploads, their parts, uploads
left to abort, and the workers serving it.

``jobs`` holds the job's target and its job-wide settings (every worker reads them,
including the split threshold). ``job_items`` has one row per (job, key): the planned
file, its state (``pending``, ``claimed``, ``split``, ``done``, ``failed``, ``gone``),
the lease (owner and expiry, in database time so hosts' clocks do not matter), a
``version`` that every state change increments (each change is a compare-and-set on
the state and version it was decided on), attempts and the last error.
``job_workers`` has one row per worker.

A file at least the job's split threshold becomes one row of ``job_uploads`` (its
multipart upload id, the file's identity when it was split, the item version it
belongs to, restarts, state and a lease for completing or restarting it) and one row
per part in ``job_parts`` (claimed and leased like items, versioned, with the ETag and
checksum S3 acknowledged). An upload that must be aborted (its file changed or was
re-planned, it failed, it was superseded) is written to ``job_orphans`` in the same
transaction, and workers abort it. The state machine is in docs/scale-out.md.

Tables made by an earlier version gain the new columns (``create_schema``); versions
of existing rows start at 0.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
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
    Column("done_by", String(128)),  # the worker that recorded the outcome
    Column("version", Integer, nullable=False, server_default=text("0")),
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
    # parts, completing, restarting, done, failed, abandoned
    Column("state", String(16), nullable=False),
    Column("lease_owner", String(128)),
    Column("lease_until", DateTime(timezone=True)),
    Column("opened_by", String(128), nullable=False),
    Column("error", Text),
    Column("version", Integer, nullable=False, server_default=text("0")),
    Column("item_version", Integer, nullable=False, server_default=text("0")),
    Column("restarts", Integer, nullable=False, server_default=text("0")),
    Column("ctime_ns", BigInteger),
    Column("inode", BigInteger),
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
    Column("version", Integer, nullable=False, server_default=text("0")),
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
    Column("lost", Integer, nullable=False, server_default=text("0")),
    PrimaryKeyConstraint("job", "worker", name="pk_job_workers"),
)

job_orphans = Table(
    "job_orphans",
    metadata,
    Column("upload_id", Text, primary_key=True),
    Column("job", String(255), nullable=False),
    Column("key", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("lease_owner", String(128)),
    Column("lease_until", DateTime(timezone=True)),
)
Index("ix_job_orphans_job", job_orphans.c.job)


def create(engine: Engine) -> None:
    """Create the job tables, or bring older ones up to date (under the schema lock)."""
    from s3stow.ledger.sqlalchemy_backend import create_schema

    create_schema(engine, metadata)
