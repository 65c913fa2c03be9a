"""``archive restore``: the media cache rebuilt from the rows' ``archive_url``.

Every row with an ``archive_url`` (``--where`` narrows them) gets its object back at
its file's place: the row's ``local_file_path`` (relative to the media root, or
absolute inside it), else ``<media-type folder>/<md5_sum>.<ext>`` with the key's
extension (the true one, chosen when it was archived), where ``locate`` finds it.
The restore engine checks the object's own proof, and the bytes must also match the
row's ``md5_sum``. A row whose URL is not ``s3://bucket/key``, or whose path would
leave the media root, is refused with the reason; rows sharing one file share it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from s3stow.archive.locate import media_folder
from s3stow.archive.report import split_url
from s3stow.archive.table import MediaRow, MediaTable
from s3stow.models import Status, UploadResult
from s3stow.restore.paths import PathClaims, PathRules, UnsafePath, local_path, relative_parts
from s3stow.restore.plan import RestoreItem, RestoreRefusal, make_item, refusal
from s3stow.store.base import ObjectInfo


def restore_items(
    table: MediaTable, *, media_root: Path, rules: PathRules, limit: int | None = None
) -> Iterator[RestoreItem | RestoreRefusal | UploadResult]:
    """The archived rows as restore items (``media_root`` resolved), or refusals."""
    claims = PathClaims(rules)
    for row in table.rows(archived=True, limit=limit):
        url = row.archive_url or ""
        where = split_url(url)
        if where is None:
            yield _refused(
                media_root, url, "bad-url", f"row {row.id}: {url!r} is not s3://BUCKET/KEY"
            )
            continue
        bucket, key = where
        try:
            rel = _relative(row, key, media_root)
        except UnsafePath as exc:  # no path under the media root to name
            yield _refused(media_root, url, "unsafe-path", f"row {row.id}: {exc}; not written")
            continue
        failed = UploadResult(media_root, bucket, key, Status.FAILED, size=row.file_size or 0)
        try:
            what = f"local_file_path {rel!r}" if row.local_file_path else f"path {rel!r}"
            parts = relative_parts(rel, "", rules, what=what)
            path = local_path(media_root, parts)
        except UnsafePath as exc:
            message = f"row {row.id}: {exc}; not written"
            yield refusal(media_root, rel, failed, "unsafe-path", message)
            continue
        collision = claims.claim(parts, key)
        if collision is not None:
            message = f"row {row.id}: {collision}"
            yield refusal(media_root, "/".join(parts), failed, "path-collision", message)
            continue
        info = ObjectInfo(key, row.file_size or 0, "")
        yield make_item(media_root, parts, bucket, info, expect_md5=row.md5_sum, path=path)


def archive_buckets(table: MediaTable, *, limit: int | None = None) -> list[str]:
    """Every bucket the archived rows (those ``restore_items`` reads) point at, sorted:
    a run's target names them all (a first pass over the rows, reading no object)."""
    found = {
        where[0]
        for row in table.rows(archived=True, limit=limit)
        if (where := split_url(row.archive_url or ""))
    }
    return sorted(found)


def _relative(row: MediaRow, key: str, root: Path) -> str:
    """The row's file, relative to the media root, with ``/`` separators."""
    if row.local_file_path:
        path = Path(row.local_file_path)
        if path.is_absolute():
            try:
                path = path.resolve().relative_to(root)
            except ValueError:
                raise UnsafePath(f"{row.local_file_path} is outside the media root") from None
        return path.as_posix()
    name = key.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1] if "." in name else "bin"
    file = f"{row.md5_sum}.{ext}" if row.md5_sum else name
    return (media_folder(root, row) / file).relative_to(root).as_posix()


def _refused(root: Path, url: str, error_class: str, message: str) -> UploadResult:
    bucket, _, key = url.removeprefix("s3://").partition("/")
    return UploadResult(root, bucket, key, Status.FAILED, error_class=error_class, error=message)
