"""Restore: objects back to local files, verified and resumable (``Restorer``).

``paths`` (keys to safe local paths), ``plan`` (items and decisions), ``check``
(verification tiers), ``download`` (one GET or resumable ranged GETs), ``glacier``
(archived objects), ``worker`` (one item to its outcome), ``engine`` (``Restorer``),
``report`` (``RestoreSummary``).

Uses the store, the ledger and ``plan``'s selection and proof; never ``transfer``'s
engine internals or ``cli``.
"""
