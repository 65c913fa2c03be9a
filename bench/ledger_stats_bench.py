"""How fast ``s3stow stats`` aggregates a large ledger (default: 1,000,000 items).

    python bench/ledger_stats_bench.py [--rows 1000000]

Builds a SQLite ledger with the given number of items spread over groups,
extensions and statuses (bulk inserts, not the upload path), then times
``totals_by`` for each dimension and the failure summary.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from s3stow.ledger import open_ledger, schema
from s3stow.ledger.queries import failures_by_error, totals_by


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = open_ledger(str(Path(tmp) / "big.db"))
        start = time.perf_counter()
        statuses = ["done"] * 17 + ["failed", "changed", "done"]
        batch = []
        with ledger.engine.begin() as conn:
            for index in range(args.rows):
                status = statuses[index % len(statuses)]
                batch.append(
                    {
                        "bucket": "b",
                        "key": f"g{index % 50}/f{index}.{('jpg', 'png', 'xml')[index % 3]}",
                        "source_path": f"/d/{index}",
                        "size": index % 4096,
                        "mtime_ns": index,
                        "status": status,
                        "grp": f"g{index % 50}",
                        "ext": ("jpg", "png", "xml")[index % 3],
                        "attempts": 1,
                        "error_class": "SlowDown" if status == "failed" else None,
                        "run_id": f"r{index % 4}",
                        "created_at": 0.0,
                        "updated_at": 0.0,
                    }
                )
                if len(batch) == 50_000:
                    conn.execute(insert(schema.items), batch)
                    batch.clear()
            if batch:
                conn.execute(insert(schema.items), batch)
        print(f"built {args.rows:,} rows in {time.perf_counter() - start:.1f}s")
        for by in ("status", "group", "ext", "run"):
            start = time.perf_counter()
            groups = totals_by(ledger, by)
            print(
                f"stats --by {by:6}: {len(groups):3} groups in {time.perf_counter() - start:.2f}s"
            )
        start = time.perf_counter()
        failures_by_error(ledger)
        print(f"failures by error class: {time.perf_counter() - start:.2f}s")
        ledger.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
