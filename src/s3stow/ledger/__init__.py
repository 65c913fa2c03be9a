"""The ledger: the durable record of every item, run and multipart upload.

``schema`` holds the tables (one schema for SQLite and PostgreSQL), ``sql``
the ``Ledger`` that reads them and writes outcomes in batches.
"""

from s3stow.ledger.sql import Ledger, LedgerEntry, MultipartState, open_ledger

__all__ = ["Ledger", "LedgerEntry", "MultipartState", "open_ledger"]
