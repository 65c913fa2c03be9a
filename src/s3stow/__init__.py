"""s3stow: upload and archive local files to S3, verified and resumable.

The library's public API is what this package exports (``__all__``); everything else
is internal and may move. Importing ``s3stow`` loads none of it: each name is imported
on first use, so ``s3stow --version`` and embedders that need one class stay light.

- settings: ``load_settings`` (defaults < YAML < ``S3STOW_*`` < flags), ``Settings``
- the ledger: ``open_ledger`` (a SQLite path or a ``postgresql://`` URL), ``Ledger``
- uploads: ``Uploader`` (``upload_tree``, ``upload_file``, ``upload_planned``,
  ``from_env``), ``RunSummary``, ``UploadResult``, ``Status``
- the way back: ``Restorer``, ``RestoreOptions``
- operator tools: ``Watcher`` (files as they appear), ``verify_tree`` (local tree,
  ledger and bucket compared; it needs an ``S3Store``), ``S3Store``
- the media archive: ``Archiver`` over a ``MediaTable``
- ``Target`` and ``parse_target`` (``s3://bucket/prefix``), ``S3StowError`` (the root
  of every error s3stow raises, with its exit code)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# name -> the module that defines it
_EXPORTS = {
    "Archiver": "s3stow.archive.archiver",
    "Ledger": "s3stow.ledger.sql",
    "MediaTable": "s3stow.archive.table",
    "RestoreOptions": "s3stow.restore.worker",
    "Restorer": "s3stow.restore.engine",
    "RunSummary": "s3stow.models",
    "S3Store": "s3stow.store.s3",
    "S3StowError": "s3stow.errors",
    "Settings": "s3stow.config",
    "Status": "s3stow.models",
    "Target": "s3stow.models",
    "UploadResult": "s3stow.models",
    "Uploader": "s3stow.transfer.engine",
    "Watcher": "s3stow.tools.watch",
    "load_settings": "s3stow.config",
    "open_ledger": "s3stow.ledger.opening",
    "parse_target": "s3stow.plan.keys",
    "verify_tree": "s3stow.tools.verify",
}
__all__ = [
    "Archiver",
    "Ledger",
    "MediaTable",
    "RestoreOptions",
    "Restorer",
    "RunSummary",
    "S3Store",
    "S3StowError",
    "Settings",
    "Status",
    "Target",
    "UploadResult",
    "Uploader",
    "Watcher",
    "__version__",
    "load_settings",
    "open_ledger",
    "parse_target",
    "verify_tree",
]

if TYPE_CHECKING:
    from s3stow.archive.archiver import Archiver
    from s3stow.archive.table import MediaTable
    from s3stow.config import Settings, load_settings
    from s3stow.errors import S3StowError
    from s3stow.ledger.opening import open_ledger
    from s3stow.ledger.sql import Ledger
    from s3stow.models import RunSummary, Status, Target, UploadResult
    from s3stow.plan.keys import parse_target
    from s3stow.restore.engine import Restorer
    from s3stow.restore.worker import RestoreOptions
    from s3stow.store.s3 import S3Store
    from s3stow.tools.verify import verify_tree
    from s3stow.tools.watch import Watcher
    from s3stow.transfer.engine import Uploader


def __getattr__(name: str) -> Any:
    """Import an exported name on first use (PEP 562) and keep it."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 's3stow' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
