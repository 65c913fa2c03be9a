"""The program's garbage collector during start-up: held, then frozen and released.

Only the program holds it (``python -m s3stow``, the console script): a host that
calls ``cli.app.main([...])`` keeps its own. This module imports nothing but ``gc``, so
``s3stow.__main__`` holds the collector before the command line's own imports (typer
and click) and not only from ``cli.app.main`` on.
"""

from __future__ import annotations

import gc

_COLLECTOR = {"held": False}


def hold_collector() -> None:
    """The program starts: no cyclic garbage collection while it imports its modules
    and builds its classes, models and settings, which live as long as the process
    (collecting them again and again was about a tenth of a one-file upload's CPU)."""
    if gc.isenabled():
        gc.disable()
        _COLLECTOR["held"] = True


def release_collector() -> None:
    """Start-up is over: what exists is frozen (full collections no longer scan it) and
    the collector runs again. Called once the settings are resolved (``upload`` and
    ``restore``: when their run decides about its first file, ``StartupOver``), by the
    commands that run long without settings, and when ``main`` returns. Idempotent
    and cheap: any thread may call it any number of times."""
    if _COLLECTOR["held"]:
        _COLLECTOR["held"] = False
        gc.freeze()
        gc.enable()
