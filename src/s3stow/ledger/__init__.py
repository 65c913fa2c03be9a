"""The ledger: the durable record of every item, run and multipart upload.

``schema`` holds the tables (one schema for SQLite and PostgreSQL), ``sql``
the ``Ledger`` that reads them and writes outcomes in batches (``rows``: the rows as
values and the statements that write them; ``opening``: a path or URL opened as a
ledger); ``probes`` caches what a server does (``store/probes.py`` asks).

Imports only the base modules (and ``store`` values); never the stages above or ``cli``.
"""

from s3stow.ledger.opening import open_ledger
from s3stow.ledger.rows import LedgerEntry, MultipartState
from s3stow.ledger.sql import Ledger

__all__ = ["Ledger", "LedgerEntry", "MultipartState", "open_ledger"]
