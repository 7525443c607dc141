"""`%runmod --subprocess`: run a module in a fresh Python process, variables in, result out.

The process is this interpreter (`sys.executable`) with this session's `sys.path` and
working directory, in a process group of its own (`_child` is its side). What crosses:

- in: the session's variables among the global names the module's code can refer to,
  and the `%%runmod` parameters, each pickled on its own (one that does not pickle is
  left out); nothing else of the namespace is read, whatever its size;
- during: the child's stdout and stderr, relayed to this session's `sys.stdout` and
  `sys.stderr` as they are written, by this (the calling) thread;
- out: the `RunResult` in its pickled form, and the module's traceback as text.

Ctrl-C here sends SIGINT to the child's group and kills it if it has not ended after
`GRACE` seconds; `timeout` kills it; and whatever happens, the group is killed and the
child reaped before this returns: no process is left behind.

A run ends by starting the process for the next one, so that the next run does not wait
for Python to start: it is used only if the working directory and environment are still
those it was started with, and it gets `sys.path` with the request.

The standard library's `subprocess` does it: `multiprocessing` would start its child
through its own bootstrap (spawn: an unpickled `Process`; fork: a copy of the session,
the very state the run is meant not to touch) and gives no handle on the child's own
stdout and stderr.

Nothing here imports IPython.
"""

from __future__ import annotations

import atexit
import codecs
import locale
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from importlib.machinery import ModuleSpec
from typing import IO, Any

from . import _core
from ._result import ProcessEnded, RunResult, _exception_from, _why, dumps, format_seconds

__all__ = ["GRACE", "discard_spare", "plan_in_subprocess", "run_in_subprocess"]

#: Seconds an interrupted run has to stop before its process is killed.
GRACE = 2.0
#: Seconds to wait, once the process has ended, for output its leftovers still hold open.
_DRAIN = 1.0

#: The longest single wait for the child, in seconds: a longer `--timeout` (1e300) is
#: waited for in several, each within what every platform's lock can wait.
_LONGEST_WAIT = 3600.0

_Event = tuple[str, Any]


def _path() -> list[str]:
    return [entry for entry in sys.path if isinstance(entry, str)]


def _bootstrap(read_fd: int, write_fd: int) -> str:
    """The child's `-c` code: import `_child` as this session would, and serve the run."""
    return (
        f"import sys; sys.path[:] = {_path()!r}; "
        f"from ipy_runmod._child import main; main({read_fd}, {write_fd})"
    )


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def _pickled(values: Mapping[str, Any], left_out: dict[str, str]) -> dict[str, bytes]:
    """Each value pickled on its own; one that does not pickle is left out, and why is
    noted in `left_out`.

    Pickled without importing anything here: a class or function of a module that is
    not imported (one a `--no-alter-sys` run defined, say) leaves its value out rather
    than have pickle import that module, running its code, in the session.
    """
    pickled: dict[str, bytes] = {}
    for name, value in values.items():
        try:
            pickled[name] = dumps(value)
        except Exception as e:
            left_out[name] = f"not picklable: {_why(e)}"
    return pickled


def _inputs(
    request: _core.Request, names: list[str], parameters: Mapping[str, Any]
) -> tuple[dict[str, bytes] | None, dict[str, bytes], dict[str, str]]:
    """The session's variables and parameters the module can refer to, pickled, and why
    each one left out was."""
    wanted = [name for name in names if not _is_dunder(name)]
    given = {
        name: parameters[name]
        for name in wanted
        if name in parameters and _core.EXITS.get(name) is not parameters[name]
    }
    left_out: dict[str, str] = {}
    namespace = request.init_globals
    if namespace is None:
        return None, _pickled(given, left_out), left_out
    skip = request.skip or _core._nothing
    shared = {
        name: namespace[name]
        for name in wanted
        if name in namespace and name not in given and not skip(name)
    }
    return _pickled(shared, left_out), _pickled(given, left_out), left_out


def _how_it_ended(module: str, returncode: int) -> ProcessEnded:
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        description = signal.strsignal(number)
        detail = f" ({description})" if description else ""
        return ProcessEnded(f"{module}: its process was killed by {name}{detail}", returncode)
    return ProcessEnded(
        f"{module}: its process exited with status {returncode} before the run finished",
        returncode,
    )


def _stream_encoding() -> str:
    """What the child's stdout and stderr are written in: Python's choice for a pipe."""
    forced = os.environ.get("PYTHONIOENCODING", "").partition(":")[0]
    return forced or locale.getpreferredencoding(False)


class _Child:
    """A fresh process of this interpreter, waiting for the one run it will serve.

    It is started ahead of its run (see `_take_child`), so it notes what a process
    inherits when it starts: a run that finds the session changed since takes a new one.
    """

    def __init__(self) -> None:
        to_child, self.to_child = os.pipe()
        self.from_child, from_child = os.pipe()
        self.cwd = _cwd()
        self.environ = dict(_environ_data())
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _bootstrap(to_child, from_child)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(to_child, from_child),
                start_new_session=True,  # its own group: signals reach what it starts too
            )
        except BaseException:
            os.close(self.to_child)
            os.close(self.from_child)
            raise
        finally:
            os.close(to_child)
            os.close(from_child)

    def fits(self) -> bool:
        """It still runs, and was started as a process started now would be."""
        return (
            self.process.poll() is None and self.cwd == _cwd() and self.environ == _environ_data()
        )

    def discard(self) -> None:
        """End it, unused: closing its request pipe lets it exit; killing makes sure."""
        for fd in (self.to_child, self.from_child):
            os.close(fd)
        _kill_group(self.process.pid)
        self.process.wait()
        for pipe in (self.process.stdout, self.process.stderr):
            if pipe is not None:
                pipe.close()


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _environ_data() -> dict[Any, Any]:
    # os.environ's own table: copied and compared at C speed.
    data: dict[Any, Any] = os.environ._data  # type: ignore[attr-defined]
    return data


def _kill_group(pid: int, number: int = signal.SIGKILL) -> None:
    try:
        os.killpg(pid, number)
    except (ProcessLookupError, PermissionError):
        pass  # gone already


#: The process the next run will use, started when the previous run ended.
_spare: _Child | None = None
_spare_lock = threading.Lock()


def _take_child() -> _Child:
    """The spare process when it fits the session as it is now, else a new one."""
    global _spare
    with _spare_lock:
        child, _spare = _spare, None
    if child is not None and child.fits():
        return child
    if child is not None:
        child.discard()
    return _Child()


def _start_spare() -> None:
    global _spare
    with _spare_lock:
        if _spare is None:
            _spare = _Child()


def discard_spare() -> None:
    """End the process kept for the next run, if any (at exit, and when unloaded)."""
    global _spare
    with _spare_lock:
        child, _spare = _spare, None
    if child is not None:
        child.discard()


atexit.register(discard_spare)


class _Run:
    """One run in a child process, from its request to its result; `wait` is called by
    one thread.

    The threads that read the child's pipes only post what they read, and own the
    pipes they read (they close them once done); the waiting thread does the rest.
    """

    def __init__(self, request: _core.Request, child: _Child) -> None:
        self.request = request
        self.events: queue.SimpleQueue[_Event] = queue.SimpleQueue()
        #: (the child's last message, its return code), once it has ended
        self.end: tuple[tuple[Any, ...] | None, int] | None = None
        self.closed: set[str] = set()  #: the child's output streams read to their end
        self.deadline: float | None = None
        #: None while running, then why it was stopped: "interrupted" or "timed out"
        self.stopped: str | None = None
        self.ending = False  #: the child has ended; what is left is its output
        self.streams: dict[str, Any] = {}  #: where the child's stdout and stderr go
        self.unflushed: set[str] = set()  #: the streams written to since their last flush
        self.to_child, self.from_child = child.to_child, child.from_child
        self.process = child.process
        self.conversing = False
        self.started = time.perf_counter()

    def begin(self, which: bool) -> None:
        """Send the request and relay the child's output; the child finds the module.

        With `which`, the child only says what would run (a `Plan`), and ends.
        """
        header = {
            "which": which,
            "path": _path(),
            "module": self.request.module,
            "args": None if self.request.args is None else tuple(self.request.args),
            "run_name": self.request.run_name,
            "alter_sys": self.request.alter_sys,
            "keep_state": self.request.keep_state,
        }
        try:
            with open(self.to_child, "wb", closefd=False) as request:
                request.write(pickle.dumps(header))
        except BrokenPipeError:
            pass  # the process is gone: how it ended is what the run reports
        encoding = _stream_encoding()
        pipes = {"stdout": self.process.stdout, "stderr": self.process.stderr}
        self.process.stdout = self.process.stderr = None  # each relay closes its own
        for kind, pipe in pipes.items():
            assert pipe is not None
            self._thread(self._relay, kind, pipe, encoding)

    def _thread(self, target: Callable[..., None], *args: Any) -> None:
        threading.Thread(target=target, args=args, daemon=True).start()

    def _relay(self, kind: str, pipe: IO[bytes], encoding: str) -> None:
        decoder = codecs.getincrementaldecoder(encoding)("replace")
        try:
            with pipe:
                fd = pipe.fileno()
                while chunk := os.read(fd, 65536):  # what there is, as soon as there is
                    if text := decoder.decode(chunk):
                        self.events.put((kind, text))
                if text := decoder.decode(b"", final=True):
                    self.events.put((kind, text))
        finally:
            self.closed.add(kind)
            self.events.put(("closed", kind))

    def start(self, parameters: Mapping[str, Any]) -> None:
        """Answer the child's names with the variables, and wait for its result."""
        self.conversing = True
        self._thread(self._converse, parameters)

    def _converse(self, parameters: Mapping[str, Any]) -> None:
        message: tuple[Any, ...] | None = None
        try:
            with open(self.from_child, "rb") as reader, open(self.to_child, "wb") as writer:
                message = pickle.load(reader)
                if message[0] == "names":
                    inputs = _inputs(self.request, message[1], parameters)
                    try:
                        pickle.dump(inputs, writer)
                        writer.close()
                    except BrokenPipeError:
                        pass  # the child is gone: its end says how
                    message = pickle.load(reader)
        except Exception:  # EOFError, a truncated message: the child ended first
            message = None
        finally:
            self.end = message, self.process.wait()
            self.events.put(("end", None))

    def send(self, number: int) -> None:
        """Send signal `number` to the child's process group (which may be gone already)."""
        _kill_group(self.process.pid, number)

    def wait(self, stdout: Any, stderr: Any) -> tuple[Any, ...] | None:
        """Relay the child's output until it has ended; its last message, if any.

        Ctrl-C interrupts the child (SIGINT), and kills it when it has not ended after
        `GRACE` seconds or at a second Ctrl-C; the timeout kills it.
        """
        self.streams = {"stdout": stdout, "stderr": stderr}
        if self.request.timeout is not None:
            self.deadline = self.started + self.request.timeout
        # Ended and read to the end: nothing more is posted, but what was may still wait.
        while self.end is None or len(self.closed) < 2:
            try:
                kind, value = self._next()
                if kind == "end":
                    self.send(signal.SIGKILL)  # whatever the module left in its group
                    self.ending, self.deadline = True, time.perf_counter() + _DRAIN
                self._write(kind, value)
            except queue.Empty:
                assert self.deadline is not None
                if time.perf_counter() < self.deadline:
                    continue  # a wait cut short to `_LONGEST_WAIT`
                if self.ending:
                    break  # output held open by a process that left the group
                self.stopped = self.stopped or "timed out"
                self.send(signal.SIGKILL)
                self.deadline = None
            except KeyboardInterrupt:
                if self.ending:
                    break
                if self.stopped is None:
                    self.stopped = "interrupted"
                    self.send(signal.SIGINT)
                    self.deadline = time.perf_counter() + GRACE
                else:
                    self.send(signal.SIGKILL)  # a second Ctrl-C: at once
        while True:
            try:
                kind, value = self.events.get_nowait()
            except queue.Empty:
                break
            self._write(kind, value)
        self._flush()
        assert self.end is not None
        return self.end[0]

    def _write(self, kind: str, text: Any) -> None:
        stream = self.streams.get(kind)
        if stream is not None:
            stream.write(text)
            self.unflushed.add(kind)

    def _flush(self) -> None:
        """Flush what was written: once what has arrived is written, not at every write
        (a kernel's stream waits for its I/O thread at each flush)."""
        while self.unflushed:
            self.streams[self.unflushed.pop()].flush()

    def _next(self) -> _Event:
        if self.unflushed and self.events.empty():
            self._flush()
        if self.deadline is None:
            return self.events.get()
        remaining = self.deadline - time.perf_counter()
        return self.events.get(timeout=min(max(0.0, remaining), _LONGEST_WAIT))

    def close(self) -> None:
        """Kill the group and reap the child, whatever state they are in.

        Then wait, briefly, until what the child left in its group has died too: a
        killed process may take a moment to end (and is then reaped by its new parent).
        """
        self.send(signal.SIGKILL)
        self.process.wait()
        pause, deadline = 0.001, time.perf_counter() + _DRAIN
        while time.perf_counter() < deadline:
            try:
                os.killpg(self.process.pid, 0)
            except (ProcessLookupError, PermissionError):
                break
            time.sleep(pause)
            pause = min(2 * pause, 0.05)
        if not self.conversing:
            os.close(self.to_child)
            os.close(self.from_child)


def run_in_subprocess(request: _core.Request) -> RunResult:
    """Run `request`'s module in a fresh process; its failure, of any kind, is the result's.

    Errors in finding the module raise here, as they do from `execute`.
    """
    run, message = _serve(request, which=False)
    if message is not None and message[0] == "result":
        result: RunResult = pickle.loads(message[1])
        if result.exception is not None and message[2] is not None:
            _with_text(result.exception, message[2])
        return result
    return RunResult(
        module=request.module,
        run_name=request.run_name or request.module,
        spec=ModuleSpec(request.module, None),
        argv=None,
        globals={},
        bound=(),
        elapsed=time.perf_counter() - run.started,
        cpu_time=0.0,
        exception=_why_it_ended(run),
    )


def plan_in_subprocess(request: _core.Request) -> _core.Plan:
    """What would run in the fresh process (`--which`): found there, run nowhere."""
    run, message = _serve(request, which=True)
    if message is not None and message[0] == "plan":
        plan: _core.Plan = message[1]
        return plan
    raise _why_it_ended(run)


def _serve(request: _core.Request, which: bool) -> tuple[_Run, tuple[Any, ...] | None]:
    """Have a child serve `request`: the run, and the child's last message.

    Raises what finding the module raised there (`NotRunnable`, a parent package's error).
    """
    run = _Run(request, _take_child())
    try:
        run.begin(which)
        parameters = None
        if not which:  # the cell body runs while the child starts
            given = request.parameters
            parameters = given() if callable(given) else given
        run.start(parameters or {})
        message = run.wait(sys.stdout, sys.stderr)
    finally:
        run.close()
        _start_spare()  # the next run's process starts while this session goes on
    if message is not None and message[0] == "not-runnable":
        raise _core.NotRunnable(message[1], missing=message[2])
    if message is not None and message[0] == "error":
        raise _with_text(_exception_from(message[1]), message[2])
    return run, message


def _why_it_ended(run: _Run) -> BaseException:
    """For a child that sent no result: how it ended, as the exception a cell shows."""
    request = run.request
    if run.stopped == "interrupted":
        return KeyboardInterrupt()
    if run.stopped == "timed out":
        assert request.timeout is not None
        return ProcessEnded(
            f"{request.module} did not finish within {format_seconds(request.timeout)} "
            "(--timeout); its process was killed",
        )
    assert run.end is not None
    return _how_it_ended(request.module, run.end[1])


def _with_text(exc: BaseException, text: str) -> BaseException:
    """Have IPython show the child's own traceback for `exc`, whose frames stayed there."""
    lines = text.rstrip("\n").split("\n")
    try:
        exc._render_traceback_ = lambda: lines  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass  # an exception type that refuses attributes: shown as it is
    return exc
