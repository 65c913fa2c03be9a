"""``s3stow verify SRC s3://BUCKET/PREFIX``: prove what is in S3, and report it."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from s3stow.cli.app import GlobalOptions, output_console
from s3stow.cli.helptext import examples
from s3stow.cli.keyoptions import KeyOptions, selection_options
from s3stow.cli.runoptions import LedgerOpt
from s3stow.errors import ConfigError, ExitCode
from s3stow.models import PlannedUpload, Target
from s3stow.plan.keys import parse_target

if TYPE_CHECKING:
    from s3stow.config import Settings
    from s3stow.ledger import Ledger
    from s3stow.tools.verify import Finding


Opt = typer.Option


@selection_options
def verify(
    ctx: typer.Context,
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="SRC... s3://BUCKET[/PREFIX]",
            help="The local files or directories, then the bucket and prefix they were "
            "uploaded to.",
        ),
    ],
    ledger: LedgerOpt = None,
    deep: Annotated[
        bool, Opt("--deep", help="Re-read local files and compare checksums with S3's.")
    ] = False,
    limit: Annotated[
        int | None,
        Opt(help="Check at most N local files (and skip the orphan check).", metavar="N"),
    ] = None,
    report: Annotated[
        Path | None, Opt(help="Write every finding to FILE (.csv or .jsonl).", metavar="FILE")
    ] = None,
    fix: Annotated[
        bool,
        Opt("--fix", help="Re-upload missing, mismatched and changed items through the engine."),
    ] = False,
    *,
    keys: KeyOptions,
) -> None:
    """Classify every path: ok, missing, mismatched, gone, orphan, changed; exit 1 if any."""
    from s3stow.cli.runsupport import default_ledger
    from s3stow.cli.upload import source_paths
    from s3stow.ledger import open_ledger
    from s3stow.localfiles import output_problem
    from s3stow.store.s3 import S3Store
    from s3stow.tools.verify import OK, ordered, verify_tree

    options: GlobalOptions = ctx.obj
    if len(paths) < 2:
        raise ConfigError(
            "verify needs at least one source and a destination",
            hint="s3stow verify ./dir s3://bucket/prefix",
        )
    *given, destination = paths
    sources = source_paths(given, command="verify")
    target = parse_target(destination)
    if limit is not None and limit < 0:  # it checked nothing: "nothing to check", exit 0
        raise ConfigError(f"--limit {limit} is below 0", hint="give 0 or more files to check")
    problem = None if report is None else output_problem(report)
    if problem is not None:  # known now, not after the whole check ("unexpected ...")
        raise ConfigError(
            f"cannot write the report {report}: {problem}",
            hint="give --report a file name (.csv or .jsonl) in a folder that can be written",
        )
    settings = options.settings(ledger=ledger, **keys.flags())
    db = open_ledger(settings.ledger or default_ledger())
    try:
        store = S3Store.from_settings(settings)
        store.head_bucket(target.bucket)
        chosen: list[str | None] = []
        findings = ordered(
            list(
                verify_tree(
                    settings,
                    target,
                    sources,
                    store=store,
                    ledger=db,
                    deep=deep,
                    limit=limit,
                    on_timestamp=chosen.append,
                )
            )
        )
        if chosen and not options.json:
            output_console().print(
                f"timestamp folder: {chosen[0]} (the newest in S3 or the ledger; "
                "--custom-timestamp picks another)"
                if chosen[0]
                else "timestamp folder: none found under the prefix (everything is missing)",
                markup=False,
            )
        counts = Counter(f.kind for f in findings)
        if report is not None:
            _write_report(report, findings)
        _print(findings, counts, options, deep=deep)
        fixed = _fix(findings, settings, db, target.bucket, options) if fix else False
    finally:
        db.close()
    # --fix that fixed every problem it found ends well; anything left is exit 1
    left = [f for f in findings if f.kind != OK and not (fixed and _fixable(f))]
    if left:
        raise typer.Exit(int(ExitCode.SOME_FAILED))


# The key column is as wide as its longest key up to this: one long key does not pad
# every row (on a terminal it wraps within it; piped it is whole and shifts its row).
KEY_WIDTH = 60


def _print(
    findings: list[Finding], counts: Counter[str], options: GlobalOptions, *, deep: bool
) -> None:
    from s3stow.tools.verify import OK

    if options.json:
        print(
            json.dumps(
                {
                    "summary": dict(counts),
                    "deep": deep,
                    "findings": [
                        {
                            "key": f.key,
                            "path": f.path,
                            "class": f.kind,
                            "tier": f.tier,
                            "detail": f.detail,
                        }
                        for f in findings
                    ],
                }
            )
        )
        return
    console = output_console()
    problems = [f for f in findings if f.kind != OK]
    if problems:
        from s3stow.report.console import aligned_lines
        from s3stow.report.console import table as new_table

        header = ("class", "key", "tier", "detail")
        rows = [(f.kind, f.key, f.tier, f.detail) for f in problems[:200]]
        if console.is_terminal:  # a long key wraps in its column, never cut short
            table = new_table(*header)
            table.columns[1].max_width = KEY_WIDTH
            table.columns[1].overflow = "fold"
            for row in rows:
                table.add_row(*row)
            console.print(table)
        else:  # each row whole on its line; a long key shifts its own row only
            for line in aligned_lines(header, rows, caps={1: KEY_WIDTH}):
                console.out(line, highlight=False)
        if len(problems) > 200:
            console.print(f"... and {len(problems) - 200} more (see --report)")
    tiers = Counter(f.tier for f in findings if f.kind == OK)
    console.print(", ".join(f"{n} {k}" for k, n in counts.most_common()) or "nothing to check")
    if tiers:
        console.print("ok, decided by: " + ", ".join(f"{t} {n}" for t, n in tiers.items()))


def _write_report(path: Path, findings: list[Finding]) -> None:
    rows = [
        {"key": f.key, "path": f.path, "class": f.kind, "tier": f.tier, "detail": f.detail}
        for f in findings
    ]
    with path.open("w", encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["key"])
            writer.writeheader()
            writer.writerows(rows)
        else:
            handle.writelines(json.dumps(row) + "\n" for row in rows)


def _fix(
    findings: list[Finding], settings: Settings, db: Ledger, bucket: str, options: GlobalOptions
) -> bool:
    """Re-upload what can be fixed, forced (the ledger may wrongly say done); whether
    every fixable finding is now fixed."""
    from s3stow.cli.runsupport import observers_for
    from s3stow.transfer.engine import Uploader

    items = [PlannedUpload(f.source, bucket, f.key) for f in findings if f.source and _fixable(f)]
    if not items:
        return True
    forced = settings.replace(force=True)
    uploader = Uploader(forced, ledger=db, observers=observers_for(options, forced))
    summary = uploader.upload_planned(items, Target(bucket, ""), command="verify-fix")
    if not options.json:
        Console(highlight=False).print(
            f"fix: {summary.uploaded} re-uploaded, {summary.failed + summary.changed} still failing"
        )
    if uploader.fatal_error is not None:
        raise uploader.fatal_error
    return summary.ok and summary.uploaded + summary.skipped == len(items)


def _fixable(finding: Finding) -> bool:
    """Whether ``--fix`` re-uploads it: a local file whose object is missing or differs."""
    from s3stow.tools.verify import FIXABLE

    return finding.kind in FIXABLE and finding.source is not None


def register(app: typer.Typer) -> None:
    app.command(
        context_settings={"allow_interspersed_args": True},
        epilog=examples(
            (
                "Prove a folder is in S3 (sizes and recorded checksums; exit 1 on any problem):",
                "s3stow verify ./photos s3://my-bucket/photos",
            ),
            (
                "Re-read every file and compare its checksum with S3's, then upload what differs:",
                "s3stow verify ./photos s3://my-bucket/photos --deep --fix",
            ),
            (
                "Keep every finding in a CSV file:",
                "s3stow verify ./photos s3://my-bucket/photos --report findings.csv",
            ),
        ),
    )(verify)
