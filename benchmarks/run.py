"""How fast is `%runmod`? Side by side with runpy, `%run -m`, a bare `exec` and `python -m`.

    python benchmarks/run.py [--rounds N] [--only WORD]

Builds throwaway packages in a temporary directory, starts a real IPython shell with the
extension loaded, and times each case's contenders interleaved (the order alternating
from one round to the next) so that the noise of a shared machine hits them alike. Each
time is the median over the rounds; only the *ratios* of those medians are checked
against the targets, never absolute times. Prints a table and exits with status 1 when a
target is missed, so it can run in CI.

The magics are called as a notebook cell calls them: `%runmod pkg.mod` in a cell is
`get_ipython().run_line_magic('runmod', 'pkg.mod')` executed in the user namespace, and
that is what is timed (without the rest of IPython's cell machinery, which is the same
for every magic).
"""

from __future__ import annotations

import argparse
import compileall
import gc
import importlib
import importlib.util
import os
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

from IPython.core.interactiveshell import InteractiveShell
from IPython.terminal.interactiveshell import TerminalInteractiveShell

import ipy_runmod
from ipy_runmod._result import format_seconds
from ipy_runmod._subprocess import discard_spare

#: Package whose modules have up-to-date .pyc files; the other one never has any.
PYC, SRC = "rmbench_pyc", "rmbench_src"
#: A package of user modules, all imported, for the cost of noticing edits before a run.
USERS, USER_MODULES = "rmbench_users", 200
BIG_FUNCTIONS = 3000
NAMESPACE_SIZE = 1_000_000
MEMORY_RUNS, MEMORY_FIRST = 1000, 10

TRIVIAL = "x = 1\n"
BIG = "".join(f"def f{i}(a, b=1):\n    return a + b + {i}\n\n" for i in range(BIG_FUNCTIONS))
# Allocates ~0.5 MB per run, in objects that refer to the module's globals: a run whose
# namespace were kept alive would show at once in the memory case.
ALLOCATING = """\
class Table:
    def total(self):
        return sum(data)

def helper():
    return Table()

data = list(range(10_000))
table = helper()
"""


@dataclass
class Row:
    case: str
    baseline: str
    baseline_value: float
    value: float  #: %runmod's
    target: str
    ok: bool
    unit: str = "time"  #: "time" (seconds) or "bytes"
    ratio: float | None = None
    per: int | None = None  #: shown as the difference per one of these (µs per module)


def build_packages(root: Path) -> None:
    files = {
        f"{PYC}/__init__.py": "",
        f"{PYC}/trivial.py": TRIVIAL,
        f"{PYC}/big.py": BIG,
        f"{PYC}/allocating.py": ALLOCATING,
        f"{SRC}/__init__.py": "",
        f"{SRC}/big.py": BIG,
        f"{USERS}/__init__.py": "",
        **{f"{USERS}/m{i}.py": f"def f():\n    return {i}\n" for i in range(USER_MODULES)},
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    # .pyc files for one package only (py_compile writes them whatever
    # PYTHONDONTWRITEBYTECODE says); from now on nothing writes any more of them.
    if not compileall.compile_dir(root / PYC, quiet=1):
        raise SystemExit("could not compile the benchmark package")
    sys.dont_write_bytecode = True
    for name in ("trivial", "big"):
        source = root / PYC / f"{name}.py"
        assert Path(importlib.util.cache_from_source(str(source))).exists()
    assert not (root / SRC / "__pycache__").exists()


def make_shell() -> InteractiveShell:
    shell = TerminalInteractiveShell.instance(colors="nocolor")
    if shell.history_manager is not None:
        shell.history_manager.enabled = False
    shell.run_line_magic("load_ext", "ipy_runmod")
    return shell


def cell(shell: InteractiveShell, magic: str, line: str) -> Callable[[], object]:
    """A callable doing what a notebook cell holding `%magic line` does."""
    code = compile(f"get_ipython().run_line_magic({magic!r}, {line!r})", "<cell>", "exec")
    namespace = shell.user_ns
    return lambda: exec(code, namespace)


def as_fresh(mod_name: str, run: Callable[[], object]) -> Callable[[], object]:
    """`run`, with sys.modules as a fresh process has it: without `mod_name`.

    A `%runmod` of a module under its own name leaves it registered, as an import would;
    runpy and `%run -m` would then take its spec from there instead of finding it.
    """

    def fresh() -> object:
        kept = sys.modules.pop(mod_name, None)
        try:
            return run()
        finally:
            if kept is not None:
                sys.modules[mod_name] = kept

    return fresh


def timed_rounds(
    contenders: Sequence[Callable[[], object]], rounds: int, warmup: int = 3, pause: float = 0.0
) -> list[list[float]]:
    """Seconds per call of each contender in each round; calls interleaved in a round.

    `pause`: seconds of rest after each call, untimed (as between a user's cells).
    """
    for _ in range(warmup):
        for run in contenders:
            run()
    times: list[list[float]] = [[] for _ in contenders]
    order = list(range(len(contenders)))
    clock = time.perf_counter
    gc.collect()
    for _ in range(rounds):
        order.reverse()  # who goes first alternates
        for i in order:
            run = contenders[i]
            start = clock()
            run()
            times[i].append(clock() - start)
            if pause:
                time.sleep(pause)
    return times


def time_case(
    case: str,
    baseline_name: str,
    baseline: Callable[[], object],
    runmod: Callable[[], object],
    *,
    rounds: int,
    max_ratio: float,
    target: str,
) -> Row:
    """The median time of each, and their ratio."""
    base, ours = (statistics.median(times) for times in timed_rounds([baseline, runmod], rounds))
    ratio = ours / base
    return Row(case, baseline_name, base, ours, target, ratio <= max_ratio, ratio=ratio)


def memory_case(shell: InteractiveShell, limit: int) -> Row:
    run = cell(shell, "runmod", f"{PYC}.allocating")
    run()
    gc.collect()
    tracemalloc.start()
    try:
        at_first = at_last = 0
        for i in range(1, MEMORY_RUNS + 1):
            run()
            if i in (MEMORY_FIRST, MEMORY_RUNS):
                gc.collect()
                current = tracemalloc.get_traced_memory()[0]
                at_first = current if i == MEMORY_FIRST else at_first
                at_last = current
    finally:
        tracemalloc.stop()
    growth = at_last - at_first
    return Row(
        f"{MEMORY_RUNS} repeated runs (memory)",
        f"memory at run {MEMORY_FIRST}",
        at_first,
        at_last,
        f"growth <= {limit // 1024} KiB",
        growth <= limit,
        unit="bytes",
    )


def fmt_value(row: Row, value: float) -> str:
    return format_seconds(value) if row.unit == "time" else f"{value / 1024:.0f} KiB"


def print_table(rows: Sequence[Row]) -> None:
    header = ("case", "baseline", "baseline", "%runmod", "ratio", "target", "")
    table = [header]
    for row in rows:
        if row.per is not None:
            ratio = f"+{(row.value - row.baseline_value) / row.per * 1e6:.2f} µs per module"
        elif row.ratio is not None:
            ratio = f"{row.ratio:.3f}x"
            if row.ratio < 0.5:
                ratio += f" ({1 / row.ratio:.0f}x faster)"
        else:
            ratio = f"+{(row.value - row.baseline_value) / 1024:.0f} KiB"
        table.append(
            (
                row.case,
                row.baseline,
                fmt_value(row, row.baseline_value),
                fmt_value(row, row.value),
                ratio,
                row.target,
                "PASS" if row.ok else "FAIL",
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for n, line in enumerate(table):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if n == 0:
            print("  ".join("-" * width for width in widths))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=400,
        help="rounds for the fast cases (the slow ones use a fraction); default 400",
    )
    parser.add_argument(
        "--only",
        metavar="WORD",
        help="run only the cases whose key contains WORD; keys: 'runpy trivial', "
        "'run-m trivial', 'functions floor', 'functions nobytecode', 'namespace', 'memory', "
        "'reload users'",
    )
    opts = parser.parse_args(argv)
    rounds = max(opts.rounds, 5)
    root = Path(tempfile.mkdtemp(prefix="ipy_runmod_bench_"))
    saved_flag = sys.dont_write_bytecode
    try:
        build_packages(root)
        sys.path.insert(0, str(root))
        importlib.invalidate_caches()
        return run_cases(make_shell(), rounds, opts.only)
    finally:
        sys.dont_write_bytecode = saved_flag
        if str(root) in sys.path:
            sys.path.remove(str(root))
        shutil.rmtree(root, ignore_errors=True)


def run_cases(shell: InteractiveShell, rounds: int, only: str | None = None) -> int:
    trivial, big, big_src = f"{PYC}.trivial", f"{PYC}.big", f"{SRC}.big"

    def trivial_vs_runpy() -> Row:
        return time_case(
            "trivial module, .pyc written",
            "runpy.run_module",
            as_fresh(trivial, lambda: runpy.run_module(trivial)),
            cell(shell, "runmod", trivial),
            rounds=rounds,
            max_ratio=1.0,
            target="<= 1.0x",
        )

    def trivial_vs_run_m() -> Row:
        return time_case(
            "trivial module",
            "%run -m",
            as_fresh(trivial, cell(shell, "run", f"-m {trivial}")),
            cell(shell, "runmod", trivial),
            rounds=rounds,
            max_ratio=0.4,
            target="<= 0.4x",
        )

    def big_vs_exec() -> Row:
        spec = importlib.util.find_spec(big)
        assert spec is not None and spec.loader is not None
        code: CodeType = spec.loader.get_code(big)  # type: ignore[attr-defined]
        return time_case(
            f"module of {BIG_FUNCTIONS} functions, .pyc written",
            "bare exec of its code (floor)",
            lambda: exec(code, {"__name__": big}),
            cell(shell, "runmod", big),
            rounds=rounds,
            max_ratio=1.1,
            target="<= 1.1x",
        )

    def big_without_bytecode() -> Row:
        row = time_case(
            "same, bytecode not written",
            "runpy.run_module",
            as_fresh(big_src, lambda: runpy.run_module(big_src)),
            cell(shell, "runmod", big_src),
            rounds=max(rounds // 40, 5),
            max_ratio=1 / 50,
            target=">= 50x faster",
        )
        spec = importlib.util.find_spec(big_src)
        assert spec is not None and spec.origin is not None
        assert not Path(importlib.util.cache_from_source(spec.origin)).exists()
        return row

    def big_namespace() -> Row:
        names = {f"v{i}": i for i in range(NAMESPACE_SIZE)}
        shell.user_ns.update(names)
        namespace = shell.user_ns
        try:
            return time_case(
                f"{NAMESPACE_SIZE:,}-name notebook namespace, trivial module",
                "runpy.run_module(init_globals=ns)",
                as_fresh(trivial, lambda: runpy.run_module(trivial, init_globals=namespace)),
                cell(shell, "runmod", trivial),
                rounds=max(rounds // 25, 5),
                max_ratio=1.1,
                target="<= 1.1x",
            )
        finally:
            for name in names:
                namespace.pop(name, None)

    def user_modules() -> Row:
        """What noticing edits costs a run: on Linux, nothing per module while the kernel
        reports no change in their directories (else one stat per module)."""
        modules = [importlib.import_module(f"{USERS}.m{i}") for i in range(USER_MODULES)]
        paths = [str(module.__file__) for module in modules]
        base, ours = (
            statistics.median(times)
            for times in timed_rounds(
                [cell(shell, "runmod", f"{trivial} --no-reload"), cell(shell, "runmod", trivial)],
                rounds,
            )
        )
        for i in range(USER_MODULES):  # the other cases run without them
            del sys.modules[f"{USERS}.m{i}"]
        per_module = (ours - base) / USER_MODULES
        # For scale: the one stat per module that a check without the kernel's word makes.
        stat = os.stat
        floor = statistics.median(
            timed_rounds([lambda: [stat(path) for path in paths]], rounds)[0]
        ) / len(paths)
        return Row(
            f"{USER_MODULES} imported user modules, trivial module "
            f"(a bare os.stat: {floor * 1e6:.2f} µs)",
            "--no-reload",
            base,
            ours,
            "<= 2 µs per module",
            per_module <= 2e-6,
            per=USER_MODULES,
        )

    def trivial_in_a_subprocess() -> list[Row]:
        python_m = [sys.executable, "-m", trivial]
        root = str(sys.path[0])  # the packages' directory: python -m finds them from there
        ours_run = cell(shell, "runmod", f"--subprocess {trivial}")

        def first_of_a_session() -> None:
            discard_spare()  # no process started ahead (costs a kill and a wait, ~1 ms)
            ours_run()

        fresh, in_process, ours, cold = (
            statistics.median(times)
            for times in timed_rounds(
                [
                    lambda: subprocess.run(python_m, cwd=root, check=True),
                    cell(shell, "runmod", trivial),
                    ours_run,
                    first_of_a_session,
                ],
                max(rounds // 20, 5),
                warmup=2,
                # Between a user's cells, the next run's process is started and ready.
                pause=0.3,
            )
        )
        return [
            Row(
                "trivial module, --subprocess",
                "!python -m",
                fresh,
                ours,
                "<= 1.0x",
                ours <= fresh,
                ratio=ours / fresh,
            ),
            Row(
                "same, first run of a session",
                "!python -m",
                fresh,
                cold,
                "(for scale)",
                True,
                ratio=cold / fresh,
            ),
            Row(
                "same",
                "in-process %runmod",
                in_process,
                ours,
                "(for scale)",
                True,
                ratio=ours / in_process,
            ),
        ]

    cases: dict[str, Callable[[], Row | list[Row]]] = {
        "runpy trivial": trivial_vs_runpy,
        "run-m trivial": trivial_vs_run_m,
        "functions floor": big_vs_exec,
        "functions nobytecode": big_without_bytecode,
        # Before the namespace case, whose million names leave the notebook's dict large.
        "reload users": user_modules,
        "namespace": big_namespace,
        "memory": lambda: memory_case(shell, limit=1024 * 1024),
        "subprocess trivial": trivial_in_a_subprocess,
    }
    chosen = [case for key, case in cases.items() if only is None or only in key]
    if not chosen:
        print(
            f"--only {only!r} matches no case; keys: {', '.join(map(repr, cases))}", file=sys.stderr
        )
        return 2
    print(
        f"ipy_runmod {ipy_runmod.__version__}, Python {sys.version.split()[0]}, "
        f"{rounds} rounds; medians, contenders interleaved\n"
    )
    rows: list[Row] = []
    for case in chosen:
        made = case()
        rows.extend(made if isinstance(made, list) else [made])
        gc.collect()
    print_table(rows)
    failed = [row.case for row in rows if not row.ok]
    print()
    print(f"FAILED: {'; '.join(failed)}" if failed else "All targets met.")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
