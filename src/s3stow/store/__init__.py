"""The narrow ObjectStore interface over S3, and its implementations.

``base`` defines the protocol and the values it returns; ``s3`` implements it
with botocore (one class in layers: ``s3routing``, ``s3reads``, ``s3``) and translates
every botocore error into the s3stow tree; ``fastpath`` (with ``fastlearn`` and
``fastconn``) sends the hot requests botocore has taught it;
``dryrun`` refuses writes so a dry run provably sends none; ``layers`` builds the store a run
talks to (S3, observed, dry-run wrapped); ``probes`` asks a server
how it behaves (checksum validation, backslashes in keys).

Imports only the base modules; never the ledger, the stages above or ``cli``.
"""

from s3stow.store.base import ObjectInfo, ObjectStore, PartInfo, PutResult, WriteOptions

__all__ = ["ObjectInfo", "ObjectStore", "PartInfo", "PutResult", "WriteOptions"]
