"""Distributed jobs: many workers on many hosts share one job through PostgreSQL.

``schema`` holds the job tables; ``enqueue`` walks a job's sources into a plan,
``planning`` (its upserts); ``queue`` claims (``FOR UPDATE SKIP LOCKED``), extends
leases and records outcomes, every change a compare-and-set on a version; ``db`` runs
each step through connection failures; ``worker`` runs the claim-upload-record loop
through the same engine as ``upload``, with ``ledger`` holding outcomes for the queue's
transaction; ``splitqueue``, ``completions``, ``orphans`` and ``split`` share one large
file's multipart upload between workers. The state machine is in docs/scale-out.md.

Runs on the engine (``transfer``) and the ledger; never imports ``cli``.
"""
