"""The ledger's cache of server behaviour probes (the ``probes`` table).

One row per endpoint, bucket and probe (``store/probes.py`` sends them): the answer
and when it was found out. An answer older than ``MAX_AGE`` (a day) is not used, so a
server upgraded or reconfigured is probed again. The cache is an optimisation only:
a ledger that cannot be read or written here is logged at debug level and the
probe's caller goes on as if nothing were cached (a failing ledger is reported by
the item writes that matter).
"""

from __future__ import annotations

import logging
import time

from s3stow.ledger.sql import Ledger
from s3stow.logs import redact

log = logging.getLogger(__name__)

MAX_AGE = 24 * 3600.0
_READ = (
    "SELECT result, probed_at FROM probes"
    " WHERE endpoint = :endpoint AND bucket = :bucket AND name = :name"
)
_WRITE = (
    "INSERT INTO probes (endpoint, bucket, name, result, probed_at)"
    " VALUES (:endpoint, :bucket, :name, :result, :probed_at)"
    " ON CONFLICT (endpoint, bucket, name)"
    " DO UPDATE SET result = excluded.result, probed_at = excluded.probed_at"
)


def cached(
    ledger: Ledger,
    endpoint: str,
    bucket: str,
    name: str,
    *,
    max_age: float = MAX_AGE,
    now: float | None = None,
) -> str | None:
    """The answer of probe ``name`` for ``endpoint`` and ``bucket`` if it is younger
    than ``max_age`` seconds, else ``None``."""
    params = {"endpoint": redact(endpoint), "bucket": bucket, "name": name}
    try:
        with ledger.database.read() as session:
            row = next(session.execute(_READ, params), None)
    except ledger.database.errors as exc:
        log.debug("probe cache not read: %s", exc)
        return None
    if row is None:
        return None
    result, probed_at = str(row[0]), float(row[1])
    age = (time.time() if now is None else now) - probed_at
    return result if 0 <= age < max_age else None


def remember(
    ledger: Ledger,
    endpoint: str,
    bucket: str,
    name: str,
    result: str,
    *,
    now: float | None = None,
) -> None:
    """Record the answer of probe ``name`` for ``endpoint`` and ``bucket``."""
    params = {
        "endpoint": redact(endpoint),
        "bucket": bucket,
        "name": name,
        "result": result,
        "probed_at": time.time() if now is None else now,
    }
    try:
        with ledger.database.write() as session:
            session.execute(_WRITE, params)
    except ledger.database.errors as exc:
        log.debug("probe cache not written: %s", exc)
