"""The package layout keeps the architecture: which package may import which.

The rules are the ones each package's ``__init__.py`` states (docs/architecture.md):
the base modules import no package, the store and the ledger only the base, the plan
stage never the transfer stage, reporting nothing but the base, and only ``cli``
imports the command line. Imports under ``if TYPE_CHECKING:`` are annotations, not
dependencies, and are not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "s3stow"
BASE = {"config", "errors", "localfiles", "logs", "models", "settingrules", "settings", "units"}
ALLOWED = {
    "base": set(),
    "store": {"base"},
    "ledger": {"base"},
    "devserver": {"base"},
    "report": {"base"},
    "plan": {"base", "store", "ledger"},
    "transfer": {"base", "store", "ledger", "plan", "report"},
    "tools": {"base", "store", "ledger", "plan", "report", "transfer"},
    "restore": {"base", "store", "ledger", "plan", "report", "transfer"},
    "job": {"base", "store", "ledger", "plan", "report", "transfer"},
    "archive": {"base", "store", "ledger", "plan", "report", "transfer", "restore"},
}


def _package(parts: tuple[str, ...]) -> str:
    return "base" if parts[0] in BASE or parts[0].endswith(".py") else parts[0]


def _imports(path: Path) -> set[str]:
    """The s3stow packages ``path`` imports at run time."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    annotations = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If)
        and isinstance(block.test, ast.Name)
        and block.test.id == "TYPE_CHECKING"
        for node in ast.walk(block)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in annotations:
            continue
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "s3stow" and len(parts) > 1:
                found.add(_package((parts[1],)))
    return found


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.name not in ("__init__.py", "__main__.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_each_module_imports_only_what_its_package_may(path: Path) -> None:
    parts = path.relative_to(SRC).with_suffix("").parts
    package = _package(parts)
    if package == "cli":
        return  # the top: it may import everything
    uses = _imports(path) - {package}
    assert uses <= ALLOWED[package], f"{package} may not import {sorted(uses - ALLOWED[package])}"


def test_the_root_holds_only_the_base_modules() -> None:
    root = {p.stem for p in SRC.glob("*.py")} - {"__init__", "__main__"}
    assert root == BASE
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert packages == set(ALLOWED) - {"base"} | {"cli"}


def test_every_module_and_package_says_what_it_owns() -> None:
    for path in SRC.rglob("*.py"):
        if path.name == "__main__.py":
            continue
        docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
        assert docstring, f"{path.relative_to(SRC)} has no docstring"
    for package in ALLOWED.keys() - {"base"}:
        docstring = ast.get_docstring(ast.parse((SRC / package / "__init__.py").read_text()))
        assert docstring is not None
        assert "never" in docstring or "only" in docstring.lower(), package
