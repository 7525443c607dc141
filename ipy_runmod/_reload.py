"""Edits take effect: user modules whose source changed are imported afresh by the next run.

`python -m` starts from fresh imports every time. In a session, a module imported once
stays in `sys.modules`, so an edited helper, or a test module fixed and run again by
pytest, unittest or doctest, would be the old one. Before a run, `refresh_changed` drops
from `sys.modules` every user module whose source changed since it was imported, and the
user modules that hold something of one, so that the run imports them afresh.

Dropped, not `importlib.reload`ed, as Spyder's User Module Reloader does: the module is
imported again by whoever imports it, under that importer's import hooks (pytest's
assertion rewriting is installed only while pytest runs), and only if the run imports it.
A reload would execute it here, outside the run, keep the names the new source no longer
defines (a deleted test would still run), and leave the importers with the old objects.

"User" modules are those with a `.py` source outside the standard library and the
site-packages directories (and not ipy_runmod itself). Which modules those are is worked
out once per module, when it is first seen; a run then costs one `stat` per user module,
none for those in a directory where the kernel has reported no change since (`_watch`).
"""

from __future__ import annotations

import os
import site
import sys
import sysconfig
import threading
from collections.abc import Iterable
from types import FunctionType, ModuleType

from . import _watch


class RunModule(ModuleType):
    """The module a run's namespace belongs to: a run, not an import.

    Not imported from its file: never stamped, and dropped only with its package (the
    next run of it replaces it anyway).
    """


#: Guards the tables below: runs in other threads note and refresh too.
_LOCK = threading.RLock()
#: name -> the module object last seen under that name (every module, user or not), as
#: `_noted` gives it.
_seen: dict[str, object] = {}
#: name -> (module, source path, (st_mtime_ns, st_size) when it was first seen, directory).
_user: dict[str, tuple[ModuleType, str, tuple[int, int], str]] = {}
#: directory of user modules -> the `_watch` epoch since which all of them are as stamped.
_checked: dict[str, int | None] = {}
#: len(sys.modules) and its last entry when `note_imports` last looked.
_last_look: tuple[int, object, object] = (-1, None, None)
#: How many directories were ever added to `_checked`.
_directories_added = 0
#: (`_watch.epoch()`, `_directories_added`) when every directory in `_checked` was last
#: found quiet. While neither moves, all still are: no event came, no directory was added.
_all_quiet_at: tuple[int, int] | None = None


def _library_dirs() -> tuple[str, ...]:
    """The standard library's and the site-packages directories, each ending in a separator."""
    dirs: set[str] = set()
    for scheme_vars in ({}, {"base": sys.base_prefix, "platbase": sys.base_exec_prefix}):
        paths = sysconfig.get_paths(vars=scheme_vars)
        dirs.update(paths[key] for key in ("stdlib", "platstdlib", "purelib", "platlib"))
    dirs.update(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.add(site.getusersitepackages())
    found = {os.path.realpath(d) for d in dirs} | dirs
    return tuple(os.path.join(d, "") for d in sorted(found))


_LIBRARY = _library_dirs()
#: source path -> whether it is the user's (worked out once: realpath costs a few µs).
_user_paths: dict[str, bool] = {}
_OWN = __package__ or "ipy_runmod"


def _user_source(name: str, module: object) -> str | None:
    """The source file of a user module; None for any other module."""
    if not isinstance(module, ModuleType) or isinstance(module, RunModule) or name == "__main__":
        return None
    if name == _OWN or name.startswith(_OWN + "."):
        return None
    origin = getattr(getattr(module, "__spec__", None), "origin", None)
    if not isinstance(origin, str) or not origin.endswith(".py"):
        return None  # built-in, frozen, extension, sourceless: nothing to compare
    user = _user_paths.get(origin)
    if user is None:
        user = not (origin.startswith(_LIBRARY) or os.path.realpath(origin).startswith(_LIBRARY))
        _user_paths[origin] = user
    return origin if user else None


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _noted(module: object) -> object:
    """What is noted of a module seen: itself, or for any run's module the class RunModule.

    A run's module replacing another's under its name is no import, and noting it must
    not keep the old one, and its namespace, alive.
    """
    return RunModule if isinstance(module, RunModule) else module


def _see(name: str, module: object) -> None:
    global _directories_added
    _seen[name] = _noted(module)
    path = _user_source(name, module)
    if path is not None:
        directory = _watch.directory_of(path)
        epoch = _watch.mark(directory)  # watched before the stamp is read
        stamp = _stamp(path)
        if stamp is not None:
            assert isinstance(module, ModuleType)
            _user[name] = (module, path, stamp, directory)
            if directory not in _checked:
                _checked[directory] = epoch
                _directories_added += 1
            return
    _user.pop(name, None)


def note_imports() -> None:
    """Note the modules imported since the last call, with their source as it is now.

    Called when the extension loads, after every cell and after every run, so "changed
    since it was imported" means changed since the end of the run or cell that imported
    it. A new entry is appended to sys.modules (dicts keep insertion order), so when the
    number of entries and the last one are as they were, nothing was imported: the
    usual case costs no walk over sys.modules. Otherwise the entries are walked from
    the end back to the first one seen before; an entry replaced in place (a run's
    module registered under its name again) is seen when it is the last one too, unless
    it replaced another run's module.
    """
    with _LOCK:
        _note_imports()


def _note_imports() -> None:
    global _last_look
    modules = sys.modules
    last = next(reversed(modules.items()), (None, None))
    count, last_name, last_module = _last_look
    if count == len(modules) and last_name == last[0] and last_module is _noted(last[1]):
        return
    try:
        new = _new_entries(reversed(modules.items()))
    except RuntimeError:  # another thread imported meanwhile: walk a copy
        new = _new_entries(reversed(list(modules.items())))
    for name, module in new:
        _see(name, module)
    if len(_seen) > len(modules):  # forget what is gone, not to keep it alive
        for name in _seen.keys() - modules.keys():
            del _seen[name]
            _user.pop(name, None)
        # Nor a directory whose modules are all gone: one that no watch can vouch for
        # would make every later check look at the others.
        live = {directory for _, _, _, directory in _user.values()}
        for directory in [d for d in _checked if d not in live]:
            del _checked[directory]
    _last_look = (len(modules), last[0], _noted(last[1]))


def _new_entries(entries: Iterable[tuple[str, object]]) -> list[tuple[str, object]]:
    """The entries, from the last, up to the first one seen at the last look.

    A run's module is never where the walk stops: looked past when a module is found
    again, it is put back at the end, after what was imported meanwhile.
    """
    new = []
    for name, module in entries:
        if _seen.get(name) is module and not isinstance(module, RunModule):
            break  # this one and all before it were there at the last look
        new.append((name, module))
    return new


def refresh_changed() -> list[str]:
    """Drop from sys.modules the user modules whose source changed, and those holding theirs.

    Returns the names dropped, sorted. A package dropped takes its submodules with it,
    and a user module that holds a dropped module, or a class or function defined in
    one, is dropped too, so that it imports the new code afresh, as a fresh process
    would (a plain value it copied, `from helper import SCALE`, cannot be told).
    """
    with _LOCK:
        return _refresh_changed()


def _refresh_changed() -> list[str]:
    global _all_quiet_at
    _note_imports()
    _watch.poll()
    # Read once, before the directories are: a poll by another thread's run meanwhile
    # may take in an event that this check does not look at.
    now = (_watch.epoch(), _directories_added)
    if _all_quiet_at == now:
        return []
    quiet = {d for d, epoch in _checked.items() if _watch.quiet_since(d, epoch)}
    if len(quiet) == len(_checked):
        _all_quiet_at = now
        return []
    changed: set[str] = set()
    gone: list[str] = []
    modules, stat = sys.modules, os.stat
    checking: dict[str, int | None] = {}
    # The loop a run pays for when a directory may have changed: one stat per user module.
    for name, (module, path, (mtime, size), directory) in _user.items():
        if directory in quiet:
            continue
        if directory not in checking:
            checking[directory] = _watch.mark(directory)  # before its files' stats
        if modules.get(name) is not module:
            gone.append(name)
            continue
        try:
            st = stat(path)
        except OSError:
            changed.add(name)  # deleted: python -m could not import it either
            continue
        if st.st_mtime_ns != mtime or st.st_size != size:
            changed.add(name)
    _checked.update(checking)
    for name in gone:  # removed or replaced since: judged afresh
        del _user[name]
        if name in modules:
            _see(name, modules[name])
    if not changed:
        return []
    dropped = _with_dependents(changed)
    # A package takes its submodules with it: they would be found under a new package
    # object that does not know them.
    dropped.update(name for name in list(sys.modules) if "." in name and _in_package(name, dropped))
    for name in sorted(dropped, reverse=True):  # children first
        old = sys.modules.pop(name) if name in sys.modules else None
        _user.pop(name, None)
        _seen.pop(name, None)
        parent, _, child = name.rpartition(".")
        package = sys.modules.get(parent)
        if package is not None and old is not None and getattr(package, child, None) is old:
            # `from pkg import child` would take the old module from the attribute.
            try:
                delattr(package, child)
            except (AttributeError, TypeError):
                pass
    _note_imports()
    return sorted(dropped)


def _with_dependents(changed: Iterable[str]) -> set[str]:
    """`changed`, their submodules, and every user module holding one of theirs, repeatedly."""
    dropped = set(changed)
    while True:
        more = {
            name
            for name, (module, _, _, _) in _user.items()
            if name not in dropped
            and (
                _in_package(name, dropped)
                or any(_comes_from(value, dropped, name) for value in list(vars(module).values()))
            )
        }
        if not more:
            return dropped
        dropped |= more


def _in_package(name: str, packages: set[str]) -> bool:
    parent = name.rpartition(".")[0]
    while parent:
        if parent in packages:
            return True
        parent = parent.rpartition(".")[0]
    return False


def _comes_from(value: object, modules: set[str], holder: str) -> bool:
    if isinstance(value, ModuleType):
        # A package's own submodules are bound in it by the import system, not used.
        name = value.__name__
        return name in modules and not name.startswith(holder + ".")
    if isinstance(value, (type, FunctionType)):
        return value.__module__ in modules
    return False
