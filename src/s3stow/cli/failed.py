"""``retry --list`` and ``retry --forget``: the ledger's failed uploads, shown by error
class or dropped from the ledger (``--run`` and ``--error-class`` select them alike).

An item a retry found without its local file (``SourceGone``) is not retried again
while the file stays gone, so neither list shows it unless ``--error-class`` names it:
a line counts them and says how to drop them.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from s3stow.cli.app import GlobalOptions
from s3stow.units import plural

if TYPE_CHECKING:
    from rich.console import Console

    from s3stow.ledger import Ledger


def gone_line(count: int) -> str:
    return (
        f"{plural(count, 'item')} whose local file a retry found gone "
        f"{'is' if count == 1 else 'are'} left out (SourceGone, said once): "
        "`s3stow retry --forget --error-class SourceGone` drops them from the ledger"
    )


def list_failures(
    ledger: Ledger,
    *,
    runs: list[str] | None,
    classes: list[str] | None,
    options: GlobalOptions,
    console: Console,
) -> None:
    from s3stow.plan.retries import category, failed_items, still_gone

    counts: Counter[tuple[str, str]] = Counter()
    latest: dict[tuple[str, str], str] = {}
    attempts: defaultdict[tuple[str, str], int] = defaultdict(int)
    gone = 0
    for entry in failed_items(ledger, run_ids=runs, error_classes=classes):
        if classes is None and still_gone(entry):  # not retried: not listed (counted)
            gone += 1
            continue
        group = (category(entry.error_class), entry.error_class or "?")
        counts[group] += 1
        attempts[group] += entry.attempts
        latest[group] = entry.error_message or ""
    rows = [
        {
            "category": c,
            "error_class": e,
            "count": n,
            "attempts": attempts[(c, e)],
            "latest_message": latest[(c, e)],
        }
        for (c, e), n in counts.most_common()
    ]
    from s3stow.ledger.restores import RestoreLedger

    restores = sum(  # not retry's to send
        RestoreLedger(ledger).failed_count(run_id=run)
        for run in (runs if runs is not None else [None])
    )
    if options.json:
        listed = {"failed": sum(counts.values()), "by_error": rows, "restores": restores}
        print(json.dumps(listed | {"gone": gone}))
        return
    if restores:
        console.print(
            f"{plural(restores, 'failed restore')} in the ledger, not listed: `retry` sends "
            "uploads only; run the same `s3stow restore` command again (its --failures-file and "
            "summary say why each failed)",
            markup=False,
        )
    if gone:
        console.print(gone_line(gone), markup=False)
    if not rows:
        if classes or runs:  # said of the selection, not of the ledger (a mistyped class)
            others = sorted(
                {
                    e.error_class or "?"
                    for e in failed_items(ledger, run_ids=runs, error_classes=None)
                }
                - set(classes or [])
            )
            console.print(
                "no failed upload "
                + (f"of class {', '.join(classes)}" if classes else "")
                + (" in " if classes and runs else "")
                + ("the run given" if runs else "")
                + (f" (failed classes: {', '.join(others)})" if others else ""),
                markup=False,
            )
            return
        console.print(
            "nothing is failed in the ledger" if not restores and not gone else "no failed upload"
        )
        return
    from s3stow.report.console import table as new_table

    table = new_table(
        "category",
        "error class",
        "items",
        "attempts",
        "latest message",
        numeric=("items", "attempts"),
    )
    for row in rows:
        table.add_row(
            str(row["category"]),
            str(row["error_class"]),
            str(row["count"]),
            str(row["attempts"]),
            str(row["latest_message"])[:80],
        )
    console.print(table)
    still = plural(sum(counts.values()), "item")
    console.print(f"{still} still failed; `s3stow retry` re-attempts them")


def forget_failures(
    ledger: Ledger,
    *,
    runs: list[str] | None,
    classes: list[str] | None,
    dry_run: bool,
    options: GlobalOptions,
    console: Console,
) -> None:
    """Drop the selected failed/changed items from the ledger (``--dry-run``: list them,
    drop nothing): each is listed on a pipe, with -v or --dry-run, the counts always.
    Nothing is sent; the ``attempts`` history keeps their failures."""
    from s3stow.plan.retries import failed_items
    from s3stow.report.console import for_terminal

    chosen = list(failed_items(ledger, run_ids=runs, error_classes=classes))
    forgotten = 0 if dry_run else ledger.forget(chosen)
    by_class = Counter(entry.error_class or "?" for entry in chosen)
    if options.json:
        items = [
            {
                "bucket": e.bucket,
                "key": e.key,
                "path": e.source_path,
                "error_class": e.error_class,
                "run_id": e.run_id,
            }
            for e in chosen
        ]
        done = {"selected": len(chosen), "forgotten": forgotten, "dry_run": dry_run}
        print(json.dumps({"event": "forget", **done, "by_error": dict(by_class), "items": items}))
        return
    if options.quiet and not dry_run:  # -q: nothing on success
        return
    if not chosen:
        console.print("nothing to forget: no failed item is selected")
        return
    if dry_run or options.verbose > 0 or not console.is_terminal:
        for e in chosen:
            what = e.key if e.key.startswith("/") else f"s3://{e.bucket}/{e.key}"
            shown = for_terminal(what)
            line = f"{'would forget' if dry_run else 'forgot'}  {e.error_class or '?'}  {shown}"
            console.print(line, markup=False)
    counts = ", ".join(f"{n} {name}" for name, n in by_class.most_common())
    if dry_run:
        console.print(
            f"would forget {plural(len(chosen), 'failed item')} ({counts}); nothing was "
            "changed (--dry-run)",
            markup=False,
        )
    else:
        console.print(
            f"forgot {plural(forgotten, 'failed item')} ({counts}): `retry` and `retry "
            "--list` no longer show them; their failures stay in the ledger's history",
            markup=False,
        )
