"""Run a module like `python -m`, inside IPython and Jupyter: `%load_ext ipy_runmod`.

The core (`run_module`, `run`, `execute` of a `Request`, `RunResult`) needs no IPython;
the magics are imported only when the extension is loaded.
"""

from __future__ import annotations

from typing import Any

from ._core import (
    InvalidRequest,
    NotRunnable,
    Plan,
    Request,
    execute,
    last_result,
    merge_into,
    plan,
    run,
    run_module,
)
from ._result import ModuleExit, ProcessEnded, RunResult, UnpicklableError

__version__ = "0.1.0"

__all__ = [
    "InvalidRequest",
    "ModuleExit",
    "NotRunnable",
    "Plan",
    "ProcessEnded",
    "Request",
    "RunResult",
    "UnpicklableError",
    "__version__",
    "execute",
    "last_result",
    "load_ipython_extension",
    "merge_into",
    "plan",
    "run",
    "run_module",
    "unload_ipython_extension",
]


def load_ipython_extension(shell: Any) -> None:
    """`%load_ext ipy_runmod`: register `%runmod` and `%%runmod`."""
    from .magics import load

    load(shell)


def unload_ipython_extension(shell: Any) -> None:
    """`%unload_ext ipy_runmod`: remove the magics again."""
    from .magics import unload

    unload(shell)
