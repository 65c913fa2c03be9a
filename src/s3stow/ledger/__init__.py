"""The ledger: the durable record of every item, run and multipart upload.

``schema`` holds the tables (one schema for SQLite and PostgreSQL), ``sql``
the ``Ledger`` that reads them and writes outcomes in batches; ``probes`` caches
what a server does (``store/probes.py`` asks).

Imports only the base modules (and ``store`` values); never the stages above or ``cli``.
"""

from s3stow.ledger.sql import Ledger, LedgerEntry, MultipartState, open_ledger

__all__ = ["Ledger", "LedgerEntry", "MultipartState", "open_ledger"]
