"""`RunResult`: what one run of a module produced."""

from __future__ import annotations

import functools
import html
import inspect
import io
import itertools
import pickle
import reprlib
import sys
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from importlib.machinery import ModuleSpec
from types import FunctionType, MappingProxyType, ModuleType
from typing import Any, TypeVar

_T = TypeVar("_T")


class _ShortRepr(reprlib.Repr):
    """reprlib, but a dict keeps its own order (reprlib sorts the keys) and cuts with "…"."""

    def __init__(self) -> None:
        super().__init__()  # the limits as attributes: keywords only from Python 3.12 on
        self.maxlevel = 2
        self.maxdict = self.maxlist = self.maxtuple = self.maxset = 6
        self.maxfrozenset = self.maxdeque = 6
        self.maxstring = self.maxother = 60
        self.fillvalue = "…"

    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{…}"
        items = itertools.islice(x.items(), self.maxdict)
        pieces = [f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}" for k, v in items]
        return "{" + ", ".join(pieces + ["…"] * (len(x) > self.maxdict)) + "}"


_short_repr = _ShortRepr()

#: A display shows this many rows of a table, then how many more there are.
MAX_ROWS = 20
#: Characters of a value's one-line summary.
_WIDTH = 80
#: Containers whose repr is the builtin one: summarised with their length.
_CONTAINER_REPRS: set[Any] = {t.__repr__ for t in (list, tuple, dict, set, frozenset, deque)}


def _cut(text: str, width: int = _WIDTH) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _one_line(text: str) -> str:
    """The first line of a repr; "…" says there was more (never lines squashed into one)."""
    lines = text.strip().splitlines() or [""]
    return _cut(lines[0] + (" …" if len(lines) > 1 else ""))


def _shape(value: Any) -> tuple[int, ...] | None:
    """The shape of an array, frame or tensor (duck-typed: numpy and pandas are not imported)."""
    if getattr(type(value), "shape", None) is None:  # on the type: no proxy's __getattr__
        return None
    try:
        shape = tuple(value.shape)
    except Exception:
        return None
    return shape if shape and all(isinstance(n, int) for n in shape) else None


def summary(value: Any) -> str:
    """One line saying what `value` is: shape and dtype, length, a module's name, a short repr.

    Never raises: a value whose repr fails is shown by the error.
    """
    try:
        return _summary(value)
    except Exception as e:
        return f"<repr failed: {type(e).__name__}>"


def _summary(value: Any) -> str:
    if isinstance(value, ModuleType):
        return value.__name__
    if isinstance(value, type):
        return f"class {value.__module__}.{value.__qualname__}"
    if inspect.isroutine(value):
        try:
            signature = str(inspect.signature(value))
        except (TypeError, ValueError):
            signature = "(…)"
        return _cut(f"{getattr(value, '__qualname__', value.__name__)}{signature}")
    shape = _shape(value)
    if shape is not None:
        text = "shape " + str(shape)
        kind = type(value)
        if getattr(kind, "dtypes", None) is not None and getattr(kind, "columns", None) is not None:
            columns = itertools.islice(zip(value.columns, value.dtypes, strict=False), 8)
            text += ", columns " + ", ".join(f"{c}: {d}" for c, d in columns)  # a data frame
        elif getattr(kind, "dtype", None) is not None:
            text += f", {value.dtype}"
        return _cut(text)
    if isinstance(value, (str, bytes)):
        text, unit = _short_repr.repr(value), "chars" if isinstance(value, str) else "bytes"
        return text if len(value) <= _short_repr.maxstring else f"{text} ({len(value):,} {unit})"
    if type(value).__repr__ in _CONTAINER_REPRS:
        n = len(value)
        return _cut(f"{n:,} item{'' if n == 1 else 's'}: {_short_repr.repr(value)}")
    return _one_line(repr(value))


def _imported(value: Any, run_name: str) -> bool:
    """A module, or a class or function that comes from another module than the run's."""
    if isinstance(value, ModuleType):
        return True
    if not callable(value):  # most values: no need to look further
        return False
    if isinstance(value, type) or inspect.isroutine(value):
        return getattr(value, "__module__", None) != run_name
    return False


class _Row:
    """A name the module bound: its type and summary are worked out only if it is shown."""

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.value = value

    @functools.cached_property
    def kind(self) -> str:
        return "module" if isinstance(self.value, ModuleType) else type(self.value).__name__

    @functools.cached_property
    def summary(self) -> str:
        return summary(self.value)


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
    """Pickle that never imports a module, and refuses the classes and functions a run defined.

    Plain pickle saves a class or function by reference, and to check the reference it
    imports the module named: a module not imported here (say, one a `--no-alter-sys`
    run defined things in) would have its code run, in this process, by pickling. Here a
    class or function is pickled only when its module is in sys.modules already and holds
    it there. One the run defined is refused too: the run's module is in this process's
    sys.modules at best (a run under the module's own name stays registered), and loading
    the pickle elsewhere would import it, running the module's code there; a fresh
    import's objects are not the run's either.
    """

    def __init__(
        self, file: io.BytesIO, run_name: str | None, run_globals: dict[str, Any] | None
    ) -> None:
        super().__init__(file, protocol=pickle.DEFAULT_PROTOCOL)
        self.run_name = run_name
        self.run_globals = run_globals

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (type, FunctionType)):
            name = getattr(obj, "__module__", None)
            module = sys.modules.get(name) if isinstance(name, str) else None
            if module is None or _lookup(module, obj.__qualname__) is not obj:
                raise pickle.PicklingError(
                    f"{obj.__qualname__} is not to be found in an imported module {name!r}"
                )
            if name == self.run_name and getattr(module, "__dict__", None) is self.run_globals:
                raise pickle.PicklingError(f"{obj.__qualname__} was defined by the run of {name}")
        return NotImplemented


def dumps(
    obj: object, run_name: str | None = None, run_globals: dict[str, Any] | None = None
) -> bytes:
    """`obj` pickled by `_Pickler`: nothing imported, nothing the run `run_name` defined."""
    buffer = io.BytesIO()
    _Pickler(buffer, run_name, run_globals).dump(obj)
    return buffer.getvalue()


def _why(error: BaseException) -> str:
    """The error as one line ("TypeError: cannot pickle 'module' object"), shortened."""
    try:
        text = f"{type(error).__name__}: {error}"
    except Exception:  # its own __str__ failed
        text = f"{type(error).__name__}: <unprintable {type(error).__qualname__}>"
    return text if len(text) <= 200 else text[:199] + "…"


def _portable(
    exc: BaseException, run_name: str, run_globals: dict[str, Any]
) -> tuple[bytes | None, str, str, str]:
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
        data: bytes | None = dumps(exc, run_name, run_globals)
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
          any pickled exception, `__traceback__`, `__cause__` and `__context__` are lost.
        - Of the module's globals, only the names the module bound (`bound`: no dunders,
          nothing it was merely given), and of those only the values that pickle. Each value
          is pickled on its own: a bad value costs only its own name, and two names bound to
          one object come back as two equal objects. Classes and functions the module
          defined itself, and values that hold them (their instances, say), never pickle
          here: pickle saves them by reference to the run's module, which loading the
          result in another process would import, running the module's code there (this
          is checked without importing the module). Modules,
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
                    values[name] = dumps(self.globals[name], self.run_name, self.globals)
                except Exception as e:
                    dropped[name] = f"not picklable: {_why(e)}"
        try:
            spec: bytes | None = dumps(self.spec, self.run_name, self.globals)
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
            "exception": None
            if exception is None
            else _portable(exception, self.run_name, self.globals),
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

    # --- display: a one-line repr, a text table for terminals, an HTML table for notebooks

    def _title(self) -> str:
        """The module, and the run name only when it is not the module's own."""
        same = self.run_name == self.module
        return self.module if same else f"{self.module} as {self.run_name}"

    def _status(self) -> str:
        if self.exception is None:
            return "ok"
        if self.exit_code is not None:
            return f"exit {self.exit_code}" if self.exit_code else "ok (exit 0)"
        return f"failed: {self._error_type()}"

    def _error_type(self) -> str:
        # An exception that could not travel here stands in under its original type's name.
        name = getattr(self.exception, "type_name", None) or type(self.exception).__name__
        return str(name).rpartition(".")[2]

    def _error(self) -> str | None:
        """The failure as one line, "ZeroDivisionError: division by zero"; None for a success."""
        if self.ok or self.exception is None:
            return None
        if isinstance(self.exception, SystemExit):
            code = self.exception.code
            return f"SystemExit: {code!r}" if not isinstance(code, int) else None
        try:
            message = str(getattr(self.exception, "message", None) or self.exception)
        except Exception:
            message = "<unprintable message>"
        return _one_line(f"{self._error_type()}: {message}" if message else self._error_type())

    def _facts(self) -> str:
        return f"{_count(len(self.bound), 'name')} bound, {format_seconds(self.elapsed)}"

    def __repr__(self) -> str:
        return f"<RunResult {self._title()}: {self._status()}, {self._facts()}>"

    def _rows(self) -> tuple[list[str], list[str]]:
        """(the names the module bound itself, the modules and functions it imported)."""
        own: list[str] = []
        imported: list[str] = []
        for name in self.bound:
            if name in self.globals:
                names = imported if _imported(self.globals[name], self.run_name) else own
                names.append(name)
        return own, imported

    def _shown(self, names: list[str]) -> list[_Row]:
        return [_Row(name, self.globals[name]) for name in names[:MAX_ROWS]]

    def _notes(self) -> list[str]:
        notes = []
        if self.merged:
            notes.append("merged into the notebook: " + ", ".join(self.merged))
        if self.dropped:
            notes.append("left out when pickled: " + ", ".join(self.dropped))
        return notes

    def _text(self, rows: tuple[list[str], list[str]] | None = None) -> str:
        """The display for a terminal: what the HTML shows, as aligned text."""
        own, imported = rows or self._rows()
        lines = [f"RunResult {self._title()}: {self._status()}, {self._facts()}"]
        error = self._error()
        if error:
            lines.append(f"  {error}")
        shown = self._shown(own)
        if shown:
            name_width = max(len(row.name) for row in shown)
            type_width = max(len(row.kind) for row in shown)
            lines += [
                f"  {row.name:<{name_width}}  {row.kind:<{type_width}}  {row.summary}"
                for row in shown
            ]
        if len(own) > len(shown):
            lines.append(f"  … and {len(own) - len(shown)} more")
        if imported:
            names = ", ".join(imported[:MAX_ROWS])
            more = f", … and {len(imported) - MAX_ROWS} more" if len(imported) > MAX_ROWS else ""
            lines.append(f"  imported: {names}{more}")
        lines += [f"  {note}" for note in self._notes()]
        return "\n".join(lines)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self._text())

    def _repr_html_(self) -> str:
        own, imported = rows = self._rows()
        error = self._error()
        status = "ok" if self.ok else "failed"
        parts = [
            f"<div class='rm-header'><span class='rm-kind'>RunResult</span> "
            f"<span class='rm-title'>{html.escape(self._title())}</span> "
            f"<span class='rm-status rm-{status}'>{html.escape(self._status())}</span> "
            f"<span class='rm-facts'>{html.escape(self._facts())}</span></div>"
        ]
        if error:
            parts.append(f"<div class='rm-error'>{html.escape(error)}</div>")
        if own:
            parts.append(_html_table(self._shown(own), len(own)))
        if imported:
            parts.append(
                f"<details class='rm-imported'><summary>imported: "
                f"{_count(len(imported), 'name')}</summary>"
                f"{_html_table(self._shown(imported), len(imported))}</details>"
            )
        parts += [f"<div class='rm-note'>{html.escape(note)}</div>" for note in self._notes()]
        # As xarray does: the text shows where styles do not run (the wrapper stays hidden).
        return (
            f"<div class='ipy-runmod'><style>{_CSS}</style>"
            f"<pre class='rm-text'>{html.escape(self._text(rows))}</pre>"
            f"<div class='rm-wrap' style='display:none'>{''.join(parts)}</div></div>"
        )


def _html_table(rows: list[_Row], total: int) -> str:
    """The rows shown, then how many more there are of `total`."""
    body = "".join(
        f"<tr><td class='rm-name'>{html.escape(row.name)}</td>"
        f"<td class='rm-type'>{html.escape(row.kind)}</td>"
        f"<td class='rm-value' title='{html.escape(row.summary)}'>{html.escape(row.summary)}</td>"
        "</tr>"
        for row in rows
    )
    if total > len(rows):
        body += f"<tr class='rm-more'><td colspan='3'>… and {total - len(rows)} more</td></tr>"
    return (
        "<table class='rm-names'><thead><tr><th>name</th><th>type</th><th>value</th></tr>"
        f"</thead><tbody>{body}</tbody></table>"
    )


# JupyterLab's theme variables, with light fallbacks elsewhere and dark ones where a page
# says it is dark (VS Code, pydata-sphinx-theme). Selectors start with `.ipy-runmod` and
# one more class, to win over JupyterLab's right-aligned `.jp-RenderedHTMLCommon td`.
_CSS = """
.ipy-runmod {
  --rm-fg: var(--jp-content-font-color0, rgba(0, 0, 0, 0.87));
  --rm-fg-dim: var(--jp-content-font-color2, rgba(0, 0, 0, 0.54));
  --rm-border: var(--jp-border-color2, #e0e0e0);
  --rm-row: var(--jp-layout-color1, #fff);
  --rm-row-alt: var(--jp-layout-color2, #f5f5f5);
  --rm-ok: var(--jp-success-color1, #388e3c);
  --rm-failed: var(--jp-error-color1, #d32f2f);
  --rm-mono: var(--jp-code-font-family, SFMono-Regular, Menlo, Consolas, monospace);
}
html[theme="dark"] .ipy-runmod, html[data-theme="dark"] .ipy-runmod,
body[data-theme="dark"] .ipy-runmod, body.vscode-dark .ipy-runmod {
  --rm-fg: var(--jp-content-font-color0, rgba(255, 255, 255, 0.87));
  --rm-fg-dim: var(--jp-content-font-color2, rgba(255, 255, 255, 0.54));
  --rm-border: var(--jp-border-color2, #424242);
  --rm-row: var(--jp-layout-color1, #111);
  --rm-row-alt: var(--jp-layout-color2, #2a2a2a);
  --rm-ok: var(--jp-success-color1, #66bb6a);
  --rm-failed: var(--jp-error-color1, #ef5350);
}
.ipy-runmod .rm-text { display: none; }
.ipy-runmod .rm-wrap { display: block !important; color: var(--rm-fg); font-size: 13px;
  line-height: 1.5; }
.ipy-runmod .rm-header { margin-bottom: 4px; }
.ipy-runmod .rm-kind { color: var(--rm-fg-dim); }
.ipy-runmod .rm-title { font-family: var(--rm-mono); font-weight: 600; }
.ipy-runmod .rm-status { font-weight: 600; }
.ipy-runmod .rm-ok { color: var(--rm-ok); }
.ipy-runmod .rm-failed { color: var(--rm-failed); }
.ipy-runmod .rm-facts, .ipy-runmod .rm-note { color: var(--rm-fg-dim); }
.ipy-runmod .rm-error { font-family: var(--rm-mono); color: var(--rm-failed);
  border-left: 3px solid var(--rm-failed); padding-left: 8px; margin: 4px 0; }
.ipy-runmod .rm-names { border-collapse: collapse; margin: 0; table-layout: auto;
  font-size: 13px; border: none; }
.ipy-runmod .rm-names th, .ipy-runmod .rm-names td { text-align: left; padding: 1px 12px 1px 0;
  vertical-align: top; border: none; white-space: nowrap; }
.ipy-runmod .rm-names th { color: var(--rm-fg-dim); font-weight: normal;
  border-bottom: 1px solid var(--rm-border); }
.ipy-runmod .rm-names tbody tr:nth-child(odd) { background: var(--rm-row); }
.ipy-runmod .rm-names tbody tr:nth-child(even) { background: var(--rm-row-alt); }
.ipy-runmod .rm-names .rm-name, .ipy-runmod .rm-names .rm-value { font-family: var(--rm-mono); }
.ipy-runmod .rm-names .rm-type { color: var(--rm-fg-dim); }
.ipy-runmod .rm-names .rm-value { max-width: 60em; overflow: hidden; text-overflow: ellipsis; }
.ipy-runmod .rm-names .rm-more td { color: var(--rm-fg-dim); font-style: italic; }
.ipy-runmod .rm-imported { margin-top: 4px; }
.ipy-runmod .rm-imported summary { color: var(--rm-fg-dim); cursor: pointer; }
"""
