"""Finding a module and running it the way `python -m` and `runpy.run_module` do.

Nothing here imports IPython: the magic is a thin layer over `run`, and `run_module`
is a drop-in for `runpy.run_module`.
"""

from __future__ import annotations
import __future__

import fnmatch
import functools
import importlib.util
import math
import operator
import os
import pkgutil
import runpy
import sys
import threading
import time
import warnings
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from importlib.machinery import (
    ExtensionFileLoader,
    ModuleSpec,
    SourceFileLoader,
    SourcelessFileLoader,
)
from itertools import compress, islice
from types import CodeType, MappingProxyType, ModuleType, TracebackType
from typing import Any

from . import _session, _watch
from ._codecache import get_code
from ._reload import RunModule, note_imports, refresh_changed
from ._result import RunResult, exit_code_of

__all__ = [
    "InvalidRequest",
    "NotRunnable",
    "Plan",
    "Request",
    "Runner",
    "Target",
    "bound_names",
    "execute",
    "exit_code_of",
    "find_module",
    "has_main_guard",
    "last_result",
    "merge_into",
    "plan",
    "run",
    "run_module",
    "submodule_names",
]

#: Held while `sys.argv` / `sys.modules` are changed for a run. Re-entrant, so a module may
#: itself run another module; runs from other threads wait instead of seeing our state.
SYS_LOCK = threading.RLock()

_MISSING: Any = object()
_last: RunResult | None = None
#: run name -> the module of the latest run under the module's own name that stays
#: registered in sys.modules (so that what it defined pickles by reference).
_kept: dict[str, ModuleType] = {}


class NotRunnable(ImportError):
    """The module cannot be run: not found, a package without `__main__`, a bad name...

    The message is the one `runpy` gives. `missing` names the module that could not be
    found when that is the reason, else it is None.
    """

    def __init__(self, message: str, *, missing: str | None = None) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True)
class Target:
    """A module found and ready to run."""

    name: str  #: the module whose code runs: `pkg.__main__` for a package `pkg`
    spec: ModuleSpec
    code: CodeType
    #: A submodule already in sys.modules once its package is imported: runpy warns that
    #: the run is a second copy of it ("found in sys.modules after import of package").
    imported: bool = False
    #: ... and that module is the previous run's, left registered: nothing imported it.
    rerun: bool = False


def find_module(mod_name: str) -> Target:
    """Find `mod_name` exactly as `runpy.run_module` does, importing its parent packages.

    Raises `NotRunnable` where runpy raises its own `ImportError`; any other error (say,
    an exception inside a parent package's `__init__`) propagates unchanged.
    """
    if mod_name.startswith("."):
        raise NotRunnable("Relative module names not supported")
    pkg_name, _, _ = mod_name.rpartition(".")
    imported = rerun = False
    if pkg_name:
        # Import the parent first so that its own initialisation errors are not
        # mistaken for "not found".
        try:
            __import__(pkg_name)
        except ImportError as e:
            # A missing parent is reported by find_spec() below; anything else is real.
            if e.name is None or (e.name != pkg_name and not pkg_name.startswith(e.name + ".")):
                raise
        existing = sys.modules.get(mod_name)
        imported = existing is not None and not _is_package(existing)
        rerun = imported and existing is _kept.get(mod_name)
    # What the kernel reports changed, up to now: once for both checks below.
    _watch.poll()
    try:
        spec = _find_spec(mod_name, pkg_name)
    except (ImportError, AttributeError, TypeError, ValueError) as ex:
        msg = (
            f"Error while finding module specification for {mod_name!r} ({type(ex).__name__}: {ex})"
        )
        if mod_name.endswith(".py"):
            msg += f". Try using '{mod_name[:-3]}' instead of '{mod_name}' as the module name."
        missing = ex.name if isinstance(ex, ModuleNotFoundError) else None
        raise NotRunnable(msg, missing=missing) from ex
    if spec is None:
        raise NotRunnable(f"No module named {mod_name}", missing=mod_name)
    if spec.submodule_search_locations is not None:
        if mod_name == "__main__" or mod_name.endswith(".__main__"):
            raise NotRunnable("Cannot use package as __main__ module")
        try:
            return find_module(mod_name + ".__main__")
        except NotRunnable as e:
            if mod_name not in sys.modules:
                raise  # nothing was imported: being a package is irrelevant
            raise NotRunnable(
                f"{e}; {mod_name!r} is a package and cannot be directly executed"
            ) from None
    loader = spec.loader
    if loader is None:
        raise NotRunnable(f"{mod_name!r} is a namespace package and cannot be executed")
    try:
        code = get_code(mod_name, spec)
    except ImportError as e:
        raise NotRunnable(format(e)) from e
    if code is None:
        raise NotRunnable(f"No code object available for {mod_name}")
    return Target(mod_name, spec, code, imported, rerun)


#: `importlib.util.find_spec`'s answers for modules found in a directory of their search
#: path, by name: (that path, the meta path, the modification times of the directories
#: searched up to the module's own, the `_watch` epoch of those, the spec). An answer
#: stands while all of them do, so a module that appears earlier on the path is found, as
#: importlib's own FileFinder notices a directory that changed; finding again costs runpy
#: more than running a small module. While the kernel reports no change in those
#: directories (`_watch`), their times are not read again.
_specs: dict[
    str,
    tuple[tuple[str, ...], tuple[Any, ...], tuple[int | None, ...], int | None, ModuleSpec],
] = {}
_MAX_SPECS = 256
_FILE_LOADERS = (SourceFileLoader, SourcelessFileLoader, ExtensionFileLoader)


def _mtimes(directories: Sequence[str]) -> tuple[int | None, ...]:
    found: list[int | None] = []
    for directory in directories:
        try:
            found.append(os.stat(directory or ".").st_mtime_ns)
        except (OSError, ValueError):
            found.append(None)
    return tuple(found)


def _marked(directories: Sequence[str]) -> int | None:
    """`_watch.mark` for each directory: the epoch to check them all against, or None."""
    epoch: int | None = None
    for directory in directories:
        epoch = _watch.mark(directory)
        if epoch is None:
            return None
    return epoch


def _find_spec(mod_name: str, pkg_name: str) -> ModuleSpec | None:
    """`importlib.util.find_spec(mod_name)`, remembered while nothing it depends on changed
    (`_watch.poll` first).

    A previous run's module left registered under the name is looked past: its spec may
    be stale (a module since turned into a package, or deleted).
    """
    registered = sys.modules.get(mod_name)
    kept = registered if registered is _kept.get(mod_name) else None
    if registered is not None and kept is None:
        return importlib.util.find_spec(mod_name)  # the module's own spec
    parent = sys.modules.get(pkg_name) if pkg_name else None
    search = getattr(parent, "__path__", None) if pkg_name else sys.path
    if not isinstance(search, (list, tuple)):
        return _find_spec_afresh(mod_name, kept)  # a missing parent, or an odd one
    where, meta = tuple(search), tuple(sys.meta_path)
    known = _specs.get(mod_name)
    if known is not None and known[0] == where and known[1] == meta:
        searched = where[: len(known[2])]
        for directory in searched:
            if not _watch.quiet_since(directory, known[3]):
                break
        else:
            return known[4]
        epoch = _marked(searched)
        if known[2] == _mtimes(searched):
            _specs[mod_name] = (where, meta, known[2], epoch, known[4])
            return known[4]
    spec = _find_spec_afresh(mod_name, kept)
    if spec is not None and isinstance(spec.loader, _FILE_LOADERS) and spec.origin:
        directory = os.path.dirname(spec.origin)
        if spec.submodule_search_locations is not None:
            directory = os.path.dirname(directory)  # a package: pkg/__init__.py
        if directory in where:
            if len(_specs) >= _MAX_SPECS:
                del _specs[next(iter(_specs))]
            searched = where[: where.index(directory) + 1]
            epoch = _marked(searched)
            _specs[mod_name] = (where, meta, _mtimes(searched), epoch, spec)
    return spec


def _find_spec_afresh(mod_name: str, kept: ModuleType | None) -> ModuleSpec | None:
    """`importlib.util.find_spec(mod_name)`, as if `kept` (a previous run's module,
    registered under the name) were not registered."""
    if kept is None:
        return importlib.util.find_spec(mod_name)
    del sys.modules[mod_name]
    spec = None
    try:
        spec = importlib.util.find_spec(mod_name)
        return spec
    finally:
        # Put back unless what is found now is another file (a module turned package),
        # and then no longer kept either.
        if spec is None or spec.origin == _origin(kept):
            sys.modules.setdefault(mod_name, kept)
        elif _kept.get(mod_name) is kept:
            del _kept[mod_name]


def has_main_guard(spec: ModuleSpec) -> bool:
    """Whether the module's top level compares `__name__` with "__main__": the code of
    an `if __name__ == "__main__":` block, which runs only under that run name."""
    if spec.loader is None:
        return False  # a stand-in spec, from a process that ended before telling
    _watch.poll()
    try:
        code = get_code(spec.name, spec)
    except (ImportError, SyntaxError):
        return False
    return code is not None and "__name__" in code.co_names and "__main__" in code.co_consts


def _set_special_globals(run_globals: dict[str, Any], run_name: str, spec: ModuleSpec) -> None:
    # Exactly runpy's `_run_code`: these override whatever init_globals held.
    run_globals.update(
        __name__=run_name,
        __file__=spec.origin,
        __cached__=spec.cached,
        __doc__=None,
        __loader__=spec.loader,
        __package__=spec.parent,
        __spec__=spec,
    )


def _from_module_code(tb: TracebackType | None, code: CodeType) -> TracebackType | None:
    """The traceback from the module's own frame on: runner frames say nothing to the user."""
    start = tb
    while start is not None and start.tb_frame.f_code is not code:
        start = start.tb_next
    return start or tb


def _is_dunder(name: object) -> bool:
    """Dunders, and keys that are not names at all (a namespace may hold any key)."""
    return not isinstance(name, str) or (name.startswith("__") and name.endswith("__"))


def bound_names(run_globals: Mapping[str, Any], given: Mapping[str, Any]) -> tuple[str, ...]:
    """Names the module bound: new, or bound to another object than the one it was given."""
    return _names_only(run_globals, _changed(run_globals, given))


def _changed(run_globals: Mapping[str, Any], given: Mapping[str, Any]) -> list[Any]:
    """The keys of `run_globals` that are not in `given`, or hold another object there."""
    candidates = _changed_in_order(run_globals, given)
    if candidates is None:
        get = given.get
        candidates = [
            name for name, value in run_globals.items() if get(name, _MISSING) is not value
        ]
    return candidates


def _names_only(run_globals: Mapping[str, Any], keys: list[Any]) -> tuple[str, ...]:
    # `from __future__ import annotations` binds `annotations`: a compiler directive,
    # not a result. (Inlined `_is_dunder`: this runs at the end of every run.)
    feature = __future__._Feature
    return tuple(
        name
        for name in keys
        if isinstance(name, str)
        and not (name[:2] == "__" and name[-2:] == "__")
        and type(run_globals[name]) is not feature
    )


def _bound_later(
    run_globals: dict[str, Any], given: Mapping[str, Any], parameters: Mapping[str, Any]
) -> Callable[[], tuple[str, ...]]:
    """`RunResult.bound`, worked out when first asked, against what the module was given.

    The notebook goes on after the run (every cell rebinds `_i`, `_` and more), so the
    module is judged against a copy of `given` and `parameters` as they are now: one copy
    of the table, which costs less than comparing it, and most runs are never asked.
    """
    snapshot = given.copy() if type(given) is dict else dict(given)
    snapshot.update(parameters)
    return functools.partial(bound_names, run_globals, snapshot)


#: From this many given names on, comparing the namespaces in order beats looking each
#: name up (a million lookups are a million cache misses); a module that adds many names
#: is compared in order too.
_IN_ORDER_MIN_GIVEN = 50_000


def _leading_dunders(namespace: Mapping[Any, Any]) -> int:
    """How many keys at the start of `namespace` are dunders (or not names at all)."""
    count = 0
    for name in namespace:
        if not _is_dunder(name):
            break
        count += 1
    return count


def _changed_in_order(run_globals: Mapping[str, Any], given: Mapping[str, Any]) -> list[str] | None:
    """The keys of `run_globals` new or rebound against `given`, at C speed.

    Used when `given` is huge or the module added many names; None otherwise (the plain
    loop is as quick), or when this way cannot tell. Dicts keep insertion order
    and the run namespace was filled by copying `given`, so it holds dunders, then
    `given`'s other keys in the same order, then what the module added — unless the
    module deleted a given name (a name deleted and bound again moves to the end). That
    is checked by the keys' identity before values are compared position by position,
    also by identity; both comparisons are `map(operator.is_...)`, which loops in C.
    """
    if type(run_globals) is not dict or type(given) is not dict:
        return None
    if len(given) < _IN_ORDER_MIN_GIVEN and len(run_globals) - len(given) < 256:
        return None  # few names either way: the plain loop is as quick
    run_start, given_start = _leading_dunders(run_globals), _leading_dunders(given)
    run_end = run_start + len(given) - given_start
    if len(run_globals) < run_end:
        return None  # given names were deleted
    same_keys = map(
        operator.is_, islice(run_globals, run_start, run_end), islice(given, given_start, None)
    )
    if not all(same_keys):
        return None
    changed = map(
        operator.is_not,
        islice(run_globals.values(), run_start, run_end),
        islice(given.values(), given_start, None),
    )
    rebound = compress(islice(run_globals, run_start, run_end), changed)
    return [*islice(run_globals, run_start), *rebound, *islice(run_globals, run_end, None)]


class Quitter:
    """`exit` and `quit` as `python -m` gives them to a module: calling one raises SystemExit.

    site's own close `sys.stdin` first (for IDLE), which in a session is the session's.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Use {self.name}() or Ctrl-D (i.e. EOF) to exit"

    def __call__(self, code: object = None) -> None:
        raise SystemExit(code)


#: What `exit` and `quit` are under `python -m`, for a runner whose own shadow them.
EXITS: Mapping[str, Quitter] = MappingProxyType({name: Quitter(name) for name in ("exit", "quit")})


class InvalidRequest(ValueError):
    """A `Request` that cannot be carried out as given (nothing has run)."""


#: What a `%%runmod` cell body (or any caller) gives the module on top of `init_globals`:
#: the names themselves, or a function that works them out just before the run.
Parameters = Mapping[str, Any] | Callable[[], Mapping[str, Any]]

#: What runs the module's code in its namespace: `exec`, or one that wraps it (a profiler,
#: a debugger). The module's exceptions must come out of it unchanged.
Runner = Callable[[CodeType, dict[str, Any]], object]


@dataclass(slots=True)
class Request:
    """One run of a module, everything `%runmod` can ask for; `execute` carries it out.

    `args` are the module's `sys.argv[1:]` (None keeps the process's own, as runpy does);
    `parameters` override `init_globals` for this run only; `merge_into` is the namespace
    the names the module bound are copied into (None: no merge), filtered by `skip`,
    `only` and `exclude` as `merge_into()` does; `reload` first drops from sys.modules the
    user modules whose source changed since they were imported, so that the run imports
    them afresh; `report` receives the pipeline's one-line messages ("Reloaded: ...");
    `runner` runs the module's code in place of `exec` (say, under a profiler).
    `subprocess` runs the module in a fresh Python process instead (`reload` is moot
    there), ended after `timeout` seconds when given; see `_subprocess`.
    `protect` runs the module as `python -m` would (the working directory first on
    sys.path, no asyncio loop running) and puts the session back afterwards: its
    streams, hooks, signal handlers and asyncio loop; with `keep_state` false, also the
    working directory, `sys.path`, `os.environ`, warnings filters and the root logger;
    and a run under the module's own name that ends well stays registered in sys.modules
    as that module (replacing the previous run's), so that what it defined pickles.
    A submodule imported before its run is warned of once per module, worded for a
    session; `runpy_warning` gives runpy's own warning instead, every time.
    """

    module: str
    args: Sequence[str] | None = ()
    run_name: str | None = None
    init_globals: Mapping[str, Any] | None = None
    parameters: Parameters | None = None
    alter_sys: bool = True
    protect: bool = True
    keep_state: bool = False
    reload: bool = False
    merge_into: MutableMapping[str, Any] | None = None
    only: Sequence[str] = ()
    exclude: Sequence[str] = ()
    skip: Callable[[str], bool] | None = None
    report: Callable[[str], None] | None = None
    runpy_warning: bool = False
    runner: Runner = exec
    subprocess: bool = False
    timeout: float | None = None

    def __post_init__(self) -> None:
        if self.args and not self.alter_sys:
            raise InvalidRequest(
                "module arguments are passed in sys.argv, which --no-alter-sys "
                "(alter_sys=False) leaves alone"
            )
        if self.timeout is not None and not self.subprocess:
            raise InvalidRequest("--timeout applies to --subprocess runs only")
        if self.timeout is not None and not 0 < self.timeout < math.inf:
            raise InvalidRequest(
                f"--timeout must be a positive number of seconds, not {self.timeout}"
            )


def execute(request: Request) -> RunResult:
    """Carry out `request`: refresh, parameters, run, merge. The one pipeline of a run.

    A failure inside the module does not raise, whatever it is (`KeyboardInterrupt`
    too): it is `result.exception`, raised by the caller once it has the result; with
    `merge_into`, what the module bound before failing is merged first. Errors in
    finding the module (`NotRunnable`, an error from a parent package's `__init__`), in
    refreshing modules or in working out the parameters raise before anything runs.
    """
    if request.subprocess:
        from ._subprocess import run_in_subprocess  # its machinery only when asked for

        result = run_in_subprocess(request)
        _remember(result)
    else:
        result = _execute_here(request)
    if request.merge_into is not None:
        merge_into(
            request.merge_into,
            result,
            skip=request.skip or _nothing,
            only=request.only,
            exclude=request.exclude,
        )
    return result


def _execute_here(request: Request, target: Target | None = None) -> RunResult:
    """Refresh, parameters and run, in this process (`target`: the module, found already)."""
    reloaded = refresh_changed() if request.reload else []
    # The module about to run is read afresh anyway: not news.
    news = [name for name in reloaded if name not in (request.module, f"{request.module}.__main__")]
    if news and request.report is not None:
        request.report(f"Reloaded: {', '.join(news)}")
    parameters = request.parameters() if callable(request.parameters) else request.parameters
    try:
        result = _run_here(request, parameters or {}, target)
    finally:
        note_imports()  # what the run imported, with its source as it is now
    result.reloaded = tuple(reloaded)
    return result


def _remember(result: RunResult) -> None:
    global _last
    _last = result


def _nothing(name: str) -> bool:
    """No name is skipped: `merge_into`'s default."""
    return False


def _run_here(
    request: Request, parameters: Mapping[str, Any], target: Target | None = None
) -> RunResult:
    """Run the module in this process; its failure, of any kind, is the result's."""
    # Read once: finding the module and noting the session both need it.
    cwd = _session.working_directory() if request.protect else None
    target = target or _find(request, cwd)
    # A previous run's module, left registered, is replaced: in a session nothing was
    # imported; runpy, which knows no such thing, warns all the same.
    if target.imported and (request.runpy_warning or not target.rerun):
        _warn_imported(target, request.runpy_warning)
    run_name = target.name if request.run_name is None else request.run_name
    # A protected run under the module's own name that ends well stays registered, as an
    # import would: pickle and %store find what it defined without importing it again.
    keep_own = request.protect and request.alter_sys and run_name == target.name != "__main__"
    keep = False
    # The namespace is a real module's __dict__, so that what the module defines can be
    # found through sys.modules (pickle, dataclasses, inspect) while it runs.
    module = RunModule(run_name)
    run_globals = module.__dict__
    args = request.args
    argv: list[str | None] | None = None
    exception: BaseException | None = None
    saved: _session.Saved | None = None
    # Both change process-wide state: other threads' runs wait rather than see it.
    with SYS_LOCK if request.alter_sys or request.protect else nullcontext():
        # No arguments of its own: as runpy, only argv[0] changes, in the process's own
        # list, so what the module does to the rest of it stays.
        in_place = args is None and bool(sys.argv)
        if request.alter_sys:
            # argv[0] is None for a module without a file, as runpy has it.
            argv = [target.spec.origin, *(sys.argv[1:] if args is None else args)]
            saved_argv, saved_argv0 = sys.argv, sys.argv[0] if in_place else None
            saved_module = sys.modules.get(run_name, _MISSING)
            saved_main = sys.modules.get("__main__", _MISSING)
            # A run the module started itself gives the running one its entry back.
            running = isinstance(saved_module, RunModule) and saved_module is not _kept.get(
                run_name
            )
            keep_own = keep_own and not running
        started: tuple[float, float] | None = None
        try:
            if request.protect:
                saved = _session.save(request.keep_state, cwd)
            if argv is not None:
                if in_place:
                    sys.argv[0] = target.spec.origin  # type: ignore[assignment]  # None, as runpy
                else:
                    sys.argv = argv  # type: ignore[assignment]  # None as argv[0], as runpy
                sys.modules[run_name] = module
            init_globals = request.init_globals
            if init_globals is not None or parameters:
                # Into an empty dict, update() copies a whole dict table at once (as
                # runpy's `{}` gets it); into ModuleType's five keys it inserts name by
                # name: 25x slower for a million names.
                run_globals.clear()
                run_globals.update(init_globals or {})
                run_globals.update(parameters)  # over the table, never a copy of it
            _set_special_globals(run_globals, run_name, target.spec)
            # The module's code alone, and its thread's CPU time: process_time() would count
            # the kernel's own threads too (heartbeat, I/O), which run beside every run.
            started = time.perf_counter(), time.thread_time()
            request.runner(target.code, run_globals)
            keep = keep_own
        except BaseException as exc:
            exception = exc.with_traceback(_from_module_code(exc.__traceback__, target.code))
            keep = keep_own and isinstance(exc, SystemExit) and exit_code_of(exc) == 0
        finally:
            if argv is not None:
                # Plain stores and no calls: an asynchronous KeyboardInterrupt is only
                # delivered at a call or a loop's jump, so it cannot stop this halfway.
                sys.argv = saved_argv
                if in_place:
                    saved_argv[0] = saved_argv0  # type: ignore[assignment]
                if keep and run_name in sys.modules and sys.modules[run_name] is module:
                    _kept[run_name] = module
                elif saved_module is not _MISSING:
                    sys.modules[run_name] = saved_module
                elif run_name in sys.modules:
                    del sys.modules[run_name]
                if saved_main is not _MISSING:
                    sys.modules["__main__"] = saved_main  # also when the module replaced it
            if saved is not None:
                interrupt = _restore_whatever_comes(saved)
                exception = exception or interrupt
        if _kept.get(run_name) is module:
            _bind_in_parent(run_name, module)
    wall = cpu = 0.0
    if started is not None:
        wall, cpu = time.perf_counter() - started[0], time.thread_time() - started[1]
    result = RunResult(
        module=request.module,
        run_name=run_name,
        spec=target.spec,
        argv=argv,
        globals=run_globals,
        bound=_bound_later(run_globals, request.init_globals or {}, parameters),
        elapsed=wall,
        cpu_time=cpu,
        exception=exception,
    )
    _remember(result)
    return result


#: The modules a session was warned of already (`_warn_imported`).
_warned_imported: set[str] = set()


def _warn_imported(target: Target, as_runpy: bool) -> None:
    """Say that the submodule about to run was imported before: this run is a second copy.

    For the drop-in, runpy's own warning, from runpy's own lookup: the same words, place
    and registry, so that a filter such as `-W error::RuntimeWarning:runpy` applies. In a
    session, once per module, as advice: re-running an imported module is common there.
    """
    if as_runpy:
        try:
            runpy._get_module_details(target.name)  # type: ignore[attr-defined]
        except ImportError:
            pass  # found a moment ago; only its warning is wanted
    elif target.name not in _warned_imported:
        _warned_imported.add(target.name)
        package = target.name.rpartition(".")[0]
        warnings.warn_explicit(
            f"{target.name!r} found in sys.modules after import of package {package!r}: "
            "this run executes a fresh copy of its code, and the imported module stays as "
            "it was (said once per module)",
            RuntimeWarning,
            target.spec.origin or target.name,
            0,  # the module, not one of its lines
            module=target.name,
        )


def _is_package(module: object) -> bool:
    """`hasattr(module, "__path__")`, without the AttributeError that hasattr builds (and
    discards) for a plain module on every run: a module's attributes are its dict's keys
    unless it defines `__getattr__`."""
    if type(module) in (ModuleType, RunModule):
        namespace = vars(module)
        if "__getattr__" not in namespace:
            return "__path__" in namespace
    return hasattr(module, "__path__")


def _origin(module: object) -> object:
    """The file a module was made from (a module may have rebound its `__spec__`)."""
    return getattr(getattr(module, "__spec__", None), "origin", None)


def _bind_in_parent(name: str, module: ModuleType) -> None:
    """`pkg.name` is the module, as an import binds it: `import pkg.mod; pkg.mod.x` works."""
    parent, _, child = name.rpartition(".")
    package = sys.modules.get(parent) if parent else None
    if package is not None:
        try:
            setattr(package, child, module)
        except (AttributeError, TypeError):
            pass  # a stand-in object that takes no attributes


def _find(request: Request, cwd: str | None) -> Target:
    """`find_module`, with the working directory `cwd` (`_session.working_directory`)
    first on sys.path as `python -m` has it."""
    with SYS_LOCK:  # finding reads sys.modules, where other threads' runs register theirs
        entry = _session.cwd_first(cwd) if request.protect else None
        try:
            return find_module(request.module)
        finally:
            _session.drop_from_path(entry)


def _restore_whatever_comes(saved: _session.Saved) -> KeyboardInterrupt | None:
    """Restore the session; an interrupt meanwhile is returned once it is restored.

    Restoring takes calls, where an interrupt can land; it is idempotent, so it is
    simply done again.
    """
    interrupt = None
    while True:
        try:
            _session.restore(saved)
            return interrupt
        except KeyboardInterrupt as e:
            interrupt = e


def run(
    mod_name: str,
    init_globals: Mapping[str, Any] | None = None,
    *,
    run_name: str | None = None,
    args: Sequence[str] | None = (),
    alter_sys: bool = True,
) -> RunResult:
    """Run `mod_name` like `python -m mod_name *args` and return a `RunResult`.

    The module runs in a new namespace pre-filled from `init_globals`, which is never
    changed. With `alter_sys`, `sys.argv` is `[module file, *args]` (`args=None` keeps
    the process's own arguments, `sys.argv[1:]`) and the module is registered in
    `sys.modules` under `run_name` for the duration of the run; both are put back after
    it, and so is `sys.modules["__main__"]`. For every other option of `%runmod`
    (parameters, merging, refreshing), build a `Request` and `execute` it.

    A failure inside the module does not raise: it is `result.exception`, with the
    globals bound until then in the result. `KeyboardInterrupt` (and any other
    `BaseException` that is not an `Exception` or `SystemExit`) is re-raised once `sys`
    is restored. Errors in finding the module (`NotRunnable`, or an error from a parent
    package's `__init__`) raise before anything runs.
    """
    result = execute(
        Request(
            mod_name, args=args, run_name=run_name, init_globals=init_globals, alter_sys=alter_sys
        )
    )
    exception = result.exception
    if exception is not None and not isinstance(exception, (Exception, SystemExit)):
        raise exception
    return result


def run_module(
    mod_name: str,
    init_globals: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    alter_sys: bool = False,
) -> dict[str, Any]:
    """Drop-in for `runpy.run_module`: same arguments, globals, exceptions and warnings.

    With `alter_sys`, `sys.argv[0]` is the module's file and `sys.modules[run_name]` the
    running module, both restored afterwards (under a lock, so threads are safe too).
    """
    request = Request(
        mod_name,
        args=None,  # runpy changes argv[0] only
        run_name=run_name,
        init_globals=init_globals,
        alter_sys=alter_sys,
        protect=False,  # runpy leaves whatever the module did
        runpy_warning=True,
    )
    try:
        result = execute(request)
    except NotRunnable as e:
        raise ImportError(str(e)) from e.__cause__
    if result.exception is not None:
        raise result.exception
    # Like runpy: a copy when the temporary module was in sys.modules, else the dict itself.
    return dict(result.globals) if alter_sys else result.globals


def last_result() -> RunResult | None:
    """The `RunResult` of the most recent run in this process (failed runs too)."""
    return _last


def _matches(name: str, patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def merge_into(
    namespace: MutableMapping[str, Any],
    result: RunResult,
    *,
    skip: Callable[[str], bool] = _nothing,
    only: Sequence[str] = (),
    exclude: Sequence[str] = (),
) -> tuple[str, ...]:
    """Copy the names the module bound into `namespace`; return them (also as `result.merged`).

    Never copied: dunders, names for which `skip(name)` is true, names not matching
    `only` (when given) and names matching `exclude`. Names the module deleted stay.
    """
    names = tuple(
        name
        for name in result.bound
        if name in result.globals
        and not skip(name)
        and (not only or _matches(name, only))
        and not _matches(name, exclude)
    )
    values = {name: result.globals[name] for name in names}
    # Recorded first, then one update() as the last step: an interrupt can come before or
    # after the copy, never between a name copied and its being reported.
    result.merged = names
    namespace.update(values)
    return names


def submodule_names(package: str | None) -> list[str]:
    """Names importable directly inside `package`, or at the top level when None.

    Only the package's parents are imported (to find it), never the package itself
    nor anything in it.
    """
    if package is None:
        found = {m.name for m in pkgutil.iter_modules()} | set(sys.builtin_module_names)
        return sorted(found)
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return []
    if spec is None or spec.submodule_search_locations is None:
        return []
    return sorted({m.name for m in pkgutil.iter_modules(spec.submodule_search_locations)})


@dataclass(frozen=True)
class Plan:
    """What `run` would do for a module, found but not executed (`%runmod --which`)."""

    module: str  #: the name as given
    target: str  #: the module whose code would run: `pkg.__main__` for a package
    run_name: str
    file: str | None
    loader: str
    package_main: bool  #: True when a package's `__main__` submodule would run
    argv: list[str | None] | None  #: the module's sys.argv, or None when sys is left alone

    def __str__(self) -> str:
        rows = {
            "module": self.module,
            "runs": self.target + (" (the package's __main__)" if self.package_main else ""),
            "run name": self.run_name,
            "file": self.file,
            "loader": self.loader,
            "argv": "sys.argv left alone" if self.argv is None else repr(self.argv),
        }
        return "\n".join(f"{key + ':':<10} {value}" for key, value in rows.items())

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(str(self))  # as IPython shows `%runmod --which -o`'s value


def plan(request: Request) -> Plan:
    """Find the module as `execute` would (importing its parent packages), running nothing.

    With `request.subprocess`, it is found in the fresh process the run would have.
    """
    if request.subprocess:
        from ._subprocess import plan_in_subprocess

        return plan_in_subprocess(request)
    target = _find(request, _session.working_directory())
    loader = target.spec.loader
    args = sys.argv[1:] if request.args is None else request.args
    return Plan(
        module=request.module,
        target=target.name,
        run_name=target.name if request.run_name is None else request.run_name,
        file=target.spec.origin,
        loader=type(loader).__name__ if loader is not None else "None",
        package_main=target.name != request.module,
        argv=[target.spec.origin, *args] if request.alter_sys else None,
    )
