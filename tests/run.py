"""Run the whole test suite on every CPython 3.11+ found here; set-up included.

    python3 tests/run.py [PYTEST ARGS...]

For each interpreter (pyenv's versions and python3.X on PATH, one per minor version)
this makes a virtual environment under .venvs/, installs ipy_runmod with its `test`
extra, and runs pytest (unit, shell, kernel and nbval notebook tests). ruff and mypy
run once. Exits non-zero if anything fails or no interpreter is found.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OLDEST_MINOR = 11  # CPython 3.11 and newer
PROBE = "import sys, venv; print(sys.implementation.name, *sys.version_info[:3])"


def interpreters() -> dict[str, str]:
    """The newest CPython 3.11+ of each minor version found: {"3.12": "/path/to/python"}."""
    candidates: list[str] = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        versions = Path(root, "versions")
        if versions.is_dir():
            candidates += [str(p / "bin" / "python") for p in versions.iterdir()]
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in range(OLDEST_MINOR, 30)]
    candidates.append(sys.executable)
    found: dict[tuple[int, int, int], str] = {}
    for exe in filter(None, candidates):
        try:
            out = subprocess.run([exe, "-c", PROBE], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        name, *numbers = out.stdout.split() or [""]
        if name == "cpython" and len(numbers) == 3:
            version = (int(numbers[0]), int(numbers[1]), int(numbers[2]))
            if version[:2] >= (3, OLDEST_MINOR):
                found.setdefault(version, exe)
    newest: dict[str, str] = {}
    for version, exe in sorted(found.items(), reverse=True):
        newest.setdefault(f"{version[0]}.{version[1]}", exe)
    return dict(sorted(newest.items(), key=lambda item: int(item[0].split(".")[1])))


def run(*cmd: str | Path) -> int:
    print("$", " ".join(map(str, cmd)), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT).returncode


def prepare(minor: str, exe: str) -> Path:
    """A virtual environment for `exe` with ipy_runmod[test] installed, editable."""
    venv = ROOT / ".venvs" / f"py{minor}"
    python = venv / "bin" / "python"
    has_pip = [python, "-m", "pip", "--version"]
    if not python.exists() or subprocess.run(has_pip, capture_output=True).returncode:
        # (made again when an earlier attempt left one without pip behind)
        if subprocess.run([exe, "-m", "venv", "--clear", str(venv)]).returncode:
            sys.exit(
                f"cannot make a virtual environment with {exe}: is its venv module "
                f"(Debian's python{minor}-venv, say) installed?"
            )
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            f"{ROOT}[test]",
        ],
        check=True,
    )
    return python


def counts(report: Path) -> tuple[int, int, int]:
    """(passed, failed, skipped) from a JUnit XML report."""
    if not report.exists():
        return 0, 0, 0
    suite = ET.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite[0]
    total, skipped = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    return total - failed - skipped, failed, skipped


def leftover_cluster_processes(wait: float = 15.0) -> list[str]:
    """ipyparallel processes of our .venvs still running `wait` s after the tests (a leak).

    Engines' nannies exit a few seconds after their engine, so this polls before judging.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            ps = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True)
        except FileNotFoundError:
            print("no ps here: leftover ipyparallel processes are not looked for")
            return []
        found = [
            line.strip()
            for line in ps.stdout.splitlines()
            if str(ROOT / ".venvs") in line and "ipyparallel" in line
        ]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def main(pytest_args: list[str]) -> int:
    found = interpreters()
    if not found:
        print(f"no CPython 3.{OLDEST_MINOR} or newer found", file=sys.stderr)
        return 1
    print("interpreters:", ", ".join(f"{m} ({e})" for m, e in found.items()), flush=True)
    status, totals, lines = 0, [0, 0, 0], []
    for i, (minor, exe) in enumerate(found.items()):
        python = prepare(minor, exe)
        if i == 0:  # the linters' verdict does not depend on the interpreter
            status |= run(python, "-m", "ruff", "check", ".")
            status |= run(python, "-m", "ruff", "format", "--check", ".")
            status |= run(python, "-m", "mypy")
        report = ROOT / ".venvs" / f"junit-py{minor}.xml"
        report.unlink(missing_ok=True)
        code = run(python, "-m", "pytest", f"--junitxml={report}", *pytest_args)
        status |= code
        passed, failed, skipped = counts(report)
        version = subprocess.run([python, "-V"], capture_output=True, text=True).stdout.strip()
        lines.append(
            f"{version}: {passed} passed, {failed} failed, {skipped} skipped"
            + ("" if code in (0,) else f" (pytest exit {code})")
        )
        for k, n in enumerate((passed, failed, skipped)):
            totals[k] += n
    leaked = leftover_cluster_processes()
    if leaked:
        print("ipyparallel processes left running:", *leaked, sep="\n  ", flush=True)
        status |= 1
    else:
        print("no ipyparallel engine or controller left running", flush=True)
    print("\n".join(["", "ipy_runmod test suite, by interpreter:", *lines]))
    print(f"total: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped", flush=True)
    return 1 if status else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
