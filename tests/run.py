"""Run the whole test suite with nox, on a machine with nothing but Python 3.

    python3 tests/run.py                              # lint, tests on every CPython 3.11+, browser
    python3 tests/run.py -s tests-3.12 -- -k merge    # arguments are nox's; after `--`, pytest's
    python3 tests/run.py -s lint
    python3 tests/run.py -l                           # list the sessions

Makes (once) a virtual environment in .venvs/nox with nox installed, then runs nox on
noxfile.py with the arguments given: with none, its default sessions, `lint`, `tests`
on each interpreter found and `browser` on one (which installs Debian's chromium when it is
missing). The exit status is nox's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venvs" / "nox"
PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
NOX = "nox>=2025.5.1"  # for `download_python`, which keeps nox to this machine's interpreters


def nox_python() -> Path:
    """The interpreter of .venvs/nox, made and given nox if it has none."""
    check: list[str | Path] = [PYTHON, "-I", "-c", "import nox"]
    if not PYTHON.exists() or subprocess.run(check, capture_output=True).returncode:
        print(f"tests/run.py: installing nox into {VENV}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", VENV], check=True)
        install = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", NOX]
        subprocess.run([PYTHON, *install], check=True)
    return PYTHON


def main(args: list[str]) -> int:
    command: list[str | Path] = [nox_python(), "-m", "nox", "-f", ROOT / "noxfile.py", *args]
    return subprocess.run(command, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
