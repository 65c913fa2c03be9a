"""The options every run command shares, each defined once (the ledger, requests in
flight and how far they may grow, the status file and its interval), so their help
and defaults cannot drift apart between ``upload``, ``restore``, ``retry``, ``watch``,
``archive`` and the rest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LedgerOpt = Annotated[
    str | None,
    typer.Option(
        help="The ledger: a SQLite file or a postgresql:// URL.",
        metavar="FILE|URL",
        show_default="ledger.db in the user state directory",
    ),
]
ConcurrencyOpt = Annotated[
    str | None,
    typer.Option(
        help="Requests in flight: a number, or cpu*K for K per CPU.",
        metavar="N",
        show_default="16",
    ),
]
MaxConcurrencyOpt = Annotated[
    str | None,
    typer.Option(
        help="Let requests in flight grow up to N while files/s rises with them "
        "(long round trips); N <= --concurrency: no growth.",
        metavar="N",
        show_default="16 x concurrency, at most 256",
    ),
]
StatusJsonOpt = Annotated[
    Path | None,
    typer.Option(
        help="Keep a JSON status file here (read it with `s3stow status`).", metavar="FILE"
    ),
]
StatusIntervalOpt = Annotated[
    float | None,
    typer.Option(help="Seconds between status file writes.", metavar="SECONDS", show_default="5"),
]
