"""Run one `%runmod` line in a fresh process that hosts a real IPython, and report.

    python tests/differential_host.py REPORT.json '%runmod json.tool --main --isolated -- x.json'

The cell runs with this process's real standard streams (file descriptors 0, 1 and 2), so
what the module writes, to `sys.stdout` or straight to a descriptor, and a stream it closes,
are seen by whoever reads them: the test compares them with `python -m` of the same tool.
The report, written to REPORT.json and never to the streams, holds the exit status
`python -m` would have ended with, the cell's error, and every part of the session (the
README's "What a run leaves in the session") that differs after the run from before it.
"""

from __future__ import annotations

import builtins
import json
import logging
import os
import signal
import sys
import warnings
from typing import Any

from IPython.terminal.interactiveshell import TerminalInteractiveShell

from ipy_runmod import ModuleExit
from ipy_runmod._result import exit_code_of


def session(shell: TerminalInteractiveShell) -> dict[str, Any]:
    """What the README promises a run leaves as it was, in a form JSON can compare."""
    streams = {
        name: (id(getattr(sys, name)), getattr(sys, name).closed)
        for name in ("stdin", "stdout", "stderr", "__stdin__", "__stdout__", "__stderr__")
    }
    root = logging.getLogger()
    return {
        "streams": streams,
        "hooks": [id(sys.displayhook), id(sys.excepthook)],
        "signal handlers": {str(n): repr(signal.getsignal(n)) for n in signal.valid_signals()},
        "cwd": os.getcwd(),
        "sys.path": list(sys.path),
        "os.environ": dict(os.environ),
        "warnings filters": [repr(f) for f in warnings.filters],
        "root logger": [root.level, [id(h) for h in root.handlers], logging.root.manager.disable],
        "sys.argv": list(sys.argv),
        "__main__": id(sys.modules["__main__"]),
        "notebook names": sorted(shell.user_ns),
        "builtins": {name: id(value) for name, value in vars(builtins).items()},
    }


def status_of(error: BaseException | None) -> int:
    """The exit status `python -m` ends with after the error the cell failed with."""
    if error is None:
        return 0
    if isinstance(error, ModuleExit):
        return exit_code_of(SystemExit(error.code))
    return 1


def main(report_path: str, cell: str) -> None:
    # Started as a script, this process has tests/ first on sys.path: `python -m` has not.
    del sys.path[0]
    shell = TerminalInteractiveShell.instance(colors="nocolor")
    shell.history_manager.enabled = False
    shell.run_line_magic("load_ext", "ipy_runmod")
    before = session(shell)
    result = shell.run_cell(cell)
    error = result.error_before_exec or result.error_in_exec
    problems: list[str] = []
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception as exc:  # a closed or broken stream: what the user would hit next
            problems.append(f"{stream!r}.flush(): {type(exc).__name__}: {exc}")
    after = session(shell)
    changed = {key: [before[key], after[key]] for key in before if before[key] != after[key]}
    report = {
        "status": status_of(error),
        "error": None if error is None else f"{type(error).__name__}: {error}",
        "changed": changed,
        "problems": problems,
    }
    with open(report_path, "w", encoding="utf-8") as file:
        json.dump(report, file, indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
