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

A full pass is out of reach on a small machine (a mutant of a function that most tests
reach costs minutes), so ``--sample N`` runs, in each selected module, N mutants without
a result drawn at random: each module's mutants are put in a random order fixed by
``--seed`` (the same order on every call while the module's mutants stay the same), and
the first N of that order still without a result are run. The first M of that order
that all have a result are a simple random sample of the module, from which the module's
score is estimated; a module with mutants not run yet says so::

    mutation score s3stow.transfer.multipart: 100% (70 killed of 70; 3 equivalent; 495 not
    run yet; sampled 21 of 568: 100%, 95% interval 83-100%, at least 86% at 95% confidence)

The last line says which modules show the target (90% of the non-equivalent mutants
killed): by the score where every mutant ran, else by the sample's exact one-sided 95%
lower bound (29 sampled, none surviving, show 90%; one survivor takes about 46).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reliability.md"
# mutmut's results, kept in the repository: a fresh checkout (or a wiped mutants/) goes on
# from them instead of starting over; mutmut drops a result when its function changes.
RESULTS = ROOT / "scripts" / "mutation-results.json"
EQUIVALENT_HEADING = "### Surviving mutants judged equivalent"
KILLED = {1, 3, 36, 24, -24, 152, 255, -9, -11}  # failed, pytest error, timeout, crash
NOT_CHECKED = {None, 2}
NO_TESTS = 33  # mutmut's exit code for a mutant no selected test reaches
TARGET = 0.9  # issue 28: the killed share of non-equivalent mutants in each module
SEED = 28  # the default random order of each module's mutants (--seed)


@dataclass
class Module:
    name: str
    killed: int = 0
    equivalent: int = 0
    not_checked: int = 0
    survivors: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    used: set[tuple[str, str, str, str]] = field(default_factory=set)
    # every mutant: "killed", "survived", "equivalent" or "pending" (type-check ones left out)
    verdicts: dict[str, str] = field(default_factory=dict)

    @property
    def counted(self) -> int:
        return self.killed + len(self.survivors)

    @property
    def score(self) -> str:
        return f"{100 * self.killed // self.counted}%" if self.counted else "n/a"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="stop mutmut after this")
    parser.add_argument("--report-only", action="store_true", help="do not run mutmut")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--retest",
        action="store_true",
        help="only re-test the surviving mutants (new tests?); with --sample: and sample",
    )
    parser.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="in each selected module, run N mutants without a result, drawn at random",
    )
    parser.add_argument(
        "--seed", type=int, default=SEED, help=f"the random order of --sample (default {SEED})"
    )
    parser.add_argument(
        "modules", nargs="*", help="re-run only these modules' mutants (e.g. s3stow.plan.compare)"
    )
    args = parser.parse_args()
    os.chdir(ROOT)
    stamp = ROOT / "mutants" / "tests-fingerprint"
    if args.report_only:  # and keep what mutants/ holds
        if (ROOT / "mutants" / "src").exists():
            save_results(stamp)
        return report(collect(), seed=args.seed)
    deadline = time.monotonic() + args.minutes * 60
    seed_results(stamp)
    fingerprint = tests_fingerprint()
    changed = not stamp.exists() or stamp.read_text(encoding="utf-8") != fingerprint
    known = collect()
    wanted = [m for name, m in known.items() if not args.modules or name in args.modules]
    if args.retest and args.sample is None:
        names = [n for m in wanted for n in m.survivors]
        if names:
            run_mutmut(args.minutes, args.jobs, names)
        save_results(stamp)
        return report(collect(), seed=args.seed)
    if args.sample is not None:
        generate(args.jobs)  # the names of the mutants not run yet
        wanted = [m for name, m in collect().items() if not args.modules or name in args.modules]
        names = [n for m in wanted for n in draw(m, args.sample, args.seed)]
        print(f"sample of {args.sample} per module (seed {args.seed}): {len(names)} mutants")
        if args.retest:  # the survivors too, in the same mutmut run (one clean run, not two)
            survivors = [n for m in wanted for n in m.survivors]
            print(f"and re-testing {len(survivors)} surviving mutants")
            names = survivors + names
        if names:
            run_mutmut(args.minutes, args.jobs, names)
        save_results(stamp)
        return report(collect(), seed=args.seed)
    if args.modules and not known:  # nothing generated yet: let mutmut match the names
        run_mutmut(args.minutes, args.jobs, [f"{m}.*" for m in args.modules])
    elif args.modules:  # these modules' mutants not run yet, by name
        names = [n for m in wanted for n in m.pending]
        if names:
            run_mutmut(args.minutes, args.jobs, names)
    else:
        run_mutmut(args.minutes, args.jobs, [])
    # Mutants that survived earlier tests are re-tested once the tests have changed
    # (mutmut itself re-tests a mutant only when its function changes).
    modules = collect()
    wanted = [m for name, m in modules.items() if not args.modules or name in args.modules]
    survivors = [n for m in wanted for n in m.survivors]
    pending = any(m.pending for m in wanted)
    finished = not (changed and survivors)
    left = (deadline - time.monotonic()) / 60
    if not finished and not pending and left > 1:
        print(f"the tests changed: re-testing {len(survivors)} surviving mutants")
        run_mutmut(left, args.jobs, survivors)
        finished = time.monotonic() < deadline
        modules = collect()
    if finished and not pending and not args.modules:
        stamp.write_text(fingerprint, encoding="utf-8")
    save_results(stamp)
    return report(modules, seed=args.seed)


def generate(jobs: int) -> None:
    """Write every mutant into ``mutants/`` as ``mutmut run`` does first, without running
    a test (a file already mutated and unchanged since is skipped): its meta files then
    name every mutant, with no result for the new ones."""
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mutmut.__main__ import create_mutants\n"
        "from mutmut.mutation.trampoline import set_mutant_under_test\n"
        "from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir\n"
        "set_mutant_under_test('mutant_generation')\n"
        "Path('mutants').mkdir(exist_ok=True)\n"
        "copy_src_dir()\n"
        "copy_also_copy_files()\n"
        "create_mutants(int(sys.argv[1]))\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, str(jobs)], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
    )


def order(module: Module, seed: int) -> list[str]:
    """The module's mutants in the random order of ``seed`` (the same for the same names)."""
    names = sorted(module.verdicts)
    random.Random(f"{seed}:{module.name}").shuffle(names)
    return names


def draw(module: Module, size: int, seed: int) -> list[str]:
    """The first ``size`` mutants in ``seed``'s order that have no result yet."""
    return [n for n in order(module, seed) if module.verdicts[n] == "pending"][:size]


@dataclass
class Sample:
    """The first mutants of a module's random order that all have a result."""

    size: int = 0
    killed: int = 0
    survived: int = 0
    equivalent: int = 0

    def estimate(self) -> str:
        """The killed share of the non-equivalent mutants, with its 95% Wilson interval
        and its one-sided 95% lower bound (exact, Clopper-Pearson)."""
        n = self.killed + self.survived
        if not n:
            return "no estimate"
        p, z = self.killed / n, 1.96
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        low, high = math.floor(100 * (centre - half)), math.ceil(100 * (centre + half))
        bound = math.floor(100 * lower_bound(self.killed, n))
        return (
            f"{100 * self.killed // n}%, 95% interval {max(low, 0)}-{min(high, 100)}%,"
            f" at least {bound}% at 95% confidence"
        )

    def shows(self, target: float) -> bool:
        """Whether the sample shows, at 95% confidence, a killed share of at least ``target``."""
        n = self.killed + self.survived
        return bool(n) and lower_bound(self.killed, n) >= target


def lower_bound(killed: int, n: int, *, alpha: float = 0.05) -> float:
    """The exact one-sided lower confidence bound (Clopper-Pearson) of a share seen as
    ``killed`` of ``n``: the smallest share under which seeing ``killed`` or more would
    happen with probability ``alpha`` or less. With none surviving it is ``alpha ** (1/n)``
    (29 killed of 29 show 90%, "the rule of three"). Found by bisection on the binomial
    tail; the population is taken as infinite, which only makes the bound more cautious
    for a module of a few dozen mutants."""
    if killed <= 0:
        return 0.0

    def tail(share: float) -> float:  # P(X >= killed) for X ~ Binomial(n, share)
        return sum(
            math.comb(n, k) * share**k * (1 - share) ** (n - k) for k in range(killed, n + 1)
        )

    low, high = 0.0, 1.0
    for _ in range(60):
        middle = (low + high) / 2
        if tail(middle) > alpha:
            high = middle
        else:
            low = middle
    return low


def sample_of(module: Module, seed: int) -> Sample:
    sample = Sample()
    for name in order(module, seed):
        verdict = module.verdicts[name]
        if verdict == "pending":
            break
        sample.size += 1
        setattr(sample, verdict, getattr(sample, verdict) + 1)
    return sample


def seed_results(stamp: Path) -> None:
    """Put the kept results where mutmut looks for them, for the modules that have none
    in ``mutants/`` yet (a fresh checkout): mutmut then keeps each result whose function
    is unchanged and runs only the rest."""
    if not RESULTS.exists():
        return
    kept = json.loads(RESULTS.read_text(encoding="utf-8"))
    seeded = 0
    for source, entry in kept["modules"].items():
        meta = ROOT / "mutants" / (source + ".meta")
        if meta.exists():
            continue
        meta.parent.mkdir(parents=True, exist_ok=True)
        codes: dict[str, int | None] = entry["exit_codes"]
        data = {
            "exit_code_by_key": codes,
            "hash_by_function_name": entry["function_hashes"],
            "type_check_error_by_key": {},
            "durations_by_key": {},
            "estimated_durations_by_key": {},
        }
        meta.write_text(json.dumps(data), encoding="utf-8")
        seeded += len(codes)
    if seeded and kept.get("tests_fingerprint") and not stamp.exists():
        stamp.write_text(kept["tests_fingerprint"], encoding="utf-8")
    if seeded:
        print(f"seeded {seeded} results from {RESULTS.relative_to(ROOT)}", flush=True)


def _function(mutant: str) -> str:
    """The function a mutant belongs to, as mutmut names it in its hashes
    (``s3stow.plan.compare.x_decide__mutmut_3`` -> ``x_decide``)."""
    return mutant.rsplit("__mutmut_", 1)[0].rpartition(".")[2]


def save_results(stamp: Path) -> None:
    """Keep every finished result (exit code by mutant, with its functions' hashes)."""
    modules: dict[str, dict[str, object]] = {}
    if RESULTS.exists():  # a module whose meta file cannot be read now keeps its entry
        modules = json.loads(RESULTS.read_text(encoding="utf-8"))["modules"]
    for meta in sorted((ROOT / "mutants" / "src").rglob("*.py.meta")):
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except json.JSONDecodeError:  # mutmut is writing it
            continue
        source = meta.relative_to(ROOT / "mutants").with_suffix("").as_posix()
        hashes: dict[str, str] = data["hash_by_function_name"]
        # a kept result stays while its function is unchanged (mutmut resets every result
        # when its test selection changes, though a result of fewer tests stays true)
        kept_entry = modules.get(source, {})
        kept_hashes: dict[str, str] = kept_entry.get("function_hashes", {})  # type: ignore[assignment]
        kept_codes: dict[str, int] = kept_entry.get("exit_codes", {})  # type: ignore[assignment]
        codes = {
            k: v
            for k, v in kept_codes.items()
            if kept_hashes.get(_function(k)) == hashes.get(_function(k))
        }
        codes.update({k: v for k, v in data["exit_code_by_key"].items() if v is not None})
        # "no tests" (33) is no verdict: it says only what the selection of that run missed
        codes = {k: v for k, v in codes.items() if v != NO_TESTS}
        if codes:
            modules[source] = {
                "function_hashes": dict(sorted(hashes.items())),
                "exit_codes": dict(sorted(codes.items())),
            }
    fingerprint = stamp.read_text(encoding="utf-8") if stamp.exists() else None
    kept = {
        "mutmut": "3.8.1",
        "tests_fingerprint": fingerprint,
        "modules": dict(sorted(modules.items())),
    }
    RESULTS.write_text(json.dumps(kept, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def run_mutmut(minutes: float, jobs: int, names: list[str]) -> None:
    """``mutmut run`` for at most ``minutes``, then stopped as by Ctrl+C (it keeps what
    it has). ``names``: only these mutants (patterns allowed), re-run even if known."""
    started = time.monotonic()
    command = [sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs), *names]
    log = ROOT / "mutants" / "make-mutate.log"
    log.parent.mkdir(exist_ok=True)
    print(f"mutmut run (log: {log.relative_to(ROOT)}; at most {minutes:g} minutes)", flush=True)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("a", encoding="utf-8") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            # a background shell starts us with SIGINT ignored: mutmut must see it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        try:
            process.wait(timeout=minutes * 60)
        except subprocess.TimeoutExpired:
            print("time is up: stopping mutmut (its results so far are kept)", flush=True)
            stop(process)
        except KeyboardInterrupt:
            stop(process)
            raise
    stop_orphaned_servers()
    print(f"mutmut ran {time.monotonic() - started:.0f} s, exit {process.returncode}")
    if process.returncode not in (0, 1, -signal.SIGINT, 130):
        print(log.read_text(encoding="utf-8")[-3000:])


def stop_orphaned_servers() -> None:
    """A mutant's test run killed on a timeout (or by the stop) cannot stop the moto or
    SeaweedFS server its fixture started in a session of its own: stop those (this
    checkout's interpreter or ``weed``, parent gone), by PID."""
    listing = subprocess.run(
        ["ps", "-eo", "pid=,ppid=,args="], capture_output=True, text=True, check=False
    )
    servers = (f"{sys.executable} -m moto.server ", f"{Path(sys.executable).parent / 'weed'} ")
    for line in listing.stdout.splitlines():
        pid, ppid, args = line.split(None, 2)
        if ppid == "1" and args.startswith(servers):
            os.kill(int(pid), signal.SIGTERM)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl+C for mutmut (it stops its workers and saves), SIGTERM if that is not enough."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        process.terminate()
        process.wait()


def tests_fingerprint() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "tests").rglob("*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def collect() -> dict[str, Module]:
    """Every mutated module's results, survivors judged equivalent set apart."""
    equivalents = load_equivalents()
    modules: dict[str, Module] = {}
    for meta in sorted((ROOT / "mutants" / "src").rglob("*.py.meta")):
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
                module.pending.append(mutant)
                module.verdicts[mutant] = "pending"
            elif code in KILLED:
                module.killed += 1
                module.verdicts[mutant] = "killed"
            elif code == 37:  # caught by a type check (not configured): not a mutant at all
                continue
            else:
                # seeded results before mutmut has written the mutants: judged later
                key = describe(mutant, source) if source.exists() else None
                if key is not None and key in equivalents:
                    module.equivalent += 1
                    module.used.add(key)
                    module.verdicts[mutant] = "equivalent"
                else:
                    module.survivors.append(mutant)
                    module.verdicts[mutant] = "survived"
    return modules


def report(modules: dict[str, Module], *, seed: int = SEED) -> int:
    if not modules:
        print("no mutation results yet: run `make mutate`")
        return 1
    width = max(len(m.name) for m in modules.values())
    print()
    for module in modules.values():
        pending = ""
        if module.not_checked:  # partial: the score of a random sample too
            sample = sample_of(module, seed)
            pending = (
                f"; {module.not_checked} not run yet; sampled {sample.size} of"
                f" {len(module.verdicts)}: {sample.estimate()}"
            )
        print(
            f"mutation score {module.name}: {module.score}".ljust(width + 22)
            + f"({module.killed} killed of {module.counted}; {module.equivalent} equivalent"
            + f"{pending})"
        )
    short = [m.name for m in modules.values() if not shows_target(m, seed)]
    print(
        f"\ntarget {TARGET:.0%} of the non-equivalent mutants killed, shown at 95% confidence"
        f" (all run: the score; else the sample's one-sided bound): {len(modules) - len(short)}"
        f" of {len(modules)} modules" + (f"; not yet: {', '.join(short)}" if short else "")
    )
    survivors = [(m, s) for m in modules.values() for s in m.survivors]
    if survivors:
        print(f"\n{len(survivors)} surviving mutants (not listed as equivalent in {DOC.name}):")
        for module, mutant in survivors:
            print(f"  {mutant}\n    {format_key(describe(mutant, module_source(module.name)))}")
    used = set().union(*(m.used for m in modules.values()))
    stale = load_equivalents() - used
    if stale:
        print(f"\n{len(stale)} entries of the equivalent table matched no survivor (stale?):")
        for key in sorted(stale):
            print(f"  {format_key(key)}")
    return 0


def shows_target(module: Module, seed: int) -> bool:
    """Whether ``module`` meets the target: by its score when every mutant ran, else by
    its random sample's one-sided 95% lower bound."""
    if not module.not_checked:
        return bool(module.counted) and module.killed >= TARGET * module.counted
    return sample_of(module, seed).shows(TARGET)


def module_source(name: str) -> Path:
    return ROOT / "mutants" / "src" / (name.replace(".", "/") + ".py")


def function_of(mutant: str) -> tuple[str, str]:
    """(module, function) of a mutmut mutant name (``s3stow.plan.compare.x_decide__mutmut_3``,
    ``s3stow.plan.compare.xǁRemoteIndexǁget__mutmut_1``)."""
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
