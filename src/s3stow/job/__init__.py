"""Distributed jobs: many workers on many hosts share one job through PostgreSQL.

``schema`` holds the job tables; ``queue`` plans, claims (``FOR UPDATE SKIP
LOCKED``), extends leases and records outcomes; ``worker`` runs the claim-upload-
record loop through the same engine and ledger as ``upload``.
"""
