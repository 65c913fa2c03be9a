"""Mutation testing of the modules that carry s3stow's promises (``make mutate``).

Runs mutmut (configured under ``[tool.mutmut]`` in pyproject.toml: which modules,
which tests) for at most ``--minutes`` (then stops it cleanly: mutmut keeps every
result in ``mutants/``, and the next run goes on from there and re-tests only the
functions whose code changed), then prints one line per module::

    mutation score s3stow.transfer.single: 96% (48 killed of 50; 3 equivalent)

The score is killed / (mutants - equivalent). A mutant is killed when a test fails
or hangs (a timeout) with it; "no tests" (no test reaches the function) counts as
survived. Surviving mutants judged equivalent (they cannot change behaviour) are
listed with the reason in docs/reliability.md, in the table under "Surviving mutants
judged equivalent"; every other survivor is printed with its diff.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
EQUIVALENT_HEADING = "### Surviving mutants judged equivalent"
KILLED = {1, 3, 36, 24, -24, 152, 255, -9, -11}  # failed, pytest error, timeout, crash
NOT_CHECKED = {None, 2}


@dataclass
class Module:
    name: str
    killed: int = 0
    equivalent: int = 0
    not_checked: int = 0
    survivors: list[str] = field(default_factory=list)

    @property
    def counted(self) -> int:
        return self.killed + len(self.survivors)

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.counted if self.counted else 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="stop mutmut after this")
    parser.add_argument("--report-only", action="store_true", help="do not run mutmut")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    os.chdir(ROOT)
    if not args.report_only:
        run_mutmut(args.minutes, args.jobs)
    return report()


def run_mutmut(minutes: float, jobs: int) -> None:
    """``mutmut run`` for at most ``minutes``; Ctrl+C-like stop (SIGINT) after that."""
    started = time.monotonic()
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)]
    log = ROOT / "mutants" / "make-mutate.log"
    log.parent.mkdir(exist_ok=True)
    print(f"mutmut run (log: {log.relative_to(ROOT)}; at most {minutes:g} minutes)", flush=True)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            process.wait(timeout=minutes * 60)
        except subprocess.TimeoutExpired:
            print("time is up: stopping mutmut (its results so far are kept)", flush=True)
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            process.wait()
            raise
    print(f"mutmut ran {time.monotonic() - started:.0f} s, exit {process.returncode}")
    if process.returncode not in (0, -signal.SIGINT, 1, 130):
        print(log.read_text(encoding="utf-8")[-3000:])


def report() -> int:
    metas = sorted((ROOT / "mutants" / "src").rglob("*.py.meta"))
    if not metas:
        print("no mutation results yet: run `make mutate`")
        return 1
    equivalents = load_equivalents()
    modules: dict[str, Module] = {}
    used: set[tuple[str, str, str, str]] = set()
    for meta in metas:
        codes = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        if not codes:
            continue
        name = ".".join(meta.relative_to(ROOT / "mutants" / "src").with_suffix("").parts)
        name = name.removesuffix(".py")
        module = modules.setdefault(name, Module(name))
        source = meta.with_suffix("")
        for mutant, code in sorted(codes.items()):
            if code in NOT_CHECKED:
                module.not_checked += 1
            elif code in KILLED:
                module.killed += 1
            elif code == 37:  # caught by a type check (not configured): not a mutant at all
                continue
            else:
                key = describe(mutant, source)
                if key in equivalents:
                    module.equivalent += 1
                    used.add(key)
                else:
                    module.survivors.append(mutant)
    width = max(len(m.name) for m in modules.values())
    print()
    for module in modules.values():
        pending = f"; {module.not_checked} not run yet" if module.not_checked else ""
        print(
            f"mutation score {module.name}: {module.score:.0f}%".ljust(width + 22)
            + f"({module.killed} killed of {module.counted}; {module.equivalent} equivalent"
            + f"{pending})"
        )
    survivors = [(m, s) for m in modules.values() for s in m.survivors]
    if survivors:
        print(f"\n{len(survivors)} surviving mutants (not listed as equivalent in {DOC.name}):")
        for module, mutant in survivors:
            print(f"  {mutant}\n    {format_key(describe(mutant, module_source(module.name)))}")
    stale = set(equivalents) - used
    if stale:
        print(f"\n{len(stale)} entries of the equivalent table matched no survivor (stale?):")
        for key in sorted(stale):
            print(f"  {format_key(key)}")
    return 0


def module_source(name: str) -> Path:
    return ROOT / "mutants" / "src" / (name.replace(".", "/") + ".py")


def function_of(mutant: str) -> tuple[str, str]:
    """(module, function) of a mutmut mutant name (``s3stow.compare.x_decide__mutmut_3``,
    ``s3stow.compare.xǁRemoteIndexǁget__mutmut_1``)."""
    module, _, mangled = mutant.rpartition(".")
    mangled = re.sub(r"__mutmut_\d+$", "", mangled)
    if mangled.startswith("xǁ"):
        return module, mangled[2:].replace("ǁ", ".", 1)
    return module, mangled.removeprefix("x_")


def describe(mutant: str, source: Path) -> tuple[str, str, str, str]:
    """(module, function, line before, line after): a key that stays the same while
    the function's other lines change (mutant numbers do not)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    module, function = function_of(mutant)
    diff = get_diff_for_mutant(mutant, path=source.resolve().relative_to(ROOT / "mutants"))
    before = " ".join(
        line[1:].strip() for line in diff.splitlines() if line.startswith("-") and line[:3] != "---"
    )
    after = " ".join(
        line[1:].strip() for line in diff.splitlines() if line.startswith("+") and line[:3] != "+++"
    )
    return module, function, before, after


def format_key(key: tuple[str, str, str, str]) -> str:
    module, function, before, after = key
    return f"{module} {function}: `{before}` -> `{after}`"


def load_equivalents() -> set[tuple[str, str, str, str]]:
    """The table under EQUIVALENT_HEADING: | module | function | before | after | reason |"""
    text = DOC.read_text(encoding="utf-8")
    start = text.find(EQUIVALENT_HEADING)
    if start < 0:
        return set()
    found = set()
    for line in text[start:].splitlines()[1:]:
        if line.startswith("#"):
            break
        if not line.startswith("| `"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        module, function, before, after = (c.strip("`") for c in cells[:4])
        found.add((module, function, before, after))
    return found


if __name__ == "__main__":
    sys.exit(main())
