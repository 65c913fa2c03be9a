"""``s3stow bucket setup|check``: prepare a bucket in one step, or inspect it."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from s3stow.cli.app import GlobalOptions, output_console
from s3stow.cli.helptext import examples
from s3stow.errors import BucketMissingError, ConfigError, ExitCode
from s3stow.plan.keys import normalise_prefix, validate_bucket
from s3stow.units import format_size, plural

if TYPE_CHECKING:
    from s3stow.tools.bucket import Change

bucket_app = typer.Typer(
    rich_markup_mode=None,  # help texts show s3://BUCKET[/PREFIX] literally
    help="Create and configure a bucket, or inspect one.",
    no_args_is_help=True,
    epilog=examples(
        ("Create and configure a bucket:", "s3stow bucket setup my-archive --versioning"),
        ("What a bucket holds and how it is set up:", "s3stow bucket check my-archive"),
    ),
)
Opt = typer.Option


@bucket_app.command(
    "setup",
    epilog=examples(
        (
            "Create a bucket with versioning, aborting stale multipart uploads after 7 days:",
            "s3stow bucket setup my-archive --region eu-west-1 --versioning",
        ),
        (
            "Move objects to Glacier after 30 days; only show what would change:",
            "s3stow bucket setup my-archive --glacier-after 30 --dry-run",
        ),
        (
            "Exit 1 if the bucket drifted from these settings:",
            "s3stow bucket setup my-archive --versioning --check-only",
        ),
    ),
)
def setup(
    ctx: typer.Context,
    bucket: Annotated[str, typer.Argument(help="The bucket's name.", metavar="BUCKET")],
    versioning: Annotated[
        bool | None,
        Opt("--versioning/--no-versioning", help="Keep every version of each object."),
    ] = None,
    glacier_after: Annotated[
        int | None,
        Opt(help="Move objects to the transition storage class after DAYS.", metavar="DAYS"),
    ] = None,
    storage_class_transition: Annotated[
        str, Opt(help="The storage class objects move to.", metavar="CLASS")
    ] = "GLACIER",
    expire_after: Annotated[
        int | None, Opt(help="Delete objects after DAYS.", metavar="DAYS")
    ] = None,
    abort_incomplete_after: Annotated[
        int | None,
        Opt(help="Abort multipart uploads left incomplete for DAYS.", metavar="DAYS"),
    ] = 7,
    encryption: Annotated[
        str | None, Opt(help="Default encryption of new objects.", metavar="AES256|aws:kms")
    ] = None,
    kms_key_id: Annotated[
        str | None, Opt(help="KMS key for --encryption aws:kms.", metavar="KEY_ID")
    ] = None,
    block_public_access: Annotated[
        bool,
        Opt(
            "--block-public-access/--no-block-public-access",
            help="Block every kind of public access.",
        ),
    ] = True,
    prefix: Annotated[
        str,
        Opt(help="Apply the lifecycle rules to this prefix only.", metavar="PREFIX"),
    ] = "",
    check_only: Annotated[
        bool, Opt("--check-only", help="Change nothing; exit 1 on drift.")
    ] = False,
    dry_run: Annotated[bool, Opt("--dry-run", help="Show what would change.")] = False,
) -> None:
    """Create the bucket if missing and bring each setting to what was asked."""
    from s3stow.store.client import make_client
    from s3stow.tools.bucket import BucketAdmin, BucketSpec

    options: GlobalOptions = ctx.obj
    validate_bucket(bucket)
    if encryption not in (None, "AES256", "aws:kms"):
        raise ConfigError(f"--encryption {encryption!r} is not AES256 or aws:kms")
    if kms_key_id and encryption != "aws:kms":
        raise ConfigError("--kms-key-id needs --encryption aws:kms")
    settings = options.settings()  # --region (global) is where the bucket is created
    spec = BucketSpec(
        region=settings.region,
        versioning=versioning,
        transition_after=glacier_after,
        transition_class=storage_class_transition,
        expire_after=expire_after,
        abort_incomplete_after=abort_incomplete_after,
        prefix=_prefix(prefix),
        encryption=encryption,
        kms_key_id=kms_key_id,
        block_public_access=block_public_access,
    )
    admin = BucketAdmin(make_client(settings), bucket)
    exists, rows, rules = admin.plan_setup(spec)
    drift = [c for c in rows if c.differs]
    applied = not (check_only or dry_run) and bool(drift)
    wrong: list[Change] = []
    if applied:
        rows = admin.apply(spec, rows, rules)
        wrong = admin.verify_applied(rows)  # each change read back
    changed = [c for c in rows if c.differs]
    unsupported = [c.setting for c in rows if c.unsupported]
    probe = "skipped"
    if not (check_only or dry_run):
        admin.write_probe(spec.prefix)
        probe = "ok: put, read back, deleted"
    if options.json:
        print(
            json.dumps(
                {
                    "bucket": bucket,
                    "existed": exists,
                    "changed": applied and bool(changed),
                    "drift": bool(drift),
                    "unsupported": unsupported,
                    "not_as_asked": [c.setting for c in wrong],
                    "write_test": probe,
                    "settings": [
                        {
                            "setting": c.setting,
                            "before": c.before,
                            "after": c.after,
                            "differs": c.differs,
                            "state": c.state,
                        }
                        for c in rows
                    ],
                }
            )
        )
    else:
        console = output_console()
        from s3stow.report.console import table as new_table

        table = new_table("setting", "before", "after" if not check_only else "wanted", "")
        from rich.text import Text

        style = {"changes": "yellow", "unsupported": "dim"}
        for row in rows:
            state = Text(row.state, style=style.get(row.state, ""))
            table.add_row(row.setting, row.before, row.after, state)
        console.print(table)
        if unsupported:
            console.print(
                f"not implemented by this server: {', '.join(unsupported)} (left as "
                + ("they are)" if check_only or dry_run else "they are; the rest is applied)")
            )
        if check_only:
            console.print(
                "bucket matches"
                if not drift
                else f"{plural(len(drift), 'setting')} differing from what was asked"
            )
        elif dry_run:
            console.print(f"dry run: {plural(len(drift), 'setting')} would change")
        else:
            console.print(
                "nothing to change: already as asked"
                if not changed
                else f"{plural(len(changed), 'setting')} changed"
            )
            for row in wrong:
                console.print(
                    f"[red]{row.setting} reads {row.before!r} after the change, not "
                    f"{row.after!r}[/]: the server accepted it but did not apply it"
                )
            console.print(f"write test: {probe}")
    if (check_only and drift) or wrong:
        raise typer.Exit(int(ExitCode.SOME_FAILED))


@bucket_app.command(
    "check",
    epilog=examples(
        (
            "Region, settings, size and incomplete uploads of a bucket:",
            "s3stow bucket check my-archive",
        ),
        (
            "Abort the multipart uploads left incomplete for more than 2 days:",
            "s3stow bucket check my-archive --abort-older-than 2",
        ),
    ),
)
def check(
    ctx: typer.Context,
    bucket: Annotated[str, typer.Argument(help="The bucket's name.", metavar="BUCKET")],
    prefix: Annotated[
        str, Opt(help="Count the objects under this prefix only.", metavar="PREFIX")
    ] = "",
    abort_older_than: Annotated[
        float | None,
        Opt(help="Abort the incomplete multipart uploads older than DAYS.", metavar="DAYS"),
    ] = None,
) -> None:
    """Show the bucket's region, settings, contents and incomplete uploads."""
    from s3stow.store.client import make_client
    from s3stow.tools.bucket import UNSUPPORTED, BucketAdmin, Unsupported

    options: GlobalOptions = ctx.obj
    validate_bucket(bucket)
    if abort_older_than is not None and not abort_older_than >= 0:  # NaN too
        raise ConfigError(
            f"--abort-older-than {abort_older_than:g} is not a number of days",
            hint="give 0 or more: --abort-older-than 7 aborts the uploads started over "
            "7 days ago (0: every one)",
        )
    scope = _prefix(prefix)  # a usage error before any request
    admin = BucketAdmin(make_client(options.settings()), bucket)
    if not admin.exists():
        raise BucketMissingError(  # exit 3, as every command meeting a missing bucket
            f"bucket {bucket} does not exist", hint=f"create it with `s3stow bucket setup {bucket}`"
        )
    objects, size = admin.inventory(scope)
    uploads = admin.incomplete_uploads(scope)
    aborted = []
    if abort_older_than is not None:
        for key, upload_id, age in uploads:
            if age >= abort_older_than:
                admin.abort_upload(key, upload_id)
                aborted.append(key)
    try:
        lifecycle: list[str] | str = [str(r.get("ID", "?")) for r in admin.lifecycle_rules()]
    except Unsupported:
        lifecycle = UNSUPPORTED
    info: dict[str, object] = {
        "bucket": bucket,
        "region": admin.read("region"),
        "versioning": admin.read("versioning"),
        "lifecycle": lifecycle,
        "encryption": admin.read("encryption"),
        "public_access_block": admin.read("public access block"),
        "prefix": scope,
        "objects": objects,
        "bytes": size,
        "incomplete_uploads": [
            {"key": k, "upload_id": u, "age_days": round(a, 2)} for k, u, a in uploads
        ],
        "aborted": aborted,
    }
    if options.json:
        print(json.dumps(info))
        return
    console = output_console()
    for name in ("region", "versioning", "encryption", "public_access_block"):
        console.print(f"{name.replace('_', ' '):22} {info[name]}")
    shown = lifecycle if isinstance(lifecycle, str) else ", ".join(lifecycle) or "none"
    console.print(f"{'lifecycle rules':22} {shown}")
    console.print(
        f"{'objects':22} {objects:,} ({format_size(size)})" + (f" under {scope}" if scope else "")
    )
    console.print(f"{'incomplete uploads':22} {len(uploads)}")
    for key, _, age in uploads[:20]:
        console.print(f"  {key} ({age:.1f} days old)")
    if aborted:
        console.print(f"aborted {plural(len(aborted), 'incomplete upload')}")


def _prefix(prefix: str | None) -> str:
    """``--prefix`` as ``upload`` takes a URL's prefix: ``a//b``, ``/a``, ``..`` refused."""
    if not prefix:
        return ""
    return normalise_prefix(prefix, named=f"--prefix {prefix!r}", write="--prefix {}")


def register(app: typer.Typer) -> None:
    app.add_typer(bucket_app, name="bucket")
