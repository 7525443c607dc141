"""Nothing lost: %runmod under faults, interrupts, threads and nesting.

Every test here ends by asserting the run invariants (conftest's `Invariants`): `sys.argv`
is the very same list with the same items, `sys.modules` has no entry left for the run
module (and any entry it replaced is back), `sys.modules["__main__"]` is the notebook's,
`SYS_LOCK` is not left held, and every notebook name is bound to the same object as
before, except the names the run reports as merged; those are never dunders nor IPython's
hidden names, which do not change at all.

Generated magic lines (hypothesis) are in test_shell_robustness_generated.py; interrupting
a real kernel is in test_kernel.py.
"""

from __future__ import annotations

import _imp
import _thread
import gc
import importlib
import itertools
import linecache
import os
import random
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest
from conftest import Invariants, MakePackage
from IPython.core.interactiveshell import InteractiveShell

import ipy_runmod
from ipy_runmod import RunResult, _core
from ipy_runmod._core import SYS_LOCK
from ipy_runmod.magics import ModuleExit

pytestmark = pytest.mark.shell

NewInvariants = Callable[[], Invariants]

#: How long a looping module runs at most: an interrupt that fails to land cannot hang us.
DEADLINE = 10.0


def runmod(ip: InteractiveShell, line: str) -> Any:
    return ip.run_line_magic("runmod", line)


def runmod_from_a_thread(ip: InteractiveShell, line: str) -> Any:
    """%runmod as the magic itself runs it, for many threads at once.

    IPython's `run_line_magic` is not thread-safe: its builtin trap keeps one nesting
    count for every thread, and concurrent calls can lose an update and then fail with
    `KeyError: 'get_ipython'` inside IPython. What is under test is ipy_runmod's own
    locking, so the threads call the magic's method, as `run_line_magic` does.
    """
    return ip.find_line_magic("runmod")(line)


def after_run(check: Invariants, previous: RunResult | None) -> RunResult | None:
    """Assert the invariants after one %runmod; return the run's result (None: no run).

    The names the run reports as merged may have changed; its run name and target must
    be in sys.modules as before, but for the module of a run under its own name that
    ended well.
    """
    res = ipy_runmod.last_result()
    if res is None or res is previous:
        check.check()
        return None
    check.check(merged=res.merged, run_names=(res.run_name, res.spec.name), result=res)
    return res


# ---------------------------------------------------------------------------------------
# Part 1: the invariants helper itself fails when a guarantee is broken.
# ---------------------------------------------------------------------------------------


def _leak_argv_object() -> Callable[[], None]:
    saved = sys.argv
    sys.argv = list(saved)  # same items, another list

    def undo() -> None:
        sys.argv = saved

    return undo


def _leak_argv_items() -> Callable[[], None]:
    saved = list(sys.argv)
    sys.argv.append("--leaked")

    def undo() -> None:
        sys.argv[:] = saved

    return undo


def _replaced_module(name: str) -> Callable[[], Callable[[], None]]:
    """A leak: sys.modules[name] replaced by a stand-in (the undo puts it back)."""

    def leak() -> Callable[[], None]:
        saved = sys.modules[name]
        sys.modules[name] = type(sys)(name)

        def undo() -> None:
            sys.modules[name] = saved

        return undo

    return leak


_leak_main = _replaced_module("__main__")
_replace_run_module = _replaced_module("json")


def _leak_run_module() -> Callable[[], None]:
    sys.modules["rm_leaked_run"] = type(sys)("rm_leaked_run")
    return lambda: sys.modules.pop("rm_leaked_run", None) and None


def _hold_lock() -> Callable[[], None]:
    SYS_LOCK.acquire()
    return SYS_LOCK.release


@pytest.mark.parametrize(
    ("leak", "run_names"),
    [
        (_leak_argv_object, ()),
        (_leak_argv_items, ()),
        (_leak_main, ()),
        (_leak_run_module, ("rm_leaked_run",)),
        (_replace_run_module, ("json",)),
        (_hold_lock, ()),
    ],
    ids=["argv-object", "argv-items", "main", "run-module-left", "run-module-replaced", "lock"],
)
def test_invariants_catch_a_leak_in_sys(
    ip: InteractiveShell,
    invariants: NewInvariants,
    leak: Callable[[], Callable[[], None]],
    run_names: tuple[str, ...],
) -> None:
    import json  # noqa: F401  (the "replaced" case needs it imported)

    check = invariants()
    undo = leak()
    try:
        with pytest.raises(AssertionError):
            check.check(run_names=run_names)
    finally:
        undo()
    check.check(run_names=run_names)


@pytest.mark.parametrize(
    "change",
    [
        lambda ns: ns.__setitem__("x", [1]),  # same value, another object
        lambda ns: ns.pop("x"),
        lambda ns: ns.__setitem__("added", 1),
        lambda ns: ns.__setitem__("__name__", "changed"),
        lambda ns: ns.pop("__builtins__"),
    ],
    ids=["rebound", "deleted", "added", "dunder-rebound", "dunder-deleted"],
)
def test_invariants_catch_a_change_in_the_namespace(
    ip: InteractiveShell, invariants: NewInvariants, change: Callable[[dict[str, Any]], object]
) -> None:
    ip.user_ns["x"] = [1]
    saved = dict(ip.user_ns)
    check = invariants()
    change(ip.user_ns)
    try:
        with pytest.raises(AssertionError):
            check.check()
    finally:
        ip.user_ns.clear()
        ip.user_ns.update(saved)
    check.check()


def test_invariants_allow_exactly_the_merged_names(
    ip: InteractiveShell, invariants: NewInvariants
) -> None:
    ip.user_ns["x"] = 1
    check = invariants()
    ip.user_ns["x"] = 2
    ip.user_ns["new"] = 3
    check.check(merged=("x", "new"))
    with pytest.raises(AssertionError):
        check.check(merged=("x",))
    with pytest.raises(AssertionError):
        check.check(merged=("new",))


@pytest.mark.parametrize("name", ["__name__", "__spec__", "In", "get_ipython", "_ih"])
def test_invariants_never_allow_dunders_or_hidden_names_to_change(
    ip: InteractiveShell, invariants: NewInvariants, name: str
) -> None:
    saved = dict(ip.user_ns)
    check = invariants()
    ip.user_ns[name] = "clobbered by a merge"
    try:
        with pytest.raises(AssertionError):
            check.check(merged=(name,))  # even when reported as merged
    finally:
        ip.user_ns.clear()
        ip.user_ns.update(saved)
    check.check()


# ---------------------------------------------------------------------------------------
# Part 3: faults inside the module.
# ---------------------------------------------------------------------------------------

ECHO = """
import sys
seen_argv = list(sys.argv)
registered = sys.modules[__name__].__dict__ is globals()
"""


@pytest.fixture
def pkg(make_package: MakePackage) -> str:
    return make_package({"__init__.py": "", "echo.py": ECHO})


def _module(make_package: MakePackage, code: str) -> str:
    """A package with one module `m` of this code; returns `pkg.m`."""
    name = make_package({"__init__.py": "", "echo.py": ECHO, "m.py": code})
    return f"{name}.m"


RAISING = {
    "exception": ("partial = 1\nraise ValueError('ordinary')\n", ValueError),
    "base-exception": (
        "partial = 1\nclass Stop(BaseException): pass\nraise Stop('stop')\n",
        BaseException,
    ),
    "generator-exit": ("partial = 1\nraise GeneratorExit\n", GeneratorExit),
    "keyboard-interrupt": ("partial = 1\nraise KeyboardInterrupt\n", KeyboardInterrupt),
    "recursion": ("partial = 1\ndef f():\n    return f()\nf()\n", RecursionError),
    "given-object": ("partial = 1\nraise given\n", ValueError),
}


@pytest.mark.parametrize("merge", [False, True], ids=["plain", "merge"])
@pytest.mark.parametrize("case", list(RAISING))
def test_exception_propagates_as_itself_and_nothing_is_lost(
    ip: InteractiveShell,
    make_package: MakePackage,
    invariants: NewInvariants,
    case: str,
    merge: bool,
) -> None:
    code, kind = RAISING[case]
    mod = _module(make_package, code)
    given = ValueError("the notebook's own")
    ip.user_ns.update(given=given, partial="notebook")
    check = invariants()
    previous = ipy_runmod.last_result()
    with pytest.raises(kind) as info:
        runmod(ip, f"{mod} {'--merge' if merge else ''} --main -- a b")
    res = after_run(check, previous)
    assert res is not None and res.exception is info.value and not res.ok
    assert res["partial"] == 1  # the partial globals of the failed run
    if case == "given-object":
        assert info.value is given
    if case == "base-exception":
        assert type(info.value).__name__ == "Stop"
    if merge and isinstance(info.value, Exception):
        assert "partial" in res.merged and ip.user_ns["partial"] == 1  # README, "Merging back"
    if not merge:
        assert res.merged == () and ip.user_ns["partial"] == "notebook"


@pytest.mark.parametrize("case", ["exception", "base-exception", "recursion"])
def test_exception_fails_the_cell(
    ip: InteractiveShell,
    make_package: MakePackage,
    invariants: NewInvariants,
    case: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, kind = RAISING[case]
    mod = _module(make_package, code)
    check = invariants()
    previous = ipy_runmod.last_result()
    result = ip.run_cell(f"%runmod {mod}\npass", store_history=False)
    assert isinstance(result.error_in_exec, kind)
    res = after_run(check, previous)
    assert res is not None and res.exception is result.error_in_exec
    out = capsys.readouterr().out
    assert "m.py" in out and "_core.py" not in out
    assert ip.run_cell("ran_after = 1", store_history=False).success  # the session goes on
    del ip.user_ns["ran_after"]


EXITS: list[Any] = [
    ("raise SystemExit", None),
    ("sys.exit()", None),
    ("sys.exit(0)", None),
    ("sys.exit(None)", None),
    ("sys.exit(False)", None),
    ("sys.exit(2)", "exited with status 2"),
    ("sys.exit(-1)", "exited with status -1"),
    ("sys.exit('bad input')", "exited with status 1: bad input"),
    ("sys.exit(Code())", "exited with status 1: custom code"),
    ("sys.exit(object())", "exited with status 1: <object object at 0x"),
    ("sys.exit(True)", "exited with status 1"),  # Python exits with 1
]


@pytest.mark.parametrize(("call", "message"), EXITS)
def test_system_exit(
    ip: InteractiveShell,
    make_package: MakePackage,
    invariants: NewInvariants,
    call: str,
    message: str | None,
) -> None:
    code = f"""
import sys
class Code:
    def __str__(self):
        return "custom code"
partial = 1
{call}
after = 1
"""
    mod = _module(make_package, code)
    check = invariants()
    previous = ipy_runmod.last_result()
    if message is None:
        assert runmod(ip, f"{mod} --merge -- x") is None
        res = after_run(check, previous)
        assert res is not None and res.ok and res.exit_code == 0
        assert isinstance(res.exception, SystemExit)
    else:
        with pytest.raises(ModuleExit) as info:
            runmod(ip, f"{mod} --merge -- x")
        res = after_run(check, previous)
        assert res is not None and not res.ok and res.exit_code not in (0, None)
        text = str(info.value)
        assert text.startswith(f"{mod} {message}"), text
        assert "\n" not in text
        assert info.value.__cause__ is res.exception
        code = res.exception.code
        assert res.exit_code == (code if isinstance(code, int) else 1)
    # names bound before the exit are merged, success or not (README, "Merging back")
    assert set(res.merged) == {"sys", "Code", "partial"}
    assert ip.user_ns["partial"] == 1 and "after" not in ip.user_ns


# Modules that tamper with sys.argv, their own sys.modules entry and sys.modules['__main__'].
SYS_FAULTS = {
    "argv-rebound": "import sys\nsys.argv = ['hijacked']\n",
    "argv-mutated": "import sys\nsys.argv.clear()\nsys.argv.append('mutated')\n",
    "argv-deleted": "import sys\ndel sys.argv\n",
    "argv-rebound-then-error": "import sys\nsys.argv = ['hijacked']\nraise ValueError('x')\n",
    "own-entry-deleted": "import sys\ndel sys.modules[__name__]\n",
    "own-entry-replaced": "import sys, types\nsys.modules[__name__] = types.ModuleType('fake')\n",
    "own-entry-deleted-then-error": (
        "import sys\ndel sys.modules[__name__]\nraise ValueError('x')\n"
    ),
    "main-replaced": "import sys, types\nsys.modules['__main__'] = types.ModuleType('fake')\n",
    "main-deleted": "import sys\ndel sys.modules['__main__']\n",
    "main-deleted-then-error": "import sys\ndel sys.modules['__main__']\nraise ValueError('x')\n",
    "all-three": (
        "import sys, types\nsys.argv = None\nsys.modules[__name__] = None\n"
        "sys.modules['__main__'] = types.ModuleType('fake')\n"
    ),
}


def _sys_fault_params() -> Iterator[Any]:
    for case in SYS_FAULTS:
        for flags in ("", "--main", "--merge", "-n custom"):
            yield pytest.param(case, flags, id=f"{case}[{flags or 'default'}]")


@pytest.mark.parametrize(("case", "flags"), list(_sys_fault_params()))
def test_module_that_tampers_with_sys(
    ip: InteractiveShell,
    make_package: MakePackage,
    invariants: NewInvariants,
    case: str,
    flags: str,
) -> None:
    mod = _module(make_package, SYS_FAULTS[case])
    check = invariants()
    previous = ipy_runmod.last_result()
    main = sys.modules["__main__"]
    try:
        if case.endswith("then-error"):
            with pytest.raises(ValueError):
                runmod(ip, f"{mod} {flags} -- a")
        else:
            runmod(ip, f"{mod} {flags} -- a")
        res = after_run(check, previous)
        assert res is not None and res.ok != case.endswith("then-error")
    finally:
        sys.modules["__main__"] = main  # so that a failure here does not spoil later tests
    # and the next run sees a sane sys
    res = runmod(ip, f"{mod.rpartition('.')[0]}.echo -o --main -- next")
    assert res["seen_argv"][1:] == ["next"] and res["registered"]


REBINDS = """
partial = 1
__name__ = "hijacked"
__spec__ = None
__package__ = "nowhere"
__file__ = "/no/such/file.py"
__loader__ = None
__doc__ = "the module's doc"
__builtins__ = {}
after = 2
"""


@pytest.mark.parametrize("then", ["", "raise ValueError('after rebinding')"])
@pytest.mark.parametrize("flags", ["--merge", "--merge --main", "--isolated --merge", ""])
def test_module_that_rebinds_its_dunders(
    ip: InteractiveShell,
    make_package: MakePackage,
    invariants: NewInvariants,
    flags: str,
    then: str,
) -> None:
    mod = _module(make_package, REBINDS + then)
    ip.user_ns.update(__spec__="notebook spec", __package__="notebook package")
    check = invariants()
    previous = ipy_runmod.last_result()
    if then:
        with pytest.raises(ValueError):
            runmod(ip, f"{mod} {flags}")
    else:
        runmod(ip, f"{mod} {flags}")
    res = after_run(check, previous)
    assert res is not None and res["__name__"] == "hijacked"
    assert set(res.merged) == ({"partial", "after"} if "--merge" in flags else set())
    assert ip.user_ns["__spec__"] == "notebook spec"


DELETES = {
    "del": "del keep\nnew = 1\n",
    "del-then-error": "del keep\nnew = 1\nraise ValueError('x')\n",
    "pop": "globals().pop('keep')\nglobals().pop('other')\nnew = 1\n",
    "clear": "globals().clear()\nnew = 1\n",
    "every-name": (
        "for _k in [k for k in globals() if not k.startswith('__')]:\n"
        "    del globals()[_k]\nnew = 1\n"
    ),
    "del-and-rebind": "del keep\nkeep = 'rebound'\n",
}


@pytest.mark.parametrize("flags", ["", "--merge", "--merge --exclude new"])
@pytest.mark.parametrize("case", list(DELETES))
def test_module_that_deletes_notebook_names(
    ip: InteractiveShell,
    make_package: MakePackage,
    invariants: NewInvariants,
    case: str,
    flags: str,
) -> None:
    mod = _module(make_package, DELETES[case])
    keep, other = ["notebook value"], ["other"]
    ip.user_ns.update(keep=keep, other=other)
    check = invariants()
    previous = ipy_runmod.last_result()
    if case.endswith("then-error"):
        with pytest.raises(ValueError):
            runmod(ip, f"{mod} {flags}")
    else:
        runmod(ip, f"{mod} {flags}")
    res = after_run(check, previous)
    assert res is not None
    assert ip.user_ns["other"] is other
    if case == "del-and-rebind" and "--merge" in flags:
        assert ip.user_ns["keep"] == "rebound"
    else:
        assert ip.user_ns["keep"] is keep
    if case != "del-and-rebind":  # the others bind `new`
        assert ("new" in ip.user_ns) == ("--merge" in flags and "--exclude" not in flags)


OUTLIVES = """
import sys, threading

def late_work():
    global late
    release.wait(10)
    late = "bound after the run"
    seen.append((list(sys.argv), sys.modules.get(__name__)))
    seen.append(get_ipython().run_line_magic("runmod", f"-o {echo} -- from-thread"))
    seen.append(list(sys.argv))

worker = threading.Thread(target=late_work, daemon=True)
worker.start()
early = "bound during the run"
"""


@pytest.mark.parametrize("flags", ["", "--merge", "--main --merge"])
def test_threads_that_outlive_the_run(
    ip: InteractiveShell,
    make_package: MakePackage,
    invariants: NewInvariants,
    flags: str,
) -> None:
    mod = _module(make_package, OUTLIVES)
    seen: list[Any] = []
    release = threading.Event()
    ip.user_ns.update(seen=seen, release=release, echo=f"{mod.rpartition('.')[0]}.echo")
    check = invariants()
    previous = ipy_runmod.last_result()
    runmod(ip, f"{mod} {flags} -- during")
    res = after_run(check, previous)
    assert res is not None and res["worker"].is_alive()
    # What the thread should see: the notebook's main module, or the run's own module,
    # left registered under its name.
    entry = check.main if res.run_name == "__main__" else sys.modules[res.run_name]
    assert res.run_name == "__main__" or vars(entry) is res.globals
    release.set()
    res["worker"].join(10)
    assert not res["worker"].is_alive()
    # the thread saw the notebook's sys, not the run's, and its own nested run worked
    assert seen[0][0] == list(sys.argv) and seen[0][1] is entry
    assert seen[1]["seen_argv"][1:] == ["from-thread"] and seen[1]["registered"]
    assert seen[2] == list(sys.argv)
    assert res["late"] == "bound after the run"
    assert "late" not in ip.user_ns  # merging happened when the run ended
    check.check(merged=res.merged, run_names=(res.run_name,))


# ---------------------------------------------------------------------------------------
# Part 4: interrupts.
# ---------------------------------------------------------------------------------------

LOOP_SLEEP = f"""
import sys, time
partial = list(sys.argv)
from . import flag
flag.started.set()
deadline = time.monotonic() + {DEADLINE}
while time.monotonic() < deadline:
    time.sleep(0.001)
finished = True
"""

LOOP_BUSY = f"""
import sys, time
partial = list(sys.argv)
from . import flag
flag.started.set()
deadline = time.monotonic() + {DEADLINE}
n = 0
while time.monotonic() < deadline:
    n += 1
finished = True
"""

QUICK = """
import sys
seen = list(sys.argv)
registered = sys.modules[__name__].__dict__ is globals()
for _ in range(10000):
    pass
"""


def interrupted(
    call: Callable[[], object],
    delay: float,
    timers: list[threading.Timer] | None = None,
    once: threading.Event | None = None,
) -> KeyboardInterrupt | None:
    """Call with `_thread.interrupt_main()` fired from a timer after `delay` seconds
    (and, given `once`, only once that event is set).

    Returns the KeyboardInterrupt, wherever it landed (in the call or just after it), or
    None. The interrupt never escapes into the test. A thread object that is freed runs a
    weakref callback (`threading._dangling`) where an interrupt would be lost: pass
    `timers` to keep them alive.
    """

    def fire() -> None:
        if once is not None:
            once.wait(PATIENCE)
        _thread.interrupt_main()

    timer = threading.Timer(delay, fire)
    if timers is not None:
        timers.append(timer)
    caught: KeyboardInterrupt | None = None
    # Ctrl-C raises KeyboardInterrupt in IPython and a kernel; a process started as a
    # background job inherits SIGINT ignored, and then interrupt_main() does nothing.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        try:
            try:
                timer.start()
                call()
            finally:
                timer.join()  # once it has fired, the interrupt lands here at the latest
        except KeyboardInterrupt as e:
            caught = e
        timer.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    return caught


@pytest.mark.parametrize("flags", ["", "--main --merge", "--isolated"])
@pytest.mark.parametrize("loop", [LOOP_SLEEP, LOOP_BUSY], ids=["sleeping", "busy"])
def test_interrupt_during_a_long_run(
    ip: InteractiveShell,
    make_package: MakePackage,
    invariants: NewInvariants,
    loop: str,
    flags: str,
) -> None:
    name = make_package(
        {
            "__init__.py": "",
            "echo.py": ECHO,
            "m.py": loop,
            "flag.py": "import threading\nstarted = threading.Event()\n",
        }
    )
    mod = f"{name}.m"
    started = importlib.import_module(f"{name}.flag").started
    ip.user_ns["partial"] = "notebook"
    check = invariants()
    previous = ipy_runmod.last_result()
    start = time.monotonic()
    # interrupted once the module is in its loop, however long it took to get there
    caught = interrupted(lambda: runmod(ip, f"{mod} {flags} -- a b"), 0, once=started)
    assert caught is not None, "the interrupt did not stop the run"
    assert time.monotonic() - start < DEADLINE / 2
    res = after_run(check, previous)
    assert res is not None and res.exception is caught
    assert res["partial"][1:] == ["a", "b"] and "finished" not in res
    # an interrupted run is a failed run: with --merge, what it bound so far is merged
    merged = res.merged
    if "--merge" in flags:
        assert "partial" in merged and ip.user_ns["partial"] is res["partial"]
    else:
        assert merged == () and ip.user_ns["partial"] == "notebook"
    # the next run is normal
    res = runmod(ip, f"{mod.rpartition('.')[0]}.echo -o -- next")
    assert res["seen_argv"][1:] == ["next"] and res["registered"]
    check.check(merged=merged)


@pytest.mark.parametrize("api", ["magic", "run", "run_module"])
def test_interrupts_at_random_moments(
    ip: InteractiveShell, make_package: MakePackage, invariants: NewInvariants, api: str
) -> None:
    """Timers at random short delays: interrupts land while setting up, running, restoring."""
    mod = _module(make_package, QUICK)
    calls: dict[str, Callable[[], object]] = {
        "magic": lambda: runmod(ip, f"{mod} --merge -- a"),
        "run": lambda: ipy_runmod.run(mod, ip.user_ns, args=["a"]),
        "run_module": lambda: ipy_runmod.run_module(mod, alter_sys=True),
    }
    calls[api]()  # imported and compiled once: the loop below imports nothing
    rng = random.Random(1234)
    outcomes = 0
    timers: list[threading.Timer] = []
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # let the timer thread fire while the run holds the GIL
    gc.disable()  # no finalizer or weakref callback may swallow an interrupt
    try:
        for _ in range(150):
            check = invariants()
            previous = ipy_runmod.last_result()
            caught = interrupted(calls[api], rng.uniform(0, 0.002), timers)
            res = ipy_runmod.last_result()
            if res is not previous and res is not None and res.exception is not None:
                assert res.exception is caught
            outcomes += caught is not None
            _release_import_lock(caught)
            after_run(check, previous)  # while the interrupt (and its traceback) lives
            del caught
    finally:
        gc.enable()
        sys.setswitchinterval(switch)
    assert outcomes == 150  # every timer fired and was caught
    # Where they land depends on the machine's load: that every point of a run is
    # reached is the job of test_an_interrupt_at_any_point_of_a_run_leaves_sys_restored.


def _innermost(exc: BaseException | None) -> str:
    tb = exc.__traceback__ if exc is not None else None
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return ""
    return f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno} {tb.tb_frame.f_code.co_qualname}"


def _release_import_lock(caught: BaseException | None) -> None:
    """Undo what CPython itself leaks when an interrupt lands in importlib.

    `importlib.util.find_spec` takes the global import lock in `_ImportLockContext.__enter__`
    (`_imp.acquire_lock()`); an interrupt right after that call returns skips `__exit__`, and
    this thread then holds the lock for good: every import in any other thread hangs. That
    is a window in importlib itself, not ipy_runmod's to close; release it here so that the
    threads of later tests can import.
    """
    while _imp.lock_held():
        try:
            _imp.release_lock()
        except RuntimeError:  # held by another thread: not ours to release
            pytest.fail(f"import lock held elsewhere after an interrupt at {_innermost(caught)}")


class _Interrupter:
    """Raises KeyboardInterrupt at the `at`-th point where a real interrupt can land.

    CPython runs signal handlers (so raises an asynchronous KeyboardInterrupt) only at
    certain points: on entry to a Python function or resumption of a generator (RESUME),
    after a call to a C function returns, and on a loop's backward jump. The profile hook
    sees the first two as 'call' and 'c_return' events, the trace hook the third as an
    event at an earlier instruction (`f_lasti`) of the same frame; an exception raised from
    either hook is raised right there in the frame. So this replays, one by one, every
    place in ipy_runmod's own code (and the contextlib machinery it uses) where a Ctrl-C
    or `interrupt_kernel()` can land; `only` narrows that to the functions of these names.
    """

    OURS = (os.path.dirname(ipy_runmod.__file__), sys.modules["contextlib"].__file__)

    def __init__(self, at: int, only: tuple[str, ...] = ()) -> None:
        self.at = at
        self.only = only
        self.count = 0
        self.where = ""
        self.last_instruction: dict[FrameType, int] = {}

    def _ours(self, frame: FrameType) -> bool:
        code = frame.f_code
        if self.only and code.co_name not in self.only:
            return False
        return code.co_filename.startswith(self.OURS)

    def _point(self, frame: FrameType, what: str) -> None:
        self.count += 1
        if self.count - 1 == self.at:
            self.stop()
            file = os.path.basename(frame.f_code.co_filename)
            self.where = f"{file}:{frame.f_lineno} {frame.f_code.co_qualname} {what}".strip()
            raise KeyboardInterrupt(f"injected at {self.where}")

    def profile(self, frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and self._ours(frame):
            self._point(frame, "on entry")
        elif event == "c_return" and self._ours(frame):
            self._point(frame, f"after {getattr(arg, '__qualname__', arg)}()")

    def trace(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "call":
            if not self._ours(frame):
                return None
            # Events per instruction on 3.11; 3.12+ ignore this here, but their 'line'
            # event at a loop's head shows the backward jump just as well.
            frame.f_trace_opcodes = True
        elif event in ("line", "opcode"):
            last = self.last_instruction.get(frame, -1)
            self.last_instruction[frame] = frame.f_lasti
            if frame.f_lasti < last:
                self._point(frame, "at a loop's backward jump")
        return self.trace

    def start(self) -> None:
        sys.settrace(self.trace)
        sys.setprofile(self.profile)

    def stop(self) -> None:
        sys.setprofile(None)
        sys.settrace(None)
        self.last_instruction.clear()


def interrupt_everywhere(
    call: Callable[[], object],
    check: Callable[[KeyboardInterrupt], None],
    only: tuple[str, ...] = (),
) -> list[str]:
    """Call once per interrupt point, interrupted there; `check` after each, while the
    KeyboardInterrupt is alive (as IPython keeps sys.last_value). Returns the points where
    `check` failed, each with the first line of its error."""
    windows: list[str] = []
    for at in range(5000):
        hook = _Interrupter(at, only)
        caught: KeyboardInterrupt | None = None
        try:
            hook.start()
            try:
                call()
            finally:
                hook.stop()
        except KeyboardInterrupt as e:
            caught = e
        if not hook.where:
            assert at > 0, "the hooks never saw ipy_runmod's code"
            return windows  # every interrupt point has been tried
        assert caught is not None, f"the interrupt at {hook.where} was swallowed"
        try:
            check(caught)
        except AssertionError as e:
            windows.append(f"{hook.where}: {str(e).splitlines()[0][:200]}")
        del caught
    pytest.fail("more interrupt points than expected")


@pytest.mark.parametrize("api", ["magic", "magic --main", "magic -n custom", "run", "run_module"])
def test_an_interrupt_at_any_point_of_a_run_leaves_sys_restored(
    ip: InteractiveShell, make_package: MakePackage, invariants: NewInvariants, api: str
) -> None:
    """Was a bug: sys was altered and restored by a generator context manager, and an
    interrupt just after `next(gen)` in its `__enter__` or on entry to its `__exit__`
    skipped the restoration while the KeyboardInterrupt's traceback lived."""
    mod = _module(make_package, QUICK)
    calls: dict[str, Callable[[], object]] = {
        "magic": lambda: runmod(ip, f"{mod} -- a"),
        "magic --main": lambda: runmod(ip, f"{mod} --main -- a"),
        "magic -n custom": lambda: runmod(ip, f"{mod} -n custom -- a"),
        "run": lambda: ipy_runmod.run(mod, ip.user_ns, args=["a"]),
        "run_module": lambda: ipy_runmod.run_module(mod, alter_sys=True),
    }
    argv, main = sys.argv, sys.modules["__main__"]
    check = invariants()

    def restored(caught: KeyboardInterrupt) -> None:
        try:
            check.check(run_names=(mod, "custom"))
        except AssertionError:
            del caught
            gc.collect()  # a suspended restoration may run now; then undo what is left
            sys.argv, sys.modules["__main__"] = argv, main
            sys.modules.pop(mod, None)
            sys.modules.pop("custom", None)
            raise

    windows = interrupt_everywhere(calls[api], restored)
    assert not windows, "restoration skipped when interrupted at:\n" + "\n".join(windows)


def test_an_interrupt_while_merging_leaves_exactly_the_reported_names_merged(
    ip: InteractiveShell, make_package: MakePackage, invariants: NewInvariants
) -> None:
    """Was a bug: names were copied one by one and `merged` set after the loop, so an
    interrupt at the loop's backward jump left merged names unreported."""
    mod = _module(make_package, "a = 1\nb = 2\nc = 3\n")
    ip.user_ns.update(a=0, b=0, c=0)
    names = dict(ip.user_ns)

    def merged_as_reported(caught: KeyboardInterrupt) -> None:
        try:
            res = ipy_runmod.last_result()
            assert res is not None
            check.check(merged=res.merged, run_names=(mod,))
        finally:
            ip.user_ns.update(names)

    check = invariants()
    windows = interrupt_everywhere(
        lambda: runmod(ip, f"{mod} --merge"), merged_as_reported, only=("merge_into",)
    )
    assert not windows, "merged names not reported when interrupted at:\n" + "\n".join(windows)


# ---------------------------------------------------------------------------------------
# Part 5: threads and nesting.
# ---------------------------------------------------------------------------------------

#: How long a test waits for a thread to reach a point: only a hang can take this long.
PATIENCE = 10.0


def _at_the_run_lock(thread: threading.Thread) -> bool:
    """Whether `thread` waits for the run lock that another thread holds.

    True when its innermost frame is the core's (`_find` or `_run_here`) at a `with SYS_LOCK` line
    while the lock is held (by the asking thread, or by any thread but the one looked
    at): it then cannot go on until the holder lets go. When the lock is free, a thread
    at that line is only passing.
    """
    frame = sys._current_frames().get(thread.ident or -1)
    if frame is None or frame.f_code not in (_core._run_here.__code__, _core._find.__code__):
        return False
    if "SYS_LOCK" not in linecache.getline(frame.f_code.co_filename, frame.f_lineno):
        return False
    if SYS_LOCK._is_owned():  # held by the asking thread: a run inside its module
        return True
    if SYS_LOCK.acquire(blocking=False):  # free: nobody keeps the thread waiting
        SYS_LOCK.release()
        return False
    return True


def _running_file(thread: threading.Thread, file: str) -> bool:
    """Whether the code of `file` is on `thread`'s stack."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_filename == file:
            return True
        frame = frame.f_back
    return False


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll `condition` until it holds; fail after PATIENCE seconds (a hang)."""
    deadline = time.monotonic() + PATIENCE
    tick = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        tick.wait(0.001)


THREAD_ECHO = """
import sys
seen_before = list(sys.argv)
mine_before = sys.modules[__name__].__dict__ is globals()
others_settled()
seen_after = list(sys.argv)
mine_after = sys.modules[__name__].__dict__ is globals()
"""


def _in_threads(
    count: int, work: Callable[[int], None], threads: list[threading.Thread] | None = None
) -> None:
    """Run work(0..count-1) in threads started together; re-raise the first failure.

    The threads are put in `threads` (when given) before any of them starts working.
    """
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def target(i: int) -> None:
        try:
            barrier.wait(PATIENCE)
            work(i)
        except BaseException as e:
            errors.append(e)

    started = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    if threads is not None:
        threads.extend(started)
    for t in started:
        t.start()
    for t in started:
        t.join(60)
    assert not any(t.is_alive() for t in started), "a thread hangs"
    if errors:
        raise errors[0]


def test_many_threads_never_see_each_others_argv_or_module(
    ip: InteractiveShell, make_package: MakePackage, invariants: NewInvariants
) -> None:
    """Each run, once it has looked at sys, waits until every other thread is held up at
    the run lock, is itself inside the module (which the lock should prevent), or is
    done; only then does it look again. So if runs could overlap, they would."""
    name = make_package({"__init__.py": "", "echo.py": THREAD_ECHO})
    mod = f"{name}.echo"
    file = str(make_package.root / name / "echo.py")  # type: ignore[attr-defined]
    process_args = sys.argv[1:]
    seen: dict[str, tuple[list[str], dict[str, Any]]] = {}  # tag: (expected argv, globals)
    threads: list[threading.Thread] = []

    def others_settled() -> None:
        me = threading.current_thread()
        _wait_until(
            lambda: all(
                not t.is_alive() or _at_the_run_lock(t) or _running_file(t, file)
                for t in threads
                if t is not me
            ),
            "the other threads wait for the run lock",
        )

    ip.user_ns["others_settled"] = others_settled
    given = {"others_settled": others_settled}

    def work(t: int) -> None:
        for r in range(20):
            tag = f"t{t}-r{r} 'x'"
            kind = (t + r) % 5
            if kind == 0:
                res = runmod_from_a_thread(ip, f'-o {mod} -- "{tag}"')
                seen[tag] = ([file, tag], res.globals)
            elif kind == 1:
                res = runmod_from_a_thread(ip, f'-o --main {mod} -- "{tag}" extra')
                seen[tag] = ([file, tag, "extra"], res.globals)
            elif kind == 2:
                res = ipy_runmod.run(mod, given, args=[tag])
                seen[tag] = ([file, tag], res.globals)
            elif kind == 3:
                res = ipy_runmod.run(mod, given, run_name="__main__", args=[tag, "extra"])
                seen[tag] = ([file, tag, "extra"], res.globals)
            else:  # as runpy: argv[0] replaced, the process's own arguments kept
                found = ipy_runmod.run_module(mod, {"tag": tag, **given}, alter_sys=True)
                seen[tag] = ([file, *process_args], found)
            assert kind == 4 or res.ok, res.exception  # run_module raises instead

    check = invariants()
    _in_threads(8, work, threads)
    check.check(run_names=(mod,))
    assert len(seen) == 160
    for tag, (expected, found) in seen.items():
        assert found["seen_before"] == expected == found["seen_after"], tag
        assert found["mine_before"] and found["mine_after"], tag


def test_run_module_in_a_thread_gets_the_process_argv(
    ip: InteractiveShell, make_package: MakePackage, invariants: NewInvariants
) -> None:
    """Was a bug: run_module read sys.argv[1:] before taking SYS_LOCK, so it could pass
    on the arguments of a run another thread had in progress."""
    name = make_package(
        {
            "__init__.py": "",
            "hold.py": f"inside.set()\nrelease.wait({PATIENCE})\n",
            "echo.py": "import sys\nseen = list(sys.argv)\n",
        }
    )
    check = invariants()
    inside, release = threading.Event(), threading.Event()
    got: dict[str, Any] = {}

    def holder() -> None:
        got["first"] = ipy_runmod.run(
            f"{name}.hold", {"inside": inside, "release": release}, args=["other"]
        )

    def drop_in() -> None:
        got["globals"] = ipy_runmod.run_module(f"{name}.echo", alter_sys=True)

    first = threading.Thread(target=holder)
    first.start()
    assert inside.wait(PATIENCE)
    second = threading.Thread(target=drop_in)
    second.start()
    try:
        # The first run is inside its module: the second either waits for it, or (were
        # it not kept out) runs to its end meanwhile.
        _wait_until(
            lambda: _at_the_run_lock(second) or not second.is_alive(),
            "the second run waits for the first",
        )
    finally:
        release.set()
        first.join(PATIENCE)
        second.join(PATIENCE)
    check.check(run_names=(f"{name}.echo", f"{name}.hold"))
    assert got["first"].ok
    assert got["globals"]["seen"][1:] == sys.argv[1:]  # as runpy: only argv[0] is replaced


def test_finding_a_module_never_sees_another_threads_run(
    ip: InteractiveShell, make_package: MakePackage, invariants: NewInvariants
) -> None:
    """Was a bug: finding ran outside SYS_LOCK and saw another thread's temporary module
    in sys.modules: a spurious RuntimeWarning, and a failure when that module had rebound
    `__spec__` (or had not set it yet)."""
    name = make_package(
        {
            "__init__.py": "",
            "hold.py": f"__spec__ = None\ninside.set()\nrelease.wait({PATIENCE})\n",
        }
    )
    mod = f"{name}.hold"
    check = invariants()
    inside, release = threading.Event(), threading.Event()
    got: dict[str, Any] = {}

    def holder() -> None:
        got["first"] = ipy_runmod.run(mod, {"inside": inside, "release": release})

    def second() -> None:
        try:
            got["second"] = ipy_runmod.run(
                mod, {"inside": threading.Event(), "release": release}, args=["second"]
            )
        except BaseException as e:
            got["second"] = e

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = threading.Thread(target=holder)
        first.start()
        assert inside.wait(PATIENCE)
        other = threading.Thread(target=second)
        other.start()
        try:
            # The first run is inside its module: the second waits for it, having found
            # the module already only if finding is not kept out of the run.
            _wait_until(
                lambda: _at_the_run_lock(other) or not other.is_alive(),
                "the second run waits for the first",
            )
        finally:
            release.set()
            first.join(PATIENCE)
            other.join(PATIENCE)
    check.check(run_names=(mod,))
    assert got["first"].ok
    assert isinstance(got["second"], RunResult) and got["second"].ok, got["second"]
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def test_run_from_a_thread(
    ip: InteractiveShell, pkg: str, invariants: NewInvariants, make_package: MakePackage
) -> None:
    fails = _module(make_package, "partial = 1\nraise ValueError('in thread')\n")
    check = invariants()
    got: dict[str, Any] = {}

    def work() -> None:
        got["magic"] = runmod(ip, f"-o --main {pkg}.echo -- from thread")
        got["api"] = ipy_runmod.run(f"{pkg}.echo", ip.user_ns, args=["api"])
        got["module"] = ipy_runmod.run_module(f"{pkg}.echo", alter_sys=True)
        try:
            runmod(ip, f"{fails} --main")
        except ValueError as e:
            got["error"] = e

    t = threading.Thread(target=work)
    t.start()
    t.join(30)
    assert not t.is_alive()
    assert got["magic"]["seen_argv"][1:] == ["from", "thread"] and got["magic"]["registered"]
    assert got["api"]["seen_argv"][1:] == ["api"] and got["api"]["registered"]
    assert got["module"]["registered"]
    assert got["error"] is ipy_runmod.last_result().exception
    check.check(run_names=(f"{pkg}.echo", fails))


LEVEL = """
import sys
level = {level}
argv_before = list(sys.argv)
mine_before = sys.modules[__name__].__dict__ is globals()
main_before = sys.modules["__main__"]
{call}
argv_after = list(sys.argv)
mine_after = sys.modules[__name__].__dict__ is globals()
main_after = sys.modules["__main__"]
"""

MAGIC_CALL = """
inner = get_ipython().run_line_magic("runmod", "-o {flags} {pkg}.level{next} -- arg{next}")
"""

API_CALL = """
import ipy_runmod
inner = ipy_runmod.run("{pkg}.level{next}", globals(), run_name={run_name}, args=["arg{next}"])
"""

CATCHING_CALL = """
try:
    get_ipython().run_line_magic("runmod", "{flags} {pkg}.level{next} -- arg{next}")
except ValueError as e:
    inner_error = e
"""


def _levels(make_package: MakePackage, calls: list[str], flags: str, deepest: str = "") -> str:
    """A package whose `level1` runs `level2` ... with these calls; returns its name."""
    name = f"rmnest{next(_nested)}"
    run_name = "'__main__'" if "--main" in flags else "None"
    files = {"__init__.py": ""}
    for level, call in enumerate([*calls, deepest], start=1):
        code = call.format(flags=flags, pkg=name, next=level + 1, run_name=run_name)
        files[f"level{level}.py"] = LEVEL.format(level=level, call=code)
    return make_package(files, name)


_nested = itertools.count()


@pytest.mark.parametrize("flags", ["", "--main", "--merge"])
@pytest.mark.parametrize("call", [MAGIC_CALL, API_CALL], ids=["magic", "api"])
def test_nested_runs_restore_each_level(
    ip: InteractiveShell,
    make_package: MakePackage,
    invariants: NewInvariants,
    call: str,
    flags: str,
) -> None:
    depth = 4
    name = _levels(make_package, [call] * (depth - 1), flags)
    check = invariants()
    outer = res = runmod(ip, f"-o {flags} {name}.level1 -- arg1")
    assert ipy_runmod.last_result() is outer  # the outermost run is the last to finish
    merged: set[str] = set()  # inner `%runmod --merge` runs merge into the notebook too
    for level in range(1, depth + 1):
        # Each level's own result: its module, its arguments, what it bound.
        assert (res.module, res.argv[1:]) == (f"{name}.level{level}", [f"arg{level}"])
        assert res["level"] == level
        assert res["argv_before"][1:] == [f"arg{level}"] == res["argv_after"][1:]
        assert res["mine_before"] and res["mine_after"], level
        assert res["main_before"] is res["main_after"]
        if "--main" in flags:
            assert res["main_before"].__dict__ is res.globals
        else:
            assert res["main_before"] is check.main
        merged.update(res.merged)
        if level < depth:
            res = res["inner"]
    check.check(
        merged=tuple(merged), run_names=tuple(f"{name}.level{i}" for i in range(1, depth + 1))
    )


@pytest.mark.parametrize("flags", ["", "--main"])
def test_nested_failure_restores_each_level(
    ip: InteractiveShell, make_package: MakePackage, invariants: NewInvariants, flags: str
) -> None:
    deepest = "raise ValueError('deepest')"
    name = _levels(make_package, [CATCHING_CALL, MAGIC_CALL], flags, deepest)
    check = invariants()
    res = runmod(ip, f"-o {flags} {name}.level1 -- arg1")
    assert str(res["inner_error"]) == "deepest"  # level 2 let level 3's error through
    assert res["argv_after"][1:] == ["arg1"] and res["mine_after"]
    assert res["main_before"] is res["main_after"]
    assert ipy_runmod.last_result() is res
    check.check(run_names=tuple(f"{name}.level{i}" for i in range(1, 4)))


def test_a_module_that_runs_itself_recursively(
    ip: InteractiveShell, make_package: MakePackage, invariants: NewInvariants
) -> None:
    mod = _module(
        make_package,
        """
import sys
depth = int(sys.argv[1])
argv_before = list(sys.argv)
if depth:
    inner = get_ipython().run_line_magic("runmod", f"-o {__spec__.name} -- {depth - 1}")
argv_after = list(sys.argv)
mine = sys.modules[__name__].__dict__ is globals()
""",
    )
    check = invariants()
    with warnings.catch_warnings():
        # runpy warns the same way when a module it runs runs itself again
        warnings.simplefilter("ignore", RuntimeWarning)
        res = runmod(ip, f"-o {mod} -- 5")
    for depth in range(5, -1, -1):
        assert res["argv_before"][1:] == [str(depth)] == res["argv_after"][1:]
        assert res["mine"]
        res = res["inner"] if depth else res
    check.check(run_names=(mod,))
