"""What a run may change in the process, and putting it back afterwards.

`python -m` runs a module in a process of its own, so nothing it does can hurt the shell
that started it. A run in a session shares the session's process; after it:

- always: `sys.stdin`, `sys.stdout`, `sys.stderr`, `sys.displayhook`, `sys.excepthook`,
  every signal handler and asyncio's running loop and event loop policy are the session's
  again. During the run no loop is running in this thread, as under `python -m`, so
  that `asyncio.run()` works in a kernel, whose own loop is running while a cell runs.
  The module gets the session's streams behind a view of its own, so a module that
  closes one (`json.tool` does `with sys.stdout:`) closes only its view;
- while the module is found and runs, the working directory is first on `sys.path`, as
  `python -m` puts it (unless `sys.flags.safe_path`), so a local `test.py` is the one
  that runs; it is taken off again afterwards;
- unless state is kept (`--keep-state`): the working directory, `sys.path`,
  `os.environ`, the warnings filters, the root logger's level and handlers and the
  names in `builtins` are as they were, as a fresh process would have left them.

Nothing here imports IPython.
"""

from __future__ import annotations

import builtins
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

__all__ = ["Saved", "cwd_first", "drop_from_path", "restore", "save", "working_directory"]

# signal.getsignal wraps this one to turn numbers into enums: ten times slower, on every run.
_getsignal = signal._signal.getsignal  # type: ignore[attr-defined]
#: Every signal a handler can be read for; all of them are read in about 3 µs.
_SIGNALS = tuple(int(number) for number in signal.valid_signals())
_MISSING = object()


def _closed_file(*args: object) -> Any:
    raise ValueError("I/O operation on closed file.")


class _View:
    """A session stream as a module gets it during a run: closing it closes this view only.

    Its reading and writing are the stream's own bound methods, not wrappers, so that a
    module's profile or trace shows no frame of ours and a write costs what it did.
    Everything else is the stream's own too (`fileno`, `encoding`, `buffer`, ...).
    """

    __slots__ = ("_stream", "flush", "read", "readline", "write", "writelines")

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.write = stream.write
        self.writelines = stream.writelines
        self.flush = stream.flush
        self.read = stream.read
        self.readline = stream.readline

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    @property
    def closed(self) -> bool:
        return self.write is _closed_file or bool(self._stream.closed)

    def close(self) -> None:
        if self.write is not _closed_file:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                pass
            self.write = self.writelines = self.flush = _closed_file
            self.read = self.readline = _closed_file

    def __enter__(self) -> _View:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def _view(stream: Any) -> Any:
    return stream if stream is None else _View(stream)


@dataclass(slots=True)
class Saved:
    """The session as it was before a run (the optional parts None when state is kept)."""

    streams: tuple[Any, Any, Any]
    hooks: tuple[Any, Any]
    handlers: list[Any]  #: the handler of each of `_SIGNALS`
    #: asyncio's running loop, its policy, and the policy's (loop, set_called); None
    #: when asyncio was not imported.
    asyncio: tuple[Any, Any, tuple[Any, bool] | None] | None = None
    cwd: str | None = None
    path: list[str] | None = None
    environ: dict[Any, Any] | None = None
    filters: tuple[Any, list[Any]] | None = None  #: the list object, and its items
    root: tuple[int, list[logging.Handler], int] | None = None
    builtins: dict[str, Any] | None = None
    cwd_entry: str | None = None  #: what `cwd_first` put on sys.path


def save(keep_state: bool, cwd: str | None) -> Saved:
    """Note the session's state, and give the module its views of the streams.

    `cwd`: the working directory, as `working_directory` read it for this run.
    """
    saved = Saved(
        streams=(sys.stdin, sys.stdout, sys.stderr),
        hooks=(sys.displayhook, sys.excepthook),
        handlers=list(map(_getsignal, _SIGNALS)),
    )
    if not keep_state:
        saved.cwd = cwd
        saved.path = sys.path[:]
        saved.environ = _environ_data().copy()
        saved.filters = (warnings.filters, list(warnings.filters))
        root = logging.root
        saved.root = (root.level, root.handlers[:], logging.root.manager.disable)
        saved.builtins = vars(builtins).copy()
    saved.cwd_entry = cwd_first(cwd)
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None:
        events = asyncio.events
        policy = events._event_loop_policy
        local = getattr(policy, "_local", None)
        current = None if local is None else (local._loop, local._set_called)
        saved.asyncio = (events._get_running_loop(), policy, current)
        events._set_running_loop(None)
    sys.stdin, sys.stdout, sys.stderr = map(_view, saved.streams)
    return saved


def working_directory() -> str | None:
    """`os.getcwd()`, or None when the working directory is gone (nothing to go back to)."""
    try:
        return os.getcwd()
    except OSError:
        return None


def cwd_first(cwd: str | None) -> str | None:
    """Put the working directory `cwd` (from `working_directory`) first on sys.path, as
    python -m does; return the entry.

    None when nothing was put there: `sys.flags.safe_path`, no working directory, or it
    is first already.
    """
    if sys.flags.safe_path or cwd is None:
        return None
    if sys.path and sys.path[0] == cwd:
        return None
    sys.path.insert(0, cwd)
    return cwd


def drop_from_path(entry: str | None) -> None:
    """Take off sys.path the very entry `cwd_first` put there, wherever it is now."""
    if entry is not None:
        for at, path in enumerate(sys.path):
            if path is entry:
                del sys.path[at]
                return


def _environ_data() -> dict[Any, Any]:
    # os.environ's own table (encoded keys and values): copied and compared at C speed,
    # where os.environ.copy() decodes every entry.
    data: dict[Any, Any] = os.environ._data  # type: ignore[attr-defined]
    return data


def restore(saved: Saved) -> None:
    """Put back what `save` noted: the streams and hooks always, the rest when noted."""
    sys.stdin, sys.stdout, sys.stderr = saved.streams
    sys.displayhook, sys.excepthook = saved.hooks
    _restore_handlers(saved.handlers)
    if saved.asyncio is not None:
        _restore_asyncio(*saved.asyncio)
    if saved.cwd is not None:
        try:
            if os.getcwd() != saved.cwd:
                os.chdir(saved.cwd)
        except OSError:
            os.chdir(saved.cwd)
    if saved.path is not None and sys.path != saved.path:
        sys.path[:] = saved.path
    elif saved.path is None:
        drop_from_path(saved.cwd_entry)
    if saved.environ is not None and _environ_data() != saved.environ:
        _restore_environ(saved.environ)
    if saved.filters is not None:
        filters, items = saved.filters
        if warnings.filters is not filters or filters != items:
            filters[:] = items
            warnings.filters = filters
            warnings._filters_mutated()  # type: ignore[attr-defined]
    if saved.root is not None:
        level, handlers, disable = saved.root
        root = logging.root
        if root.level != level:
            root.setLevel(level)
        if root.handlers != handlers:
            root.handlers[:] = handlers
        if root.manager.disable != disable:
            logging.disable(disable)
    if saved.builtins is not None:
        _restore_builtins(saved.builtins)


def _restore_builtins(before: dict[str, Any]) -> None:
    """Undo names a module set in `builtins`, every cell's namespace of last resort.

    `sys.__displayhook__` sets `builtins._` (doctest's and code's do), after which
    IPython stops keeping `_` as the last result; `gettext.install()` sets `_` too.
    """
    now = vars(builtins)
    try:
        unchanged = now == before  # at C speed; a value's own `==` may raise
    except Exception:
        unchanged = False
    if not unchanged:
        for name in [name for name in now if name not in before]:
            del now[name]
        for name, value in before.items():
            if now.get(name, _MISSING) is not value:
                now[name] = value


def _restore_handlers(before: list[Any]) -> None:
    # Only the main thread can set a handler, so only a run in it can have changed one.
    if (
        list(map(_getsignal, _SIGNALS)) != before
        and threading.current_thread() is threading.main_thread()
    ):
        for number, handler in zip(_SIGNALS, before, strict=True):
            # None: a handler not set from Python, which Python cannot put back.
            if handler is not None and _getsignal(number) is not handler:
                signal.signal(number, handler)


def _restore_asyncio(running: Any, policy: Any, current: tuple[Any, bool] | None) -> None:
    # asyncio.run() ends with set_event_loop(None): the session's loop is put back too.
    events = sys.modules["asyncio"].events
    events._set_running_loop(running)
    events._event_loop_policy = policy
    if current is not None:
        policy._local._loop, policy._local._set_called = current


def _restore_environ(before: dict[Any, Any]) -> None:
    """Undo the run's changes through os.environ, so that the process's own copy follows."""
    data = _environ_data()
    decode = os.environ.decodekey
    value = os.environ.decodevalue
    for key in [k for k in data if k not in before]:
        del os.environ[decode(key)]
    for key, raw in before.items():
        if data.get(key) != raw:
            os.environ[decode(key)] = value(raw)
