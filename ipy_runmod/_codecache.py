"""Code objects for the modules we run, compiled once per version of their source file.

`runpy.run_module` asks the module's loader for its code on every call: the loader reads
and unmarshals the `.pyc` (or, when bytecode is not written, compiles the source again),
which for a big module costs several times what executing it does. Here the code object of
a plain source module is kept in memory and reused for as long as its file is unchanged.

"Unchanged" is decided by one `os.stat` per run (none while the kernel reports no change
in the file's directory: `_watch`), and is stricter than importlib's own
`.pyc` check (which compares whole-second mtimes and the size): the key is the file's
mtime and ctime in nanoseconds, its size, inode and device. When the key no longer matches,
the source is compiled afresh from the file itself, never from a `.pyc` that a same-second,
same-size edit could have left looking valid. The first time a file is seen its loader's
`get_code` is used, as runpy does (it takes a valid `.pyc`, which is fast).

Only modules of the standard source loader (`importlib.machinery.SourceFileLoader`, or a
subclass that overrides none of the methods involved) are cached. Sourceless `.pyc`
modules, zip imports, frozen modules and import hooks get their loader's `get_code` on
every run, exactly as under runpy.

Code objects reference no globals, so the cache keeps no module namespace alive. It holds
at most `MAX_ENTRIES` code objects, the least recently run dropped first.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from importlib.machinery import ModuleSpec, SourceFileLoader
from types import CodeType
from typing import Any

from . import _watch

__all__ = ["MAX_ENTRIES", "clear", "get_code"]

#: How many code objects are kept (one per source file).
MAX_ENTRIES = 128

#: What identifies one version of a source file: (mtime_ns, ctime_ns, size, inode, device).
_Key = tuple[int, int, int, int, int]

#: Source path -> (key of the file the code was compiled from, code, the `_watch` epoch of
#: the key's stat, what `_watch.directory_of` gives for the file), least recent first.
_cache: OrderedDict[str, tuple[_Key, CodeType, int | None, str]] = OrderedDict()
_lock = threading.Lock()

#: The loader methods that decide what code a file gives. A loader class that overrides
#: any of them (an import hook that rewrites the source, say) is not cached.
_STOCK_METHODS = ("get_code", "get_data", "get_filename", "path_stats", "source_to_code")


def _source_path(loader: Any) -> str | None:
    """The source file of a module whose loader is the stock source loader, else None."""
    if not isinstance(loader, SourceFileLoader):
        return None
    cls = type(loader)
    if cls is not SourceFileLoader and any(
        getattr(cls, name) is not getattr(SourceFileLoader, name) for name in _STOCK_METHODS
    ):
        return None
    path = loader.path
    return path if isinstance(path, str) else None


def _key(st: os.stat_result) -> _Key:
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino, st.st_dev)


def get_code(mod_name: str, spec: ModuleSpec) -> CodeType | None:
    """The module's code: what its loader's `get_code` gives, from memory when unchanged.

    Call `_watch.poll` first: changes it has not taken in are not seen.
    """
    loader: Any = spec.loader
    code: CodeType | None
    path = _source_path(loader)
    if path is None:
        code = loader.get_code(mod_name)
        return code
    entry = _cache.get(path)
    if entry is not None and _watch.quiet_since(entry[3], entry[2]):
        # Nothing in its directory changed since its key was read.
        with _lock:
            if path in _cache:
                _cache.move_to_end(path)
        return entry[1]
    directory = _watch.directory_of(path)
    checked = _watch.mark(directory)
    try:
        # Stat *before* reading: a file changed in between then has a key older than the
        # code, and the next run compiles it again, never the other way round.
        key = _key(os.stat(path))
    except OSError:
        with _lock:
            _cache.pop(path, None)
        code = loader.get_code(mod_name)  # the loader's own error, as under runpy
        return code
    with _lock:
        entry = _cache.get(path)
        if entry is not None and entry[0] == key:
            _cache[path] = (key, entry[1], checked, directory)
            _cache.move_to_end(path)
            return entry[1]
    if entry is None:
        # First sight: the loader takes the .pyc when it is valid, else compiles.
        code = loader.get_code(mod_name)
    else:
        # Changed since we compiled it. Read the source itself: the .pyc's own check
        # (whole-second mtime and size) can be fooled by a quick edit.
        code = loader.source_to_code(loader.get_data(path), path)
    if code is None:
        return None
    with _lock:
        _cache[path] = (key, code, checked, directory)
        _cache.move_to_end(path)
        while len(_cache) > MAX_ENTRIES:
            _cache.popitem(last=False)
    return code


def clear() -> None:
    """Forget every cached code object."""
    with _lock:
        _cache.clear()
