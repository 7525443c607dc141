"""The fresh process of a `--subprocess` run: run one module, send back its `RunResult`.

Started by `_subprocess` as `python -c <bootstrap>` with the session's `sys.path`; it
talks over two pipes of its own, so the module's stdout and stderr are its own too:

1. it reads the request (module, arguments, run name, flags) and finds the module;
2. it sends the global names the module's code can refer to (or why it cannot run);
3. it reads the session's variables among those names, each pickled on its own, and
   runs the module with the same in-process run `%runmod` uses;
4. it sends the `RunResult` in its pickled form, and the traceback as text.

Only `ipy_runmod`'s core is imported here, never IPython.
"""

from __future__ import annotations

import builtins
import gc
import io
import pickle
import sys
import traceback
from collections.abc import Mapping
from types import CodeType
from typing import IO, Any

from . import _core, _session, _watch
from ._result import _portable, _why

__all__ = ["global_names", "main"]


def global_names(code: CodeType) -> set[str]:
    """Every name the code can look up as a global, its nested functions' and classes' too.

    `co_names` also holds attribute names: more than needed, never less (short of
    `globals()[name]`, `eval` and the like, which no code object shows).
    """
    names: set[str] = set()
    stack = [code]
    while stack:
        current = stack.pop()
        names.update(current.co_names)
        stack.extend(const for const in current.co_consts if isinstance(const, CodeType))
    return names


def _unbuffered(stream: Any) -> Any:
    """The stream as `python -u` has it, so that each write reaches the session at once."""
    if stream is None:
        return None
    raw = io.FileIO(stream.fileno(), "w", closefd=False)
    raw.name = stream.name  # "<stdout>", as Python names it
    return io.TextIOWrapper(raw, encoding=stream.encoding, errors=stream.errors, write_through=True)


def _send(writer: IO[bytes], message: tuple[Any, ...]) -> None:
    pickle.dump(message, writer)
    writer.flush()


def _loaded(values: Mapping[str, bytes], left_out: dict[str, str]) -> dict[str, Any]:
    """Each value unpickled; one that cannot be (its class is the notebook's) is left out,
    and why is noted in `left_out`."""
    loaded: dict[str, Any] = {}
    for name, data in values.items():
        try:
            loaded[name] = pickle.loads(data)
        except Exception as e:
            left_out[name] = f"pickled, but cannot be unpickled in the run's process: {_why(e)}"
    return loaded


def _say_why_left_out(exc: BaseException | None, left_out: Mapping[str, str]) -> None:
    """A NameError for a variable of the notebook (or the cell) that did not cross says
    so, and why."""
    if not isinstance(exc, NameError) or exc.name is None:
        return
    why = left_out.get(exc.name)
    if why is not None:
        exc.add_note(f"{exc.name!r} was left out of this run in a process of its own ({why})")


def _traceback_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def main(read_fd: int, write_fd: int) -> None:
    """Serve one run over the two pipes; exit with the status `python -m` would."""
    # As under `python -u`, sys.__stdout__ is sys.stdout.
    sys.stdout = sys.__stdout__ = _unbuffered(sys.stdout)  # type: ignore[misc]
    sys.stderr = sys.__stderr__ = _unbuffered(sys.stderr)  # type: ignore[misc]
    # What exists now is the interpreter's and ipy_runmod's, alive to the end: kept out of
    # the collector, the process ends as fast as `python -m` does (7 ms sooner). The
    # module's own objects are collected as ever.
    gc.freeze()
    _watch.never()  # one run, then the process ends: each file is checked once anyway
    with open(read_fd, "rb") as reader, open(write_fd, "wb") as writer:
        try:
            header = pickle.load(reader)
        except EOFError:
            return  # started for a run that never came: the session ended or moved on
        sys.path[:] = header["path"]  # the session's, as it is when the run starts
        request = _core.Request(
            header["module"],
            args=header["args"],
            run_name=header["run_name"],
            alter_sys=header["alter_sys"],
            keep_state=header["keep_state"],
        )
        try:
            if header["which"]:
                _send(writer, ("plan", _core.plan(request)))
                return
            target = _core._find(request, _session.working_directory())
        except _core.NotRunnable as e:
            _send(writer, ("not-runnable", str(e), e.missing))
            sys.exit(1)
        except BaseException as e:  # from a parent package's __init__: the user's to see
            _send(writer, ("error", _portable(e, request.module, {}), _traceback_text(e)))
            sys.exit(1)
        _send(writer, ("names", sorted(global_names(target.code))))
        init_globals, parameters, left_out = pickle.load(reader)
        if init_globals is not None:
            request.init_globals = _loaded(init_globals, left_out)
        # As `python -m` has it: builtins the module, `exit` and `quit` site's own.
        request.parameters = {"__builtins__": builtins, **_loaded(parameters, left_out)}
        result = _core._execute_here(request, target)
        exc = result.exception
        _say_why_left_out(exc, left_out)
        text = None if exc is None or isinstance(exc, SystemExit) else _traceback_text(exc)
        _send(writer, ("result", pickle.dumps(result), text))
    if result.exit_code is not None:
        sys.exit(result.exit_code)
    if exc is not None:
        sys.exit(1)
