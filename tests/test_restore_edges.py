"""``s3stow restore`` at its edges, from outside as a user runs it against real local
servers: objects written by other tools with odd metadata or odd names, and a stop
asked for while a large object's ranges wait for their turn."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.conftest import CliResult, ledger_rows


def _results(result: CliResult) -> dict[str, dict[str, Any]]:
    found = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") in ("result", "skip"):
                found[event["key"]] = event
    return found


def test_an_mtime_past_what_the_ledger_holds_restores_and_is_recorded(
    cli, s3, bucket, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    # another tool (or a clock gone wrong) stored an mtime past 2262, the last moment a
    # signed 64-bit count of nanoseconds holds: the file takes it, and the ledger's
    # record of it must not end the run with an OverflowError (exit 3, nothing after it)
    s3.put_object(
        Bucket=bucket, Key="p/far.txt", Body=b"far", Metadata={"mtime": "2400-01-01T00:00:00Z"}
    )
    s3.put_object(Bucket=bucket, Key="p/near.txt", Body=b"near")
    args = ("--json", "restore", f"s3://{bucket}/p", "out", "--ledger", "l.db")
    first = cli(*args)
    assert first.code == 0, first.output
    assert "OverflowError" not in first.output
    results = _results(first)
    assert {key: event["status"] for key, event in results.items()} == {
        "p/far.txt": "done",
        "p/near.txt": "done",
    }
    assert (tmp_path / "out" / "far.txt").read_bytes() == b"far"
    recorded = ledger_rows(tmp_path / "l.db", "SELECT key, status FROM restores ORDER BY key")
    assert recorded == [("p/far.txt", "done"), ("p/near.txt", "done")]
    again = cli(*args)  # kept: the file is still the object's
    assert again.code == 0, again.output
    skipped = {key: event.get("reason") for key, event in _results(again).items()}
    assert skipped == {"p/far.txt": "local-match", "p/near.txt": "ledger-done"}
    assert os.stat(tmp_path / "out" / "far.txt").st_size == 3
