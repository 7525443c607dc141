"""nox sessions: `lint` once, `tests` on every CPython 3.11+ found, `browser` once.

    nox                          # lint, tests-3.11, tests-3.12, ... (what is found), browser
    nox -l                       # list the sessions
    nox -s tests-3.12                   # one interpreter: tests/, then the notebooks (nbval)
    nox -s tests-3.12 -- -m core -x     # words after `--` replace both with one pytest run
    nox -s lint
    nox -s browser                      # JupyterLab and Notebook 7 in Debian's chromium

Interpreters are looked for among pyenv's versions and `python3.X` on PATH; the newest patch
release of each minor version is used. Each one gets a link `python3.X` in `.nox/pythons/`,
which goes first on PATH, so that nox finds exactly that interpreter for `python="3.X"`
(pyenv's shims of versions that are not selected do not run).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
OLDEST_MINOR = 11
PROBE = "import sys; print(sys.implementation.name, *sys.version_info[:3])"
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", "notebooks/sanitize.cfg"]

nox.options.sessions = ["lint", "tests", "browser"]
nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"  # only interpreters that are on this machine


def find_pythons() -> dict[str, str]:
    """The newest CPython 3.11+ of each minor version found: {"3.12": "/path/to/python"}."""
    candidates: list[str] = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip()
        if root and Path(root, "versions").is_dir():
            candidates += [str(p / "bin" / "python3") for p in Path(root, "versions").iterdir()]
    candidates += [shutil.which(f"python3.{minor}") or "" for minor in range(OLDEST_MINOR, 40)]
    candidates.append(getattr(sys, "_base_executable", sys.executable))
    found: dict[tuple[int, ...], str] = {}
    for exe in filter(None, candidates):
        try:
            out = subprocess.run([exe, "-c", PROBE], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        name, *numbers = out.stdout.split() or [""]
        if out.returncode == 0 and name == "cpython" and len(numbers) == 3:
            version = tuple(int(n) for n in numbers)
            if version[:2] >= (3, OLDEST_MINOR):
                found.setdefault(version, exe)
    newest: dict[str, str] = {}
    for version, exe in sorted(found.items(), reverse=True):
        newest.setdefault(f"{version[0]}.{version[1]}", exe)
    return dict(sorted(newest.items(), key=lambda item: int(item[0].split(".")[1])))


def put_first_on_path(pythons: dict[str, str]) -> None:
    """Make `python3.X` on PATH mean the interpreter found for 3.X."""
    links = ROOT / ".nox" / "pythons"
    links.mkdir(parents=True, exist_ok=True)
    for minor, exe in pythons.items():
        link = links / f"python{minor}"
        if not link.is_symlink() or os.readlink(link) != exe:
            link.unlink(missing_ok=True)
            link.symlink_to(exe)
    os.environ["PATH"] = f"{links}{os.pathsep}{os.environ.get('PATH', '')}"


PYTHONS = find_pythons()
put_first_on_path(PYTHONS)


@nox.session(python=next(iter(PYTHONS), None))
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check and mypy: once, on the oldest interpreter."""
    session.install(".", "ruff", "mypy")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session(python=list(PYTHONS) or None)
def tests(session: nox.Session) -> None:
    """pytest: the Python tests and the notebooks (nbval); then no cluster left running."""
    if not PYTHONS:
        session.error(f"no CPython 3.{OLDEST_MINOR} or newer found (pyenv, python3.X on PATH)")
    session.install(".[test]")
    session.run("python", "--version")
    try:
        # The Python tests, then the notebooks through nbval: each layer can run alone too.
        session.run("pytest", *(session.posargs or ["tests"]))
        if not session.posargs:
            session.run("pytest", *NBVAL, "notebooks")
    finally:
        leftover = leftover_cluster_processes(str(session.virtualenv.location))
        if leftover:
            session.error("ipyparallel processes left running:\n  " + "\n  ".join(leftover))
    session.log("no ipyparallel controller or engine left running")


CHROMIUM = Path("/usr/bin/chromium")


@nox.session(python="3.12" if "3.12" in PYTHONS else next(reversed(PYTHONS), None))
def browser(session: nox.Session) -> None:
    """The browser layer: JupyterLab and Notebook 7 driven by playwright in Debian's chromium.

    On one interpreter (3.12 when there is one). Installs the Debian package `chromium` when it
    is missing (as root, through apt-get); playwright never downloads a browser of its own.
    """
    if not CHROMIUM.exists():
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            session.error(
                f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
            )
        noninteractive = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", "-q", external=True, env=noninteractive)
        session.run("apt-get", "install", "-y", "-q", "chromium", external=True, env=noninteractive)
    session.install(".[browser]")
    screenshots = Path(session.virtualenv.location) / "screenshots"
    env = {
        "IPY_RUNMOD_BROWSER": "required",  # a browser test that cannot run fails, never skips
        "IPY_RUNMOD_SCREENSHOTS": str(screenshots),
    }
    session.run("pytest", "-m", "browser", *(session.posargs or ["tests/test_browser.py"]), env=env)
    session.log(f"screenshots of the pages: {screenshots}")


def leftover_cluster_processes(venv: str, wait: float = 15.0) -> list[str]:
    """ipyparallel processes of this venv still running `wait` s after the tests (a leak).

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
            if venv in line and "ipyparallel" in line
        ]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
