"""Loaded at start-up by the Python subprocesses of a mutmut "stats" run only (this
folder is put on PYTHONPATH by ``tests/conftest.py`` then, and never otherwise).

mutmut learns which tests reach which function by recording calls in the test
process; calls made in a ``python -m s3stow`` subprocess would be lost, and the CLI
tests would guard nothing in its eyes. Here the subprocess loads mutmut's settings
from the mutated tree (the trampolines record through them) and, at exit, writes the
functions it ran to a file that the test process adds to the running test's record.
"""

from __future__ import annotations

import atexit
import os


def _load_settings(root: str) -> None:
    from mutmut.configuration import config

    here = os.getcwd()
    os.chdir(root)
    try:
        config()
    finally:
        os.chdir(here)


def _write_hits(folder: str) -> None:
    import sys

    if "mutmut.state" not in sys.modules:  # no mutated function ran here (e.g. moto)
        return
    from mutmut.state import state

    hits = sorted(state()._stats)
    if hits:
        with open(os.path.join(folder, f"{os.getpid()}.hits"), "w", encoding="utf-8") as out:
            out.write("\n".join(hits))


_root, _folder = os.environ.get("MUTMUT_S3STOW_ROOT"), os.environ.get("MUTMUT_S3STOW_HITS")
if _root and _folder and os.environ.get("MUTANT_UNDER_TEST") == "stats":
    _load_settings(_root)
    atexit.register(_write_hits, _folder)
