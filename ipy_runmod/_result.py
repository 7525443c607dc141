"""`RunResult`: what one run of a module produced."""

from __future__ import annotations

import html
import io
import pickle
import reprlib
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping
from importlib.machinery import ModuleSpec
from types import FunctionType, MappingProxyType
from typing import Any, TypeVar

_T = TypeVar("_T")

_short_repr = reprlib.Repr()
_short_repr.maxstring = 60
_short_repr.maxother = 60


def exit_code_of(exc: SystemExit) -> int:
    """The process exit status `python -m` would end with for this `SystemExit`."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return int(exc.code)  # sys.exit(True) exits with 1
    return 1  # a message or any other object: Python prints it and exits with 1


class ModuleExit(Exception):
    """The module called `sys.exit()` with a non-zero status or a message.

    Shown as one line, like a failing command in a shell; the cell fails and the
    kernel keeps running. The original `SystemExit` is the `__cause__`.
    """

    def __init__(self, module: str, exit: SystemExit) -> None:
        status = exit_code_of(exit)
        # A message is shown as Python prints it, but on one line.
        detail = "" if isinstance(exit.code, int) else f": {exit.code}"
        if not detail.isprintable():
            detail = (
                f": {exit.code!r}" if isinstance(exit.code, str) else ": " + repr(str(exit.code))
            )
        super().__init__(f"{module} exited with status {status}{detail}")
        self.module = module
        self.code = exit.code

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


class ProcessEnded(Exception):
    """The process of a `--subprocess` run ended before the run did.

    Killed by a signal (a segfault, SIGKILL), `os._exit`, or `--timeout`: there is no
    result to report, so the cell fails with one line saying how the process ended.
    `returncode` is the process's, as `subprocess` gives it (negative: the signal).
    """

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message, returncode)
        self.returncode = returncode

    def __str__(self) -> str:
        return str(self.args[0])

    def _render_traceback_(self) -> list[str]:
        return [f"{type(self).__name__}: {self}"]


def format_seconds(seconds: float) -> str:
    """A duration as people read it: `48.2 µs`, `3.1 ms`, `2.50 s`."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _html_row(name: str, value: Any) -> str:
    cells = (name, type(value).__name__, _short_repr.repr(value))
    return "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"


#: The version of `RunResult`'s pickled form; `__setstate__` refuses any other.
_PICKLE_FORMAT = 1


class UnpicklableError(Exception):
    """Stands in for a module's exception that could not be pickled or unpickled.

    It carries what ipyparallel's `RemoteError` carries: the original exception's type
    (`type_name`, qualified: "pkg.mod.StepError"), its message and its traceback as text.
    """

    def __init__(self, type_name: str, message: str = "", traceback: str = "") -> None:
        super().__init__(type_name, message, traceback)
        self.type_name = type_name
        self.message = message
        self.traceback = traceback

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}" if self.message else self.type_name


def _lookup(module: object, qualname: str) -> object:
    """`module.<qualname>`, or None; never imports anything."""
    found: object = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found


class _Pickler(pickle.Pickler):
    """Pickle, but for the classes and functions a run defined, and exceptions' display hooks.

    A class or function the run defined is refused: it would be pickled by reference,
    and plain pickle would import the run's module again to look it up (running its
    code, and raising whatever that raises) only to fail all the same, since the run's
    objects are not the ones a fresh import makes. An exception is pickled without the
    `_render_traceback_` the magic gives it for IPython's display: a closure over the
    shell, which does not pickle and means nothing in another process.
    """

    def __init__(self, file: io.BytesIO, run_name: str) -> None:
        super().__init__(file, protocol=pickle.DEFAULT_PROTOCOL)
        self.run_name = run_name

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, FunctionType)) and obj.__module__ == self.run_name:
            if _lookup(sys.modules.get(self.run_name), obj.__qualname__) is not obj:
                raise pickle.PicklingError(
                    f"{obj.__qualname__} was defined by the run of {self.run_name}"
                )
        if isinstance(obj, BaseException) and "_render_traceback_" in vars(obj):
            reduced = obj.__reduce__()
            if isinstance(reduced, tuple) and len(reduced) >= 3 and isinstance(reduced[2], dict):
                state = {k: v for k, v in reduced[2].items() if k != "_render_traceback_"}
                return (*reduced[:2], state, *reduced[3:])
        return NotImplemented


def _dumps(obj: object, run_name: str) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, run_name).dump(obj)
    return buffer.getvalue()


def _why(error: BaseException) -> str:
    """The error as one line ("TypeError: cannot pickle 'module' object"), shortened."""
    text = f"{type(error).__name__}: {error}"
    return text if len(text) <= 200 else text[:199] + "…"


def _portable(exc: BaseException, run_name: str) -> tuple[bytes | None, str, str, str]:
    """(pickled exception or None, qualified type name, message, traceback text)."""
    if isinstance(exc, UnpicklableError):
        type_name, message, text = exc.type_name, exc.message, exc.traceback
    else:
        cls = type(exc)
        module = "" if cls.__module__ == "builtins" else f"{cls.__module__}."
        type_name = module + cls.__qualname__
        try:
            message = str(exc)
        except Exception:
            message = f"<unprintable {cls.__qualname__}>"
        text = "".join(traceback.format_exception(exc))
    try:
        data: bytes | None = _dumps(exc, run_name)
    except Exception:
        data = None
    return data, type_name, message, text


def _unpickled(data: bytes | None, kind: type[_T]) -> _T | None:
    """`data` unpickled, when there is any, it loads here, and it is a `kind`; else None."""
    if data is None:
        return None
    try:
        obj = pickle.loads(data)
    except Exception:
        return None
    return obj if isinstance(obj, kind) else None


def _exception_from(portable: tuple[bytes | None, str, str, str]) -> BaseException:
    data, type_name, message, text = portable
    return _unpickled(data, BaseException) or UnpicklableError(type_name, message, text)


def _spec_from(portable: tuple[bytes | None, str, str | None]) -> ModuleSpec:
    data, name, origin = portable
    # Without its loader when that did not travel.
    return _unpickled(data, ModuleSpec) or ModuleSpec(name, None, origin=origin)


class RunResult(Mapping[str, Any]):
    """The outcome of one run: a read-only mapping over the module's final globals.

    `res["x"]`, `"x" in res`, `list(res)` and `len(res)` look at the module's globals,
    dunders included, exactly as the module left them (also after a failure).
    """

    def __init__(
        self,
        *,
        module: str,
        run_name: str,
        spec: ModuleSpec,
        argv: list[str | None] | None,
        globals: dict[str, Any],
        bound: tuple[str, ...] | Callable[[], tuple[str, ...]],
        elapsed: float,
        cpu_time: float,
        exception: BaseException | None,
    ) -> None:
        self.module = module
        self.run_name = run_name
        self.spec = spec
        self.file: str | None = spec.origin
        self.argv = argv
        self.globals = globals
        self._bound = bound
        self.elapsed = elapsed
        self.cpu_time = cpu_time
        self.exception = exception
        self.exit_code: int | None = (
            exit_code_of(exception) if isinstance(exception, SystemExit) else None
        )
        #: Names copied into the caller's namespace (set by `--merge`).
        self.merged: tuple[str, ...] = ()
        #: Modules refreshed before the run because their source changed (`--reload`).
        self.reloaded: tuple[str, ...] = ()

    @property
    def bound(self) -> tuple[str, ...]:
        """Names the module bound: new, or rebound to another object than it was given.

        The module's globals, as they are when first asked (like `globals`, they are
        the module's own), are judged against what it was given as it was at the end
        of the run: whatever the notebook does afterwards, and whatever its size, the
        notebook's own names are never the module's.
        """
        if callable(self._bound):
            self._bound = self._bound()
        return self._bound

    @property
    def ok(self) -> bool:
        """True when the module ran to the end or exited with status 0."""
        return self.exception is None or self.exit_code == 0

    def __getitem__(self, name: str) -> Any:
        return self.globals[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.globals)

    def __len__(self) -> int:
        return len(self.globals)

    #: Names left out when the result was pickled, each with the reason (`__getstate__`).
    dropped: Mapping[str, str] = MappingProxyType({})

    def __getstate__(self) -> dict[str, Any]:
        """The pickled form of a result (ipyparallel, multiprocessing, `pickle.dumps`).

        What survives the trip:

        - All the metadata: `module`, `run_name`, `file`, `argv`, `bound`, `merged`,
          `elapsed`, `cpu_time` and `exit_code` (so `ok` too).
        - `spec`, when it pickles (a `SourceFileLoader`'s does); otherwise a spec with the
          same `name` and `origin` and no loader.
        - `exception`, when it pickles and unpickles; otherwise an `UnpicklableError`
          carrying its qualified type name, its message and its traceback as text. As for
          any pickled exception, `__traceback__`, `__cause__` and `__context__` are lost
          (and so is the `_render_traceback_` display hook `%runmod` gives it).
        - Of the module's globals, only the names the module bound (`bound`: no dunders,
          nothing it was merely given), and of those only the values that pickle. Each value
          is pickled on its own: a bad value costs only its own name, and two names bound to
          one object come back as two equal objects. Classes and functions the module
          defined itself, and values that hold them (their instances, say), never pickle:
          pickle saves them by reference to the module, and the run's module is gone once
          the run is over (this is checked without importing the module again). Modules,
          open files, locks and lambdas do not pickle either.
        - A value that pickled but cannot be unpickled where the result is loaded (its
          class's module is not importable there, say) is left out there.

        `dropped` maps each name left out to the reason, and is kept if the result is
        pickled again. The result loaded is a `RunResult` like any other: a read-only
        mapping over the names kept, with the same `repr` and `_repr_html_`.
        """
        dropped = dict(self.dropped)
        values: dict[str, bytes] = {}
        for name in self.bound:
            if name in self.globals:
                try:
                    values[name] = _dumps(self.globals[name], self.run_name)
                except Exception as e:
                    dropped[name] = f"not picklable: {_why(e)}"
        try:
            spec: bytes | None = _dumps(self.spec, self.run_name)
        except Exception:
            spec = None
        exception = self.exception
        return {
            "format": _PICKLE_FORMAT,
            "attributes": {
                **{
                    key: value
                    for key, value in self.__dict__.items()
                    if key not in ("globals", "spec", "exception", "dropped", "_bound")
                },
                "_bound": self.bound,  # worked out now: the copy it is read from stays here
            },
            "globals": values,
            "spec": (spec, self.spec.name, self.spec.origin),
            "exception": None if exception is None else _portable(exception, self.run_name),
            "dropped": dropped,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("format") != _PICKLE_FORMAT:
            raise pickle.UnpicklingError(
                f"RunResult pickled in format {state.get('format')!r}, "
                f"this ipy_runmod reads format {_PICKLE_FORMAT}"
            )
        self.__dict__.update(state["attributes"])
        dropped = dict(state["dropped"])
        values: dict[str, Any] = {}
        for name, data in state["globals"].items():
            try:
                values[name] = pickle.loads(data)
            except Exception as e:
                dropped[name] = f"pickled, but cannot be unpickled here: {_why(e)}"
        self.globals = values
        self.spec = _spec_from(state["spec"])
        portable = state["exception"]
        self.exception = None if portable is None else _exception_from(portable)
        self.dropped = dropped

    def _status(self) -> str:
        if self.exception is None:
            return "ok"
        if self.exit_code is not None:
            return f"exit {self.exit_code}" if self.exit_code else "ok (exit 0)"
        # An exception that could not travel here stands in under its original type's name.
        name = getattr(self.exception, "type_name", None) or type(self.exception).__name__
        return f"failed: {name.rpartition('.')[2]}"

    def _header(self) -> str:
        return (
            f"{self.module} as {self.run_name}: {self._status()}, "
            f"{_count(len(self.bound), 'name')} bound, {format_seconds(self.elapsed)}"
        )

    def __repr__(self) -> str:
        return f"<RunResult {self._header()}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            _html_row(name, self.globals[name]) for name in self.bound if name in self.globals
        )
        return (
            f"<div><strong>RunResult</strong> {html.escape(self._header())}"
            "<table><thead><tr><th>name</th><th>type</th><th>value</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
        )
