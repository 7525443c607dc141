"""Demo of `%runmod`: `python3 notebooks/demo.py`, from any directory.

Sets up its own virtual environment (`<repo>/.venvs/demo`, with this repository installed
editable), then drives a real IPython shell through `demo_session.ipy`: each step is shown
as `In [n]:` and run as a terminal cell, with its real output and tracebacks. Steps whose
first line starts with `# fails` must fail, all others must succeed; the exit status is 0
when every step did what the script says, 1 otherwise.
"""

import io
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
VENV = REPO / ".venvs" / "demo"
VENV_PYTHON = VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def bootstrap() -> int:
    """Create the virtual environment if needed and run this script again with it."""
    check = [str(VENV_PYTHON), "-I", "-c", "import IPython, ipy_runmod"]
    if not VENV_PYTHON.exists() or subprocess.run(check, capture_output=True).returncode:
        print(f"demo: installing ipy_runmod into {VENV} (first run only)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        install = ["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([str(VENV_PYTHON), *install, "-e", str(REPO)], check=True)
    return subprocess.run([str(VENV_PYTHON), __file__, *sys.argv[1:]]).returncode


def steps(path: Path) -> list[str]:
    """The session's steps: blocks of lines separated by blank lines."""
    blocks = path.read_text(encoding="utf-8").strip().split("\n\n")
    return [block.strip("\n") for block in blocks if block.strip()]


def run_session(path: Path) -> int:
    """Run each step in a real IPython shell; return the number of unexpected outcomes."""
    from IPython.terminal.interactiveshell import TerminalInteractiveShell
    from traitlets.config import Config

    sys.path.insert(0, str(HERE))  # `demo_analysis` is importable whatever the cwd
    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # leave the user's IPython history alone
    shell = TerminalInteractiveShell.instance(config=config, colors="nocolor")
    unexpected = 0
    for source in steps(path):
        n = shell.execution_count
        first, *rest = source.splitlines()
        more = (f"{'...:':>{len(str(n)) + 6}} {line}" for line in rest)
        print(f"In [{n}]: {first}", *more, sep="\n")
        result = shell.run_cell(source, store_history=True)
        expected = not first.startswith("# fails")
        if result.success != expected:
            unexpected += 1
            print(f"!!! expected this step to {'succeed' if expected else 'fail'}")
        print()
    return unexpected


def main() -> int:
    if Path(sys.prefix).resolve() != VENV.resolve():
        return bootstrap()
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # keep stdout and stderr in order
    unexpected = run_session(HERE / "demo_session.ipy")
    verdict = "as scripted" if not unexpected else f"with {unexpected} unexpected outcome(s)"
    print(f"demo: the session ran {verdict}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
