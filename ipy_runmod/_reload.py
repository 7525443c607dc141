"""`--reload`: reload the already-imported modules of a package whose source changed."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

#: module name -> (st_mtime_ns, st_size) of its source when it was first seen imported,
#: or last reloaded.
_stamps: dict[str, tuple[int, int]] = {}
_modules_seen = 0


def _source_stamp(module: ModuleType) -> tuple[int, int] | None:
    origin = getattr(getattr(module, "__spec__", None), "origin", None)
    if not isinstance(origin, str) or not origin.endswith(".py"):
        return None  # built-in, frozen, extension, sourceless: nothing to compare
    try:
        st = os.stat(origin)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def note_imports() -> None:
    """Remember the source stamp of every module imported since the last call.

    Called when the extension loads and after every cell, so "changed since it was
    loaded" means changed since the end of the cell that imported it.
    """
    global _modules_seen
    if len(sys.modules) == _modules_seen:
        return  # the common case: the cell imported nothing
    for name, module in list(sys.modules.items()):
        if name not in _stamps and isinstance(module, ModuleType):
            stamp = _source_stamp(module)
            if stamp is not None:
                _stamps[name] = stamp
    _modules_seen = len(sys.modules)


def reload_changed(mod_name: str) -> list[str]:
    """Reload the imported modules of `mod_name`'s top-level package whose source changed.

    Parents are reloaded before children. The module that will run (`mod_name`, or a
    package's `__main__`) is left alone: it runs afresh anyway. An error while reloading
    propagates with a note naming the module; the modules after it are not reloaded.
    Returns the names reloaded.
    """
    top = mod_name.partition(".")[0]
    # The code that runs is read afresh anyway: never execute it here as an import too.
    skip = {mod_name + ".__main__"}
    if not hasattr(sys.modules.get(mod_name), "__path__"):
        skip.add(mod_name)
    family = sorted(
        name
        for name, module in list(sys.modules.items())
        if (name == top or name.startswith(top + "."))
        and name not in skip
        and isinstance(module, ModuleType)
    )
    reloaded: list[str] = []
    for name in family:
        module = sys.modules[name]
        stamp = _source_stamp(module)
        known = _stamps.get(name)
        if stamp is not None and known is not None and stamp != known:
            try:
                importlib.reload(module)
            except BaseException as e:
                e.add_note(f"(while reloading {name} for --reload; {mod_name} did not run)")
                raise
            reloaded.append(name)
        if stamp is not None:
            _stamps[name] = stamp
    return reloaded
