"""`%runmod --subprocess` in a real IPython shell: a fresh process, variables in, results out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import ipy_runmod
from ipy_runmod import ModuleExit, ProcessEnded

pytestmark = pytest.mark.shell

MODULES = {
    "__init__.py": "",
    "helper.py": "factor = 10\n",
    "pid.py": "import os\npid = os.getpid()\n",
    "interpreter.py": """
        import os, sys
        seen = (sys.executable, "IPython" in sys.modules, os.getcwd(), list(sys.path))
    """,
    "changes.py": """
        import os, signal, sys
        from . import helper
        sys.path.append("/nowhere")
        os.chdir(os.path.dirname(__file__))
        os.environ["RUNMOD_CHILD_WAS_HERE"] = "1"
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        sys.argv.append("extra")
        changed = True
    """,
    "env.py": "import os\nseen = (os.environ.get('RUNMOD_SEEN'), os.getcwd())\n",
    "uses.py": """
        total = sum(data) * factor
        data.append("in the child's copy only")
    """,
    "uses_lock.py": "print(type(lock))\n",
    "binds.py": """
        import threading
        lock = threading.Lock()
        value = [1, 2]
        class Local:
            pass
        instance = Local()
        data = "rebound"
    """,
    "fails.py": """
        before = 1
        def inner():
            raise ValueError("bad value")
        inner()
        after = 2
    """,
    "exits.py": "import sys\nbound_before_exit = True\nsys.exit(2)\n",
    "defines.py": """
        import os
        with open(os.environ["RUNMOD_RAN_LOG"], "a") as log:
            print(os.getpid(), file=log)
        def tool():
            return "tool"
    """,
    "uses_tool.py": "print(tool())\n",
    "own_error.py": """
        class StepError(Exception):
            pass
        def step():
            raise StepError("step 3 failed")
        step()
    """,
    "dies.py": """
        import ctypes, os, signal, sys
        how = sys.argv[1]
        if how == "exit":
            os._exit(7)
        elif how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        else:
            ctypes.string_at(0)
    """,
    "sleeps.py": """
        import os, signal, subprocess, sys, time
        if sys.argv[1:] == ["ignore-sigint"]:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print("pids", os.getpid(), child.pid, flush=True)
        time.sleep(600)
    """,
    "live.py": """
        import sys
        print("started")  # not flushed: under python -m into a pipe it would wait in a buffer
        with open(sys.argv[1]) as fifo:
            got = fifo.read()
        print("got", got)
    """,
    "chatty.py": """
        import sys
        for i in range(300):
            print("line", i, flush=True)
            print("err", i, file=sys.stderr)
    """,
    "aio.py": """
        import asyncio, sys

        async def main():
            await asyncio.sleep(0)
            return "ran"

        print(asyncio.run(main()), sys.argv[1:])
        print("to stderr", file=sys.stderr)
        exit(3)
    """,
}


def runmod(ip: InteractiveShell, line: str) -> Any:
    return ip.run_line_magic("runmod", line)


@pytest.fixture
def pkg(make_package: Any) -> str:
    return make_package(MODULES)


def gone(pid: int) -> bool:
    """The process no longer runs: no such process, or a zombie its parent has not reaped."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rpartition(")")[2].split()[0] == "Z"


class _Watching:
    """A session stdout that calls `on_text(all text so far)` at each write, while it runs."""

    def __init__(self, on_text: Any) -> None:
        self.text = ""
        self.on_text = on_text

    def write(self, text: str) -> int:
        self.text += text
        self.on_text(self.text)
        return len(text)

    def flush(self) -> None:
        pass


def test_runs_in_another_process(ip: InteractiveShell, pkg: str) -> None:
    res = runmod(ip, f"--subprocess {pkg}.pid -o --merge")
    assert isinstance(res["pid"], int) and res["pid"] != os.getpid()
    assert ip.user_ns["pid"] == res["pid"] and res.merged == ("pid",)
    assert gone(res["pid"])


def test_this_interpreter_sys_path_and_directory_and_no_ipython(
    ip: InteractiveShell, pkg: str
) -> None:
    executable, ipython, cwd, path = runmod(ip, f"--subprocess {pkg}.interpreter -o")["seen"]
    assert os.path.samefile(executable, sys.executable)
    assert (ipython, cwd) == (False, os.getcwd())
    # As in-process, the working directory is first while the module runs.
    assert [p for p in path if p != cwd] == [p for p in sys.path if p != cwd]


def test_each_run_a_fresh_process_started_as_the_session_is_now(
    ip: InteractiveShell,
    pkg: str,
    make_package: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = runmod(ip, f"--subprocess {pkg}.pid -o")["pid"]
    assert runmod(ip, f"--subprocess {pkg}.pid -o")["pid"] not in (first, os.getpid())
    # The next run's process may be started ahead: changes since are still what it sees.
    monkeypatch.setenv("RUNMOD_SEEN", "set after the last run")
    monkeypatch.chdir(tmp_path)
    seen = runmod(ip, f"--subprocess {pkg}.env -o")["seen"]
    assert seen == ("set after the last run", str(tmp_path))
    later = tmp_path / "later"
    later.mkdir()
    (later / "rm_later_module.py").write_text("here = True\n")
    monkeypatch.syspath_prepend(str(later))
    assert runmod(ip, "--subprocess rm_later_module -o")["here"] is True


def test_the_process_kept_for_the_next_run_ends_with_the_extension(
    ip: InteractiveShell, pkg: str
) -> None:
    from ipy_runmod import _subprocess

    runmod(ip, f"--subprocess {pkg}.pid")
    spare = _subprocess._spare
    assert spare is not None and not gone(spare.process.pid)
    spare.process.kill()  # killed from outside: the next run starts another
    spare.process.wait()
    assert runmod(ip, f"--subprocess {pkg}.pid -o")["pid"] != spare.process.pid
    spare = _subprocess._spare
    assert spare is not None
    ip.run_line_magic("unload_ext", "ipy_runmod")
    try:
        assert _subprocess._spare is None and gone(spare.process.pid)
    finally:
        ip.run_line_magic("load_ext", "ipy_runmod")


def test_the_session_is_untouched_by_what_the_module_changes(
    ip: InteractiveShell, pkg: str
) -> None:
    def session() -> tuple[object, ...]:
        return (
            set(sys.modules),
            list(sys.path),
            os.getcwd(),
            dict(os.environ),
            signal.getsignal(signal.SIGUSR1),
            list(sys.argv),
        )

    runmod(ip, f"--subprocess {pkg}.helper")  # what the first run imports here, imported
    before = session()
    # --keep-state would keep them in-process: a process of its own keeps nothing.
    res = runmod(ip, f"--subprocess --keep-state {pkg}.changes -o")
    assert res.ok and res["changed"] is True
    assert session() == before
    assert f"{pkg}.helper" not in sys.modules and pkg not in sys.modules


def test_variables_in_and_results_merged_back(ip: InteractiveShell, pkg: str) -> None:
    ip.user_ns.update(data=[1, 2], factor=3)
    res = runmod(ip, f"--subprocess {pkg}.uses --merge -o")
    assert res["total"] == 9 and ip.user_ns["total"] == 9
    # The module had a copy: what it did to it in place stays there.
    assert ip.user_ns["data"] == [1, 2] and res.merged == ("total",)


def test_only_exclude_and_dropped(ip: InteractiveShell, pkg: str) -> None:
    res = runmod(ip, f"--subprocess {pkg}.binds -o --only 'value,lock,instance,data'")
    assert ip.user_ns["value"] == [1, 2] and ip.user_ns["data"] == "rebound"
    assert "lock" not in ip.user_ns and "instance" not in ip.user_ns
    assert "not picklable" in res.dropped["lock"]
    assert "defined by the run" in res.dropped["Local"]
    assert set(res.merged) == {"value", "data"}
    res = runmod(ip, f"--subprocess {pkg}.binds -o --merge --exclude 'da*'")
    assert "data" not in res.merged and "value" in res.merged


UNPRINTABLE = """\
class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError('no')
class Refuses:
    def __reduce__(self):
        raise Unprintable()
lock = Refuses()
"""


@pytest.mark.parametrize(
    ("notebook", "why"),
    [
        (
            "import threading\nlock = threading.Lock()",
            "(not picklable: TypeError: cannot pickle '_thread.lock' object)\n",
        ),
        (
            "class Local:\n    pass\nlock = Local()",
            "(pickled, but cannot be unpickled in the run's process: AttributeError: "
            "Can't get attribute 'Local'",
        ),
        (UNPRINTABLE, "(not picklable: Unprintable: <unprintable Unprintable>)\n"),
    ],
    ids=["does-not-pickle", "does-not-unpickle-there", "its-pickling-error-cannot-print"],
)
def test_a_variable_left_out_says_why(
    ip: InteractiveShell, pkg: str, capsys: Any, notebook: str, why: str
) -> None:
    assert ip.run_cell(notebook).success
    result = ip.run_cell(f"%runmod --subprocess {pkg}.uses_lock")
    assert isinstance(result.error_in_exec, NameError)
    shown = capsys.readouterr().out
    assert "NameError: name 'lock' is not defined\n" in shown
    # ... and says why, under the error (README, "In a process of its own").
    assert f"'lock' was left out of this run in a process of its own {why}" in shown


def test_a_name_error_of_the_modules_own_says_nothing_more(
    ip: InteractiveShell, pkg: str, capsys: Any
) -> None:
    ip.user_ns.pop("lock", None)
    result = ip.run_cell(f"%runmod --subprocess {pkg}.uses_lock")
    assert isinstance(result.error_in_exec, NameError)
    assert "left out" not in capsys.readouterr().out


def test_only_the_names_the_module_uses_are_pickled(ip: InteractiveShell, pkg: str) -> None:
    pickled: list[str] = []

    class Watched:
        def __init__(self, name: str) -> None:
            self.name = name

        def __reduce__(self) -> Any:
            pickled.append(self.name)
            return (int, (5,))

    ip.user_ns.update({f"unused{i}": Watched(f"unused{i}") for i in range(1000)})
    ip.user_ns.update(data=[1], factor=Watched("factor"))
    res = runmod(ip, f"--subprocess {pkg}.uses -o")
    assert res["total"] == 5
    assert pickled == ["factor"]


def test_cell_parameters_go_in_the_same_way(ip: InteractiveShell, pkg: str) -> None:
    ip.user_ns.update(data=[1, 2], factor=3)
    result = ip.run_cell(f"%%runmod --subprocess {pkg}.uses --merge\nfactor = 100")
    assert result.success, result.error_in_exec
    assert ip.user_ns["total"] == 300 and ip.user_ns["factor"] == 3
    # A parameter that does not pickle is left out, as a variable is.
    result = ip.run_cell(
        f"%%runmod --subprocess {pkg}.uses_lock\nimport threading\nlock = threading.Lock()"
    )
    assert isinstance(result.error_in_exec, NameError)


def test_streams_reach_the_session_while_the_module_runs(
    ip: InteractiveShell, pkg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fifo = tmp_path / "go"
    os.mkfifo(fifo)

    def answer(text: str) -> None:
        # The module waits for this before it ends: only live output lets it finish.
        if text == "started\n":
            with open(fifo, "w") as f:
                f.write("go")

    stdout = _Watching(answer)
    monkeypatch.setattr(sys, "stdout", stdout)
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)  # the child makes its own unbuffered
    res = runmod(ip, f"--subprocess --timeout 20 {pkg}.live -o -- {fifo}")
    assert res.ok, res.exception
    assert stdout.text == "started\ngot go\n"


def test_every_write_reaches_the_session_in_order(
    ip: InteractiveShell, pkg: str, capsys: Any
) -> None:
    for _ in range(3):  # a new process, then ones started ahead
        assert runmod(ip, f"--subprocess {pkg}.chatty -o").ok
        out = capsys.readouterr()
        assert out.out == "".join(f"line {i}\n" for i in range(300))
        assert out.err == "".join(f"err {i}\n" for i in range(300))


def test_module_exception_fails_with_its_traceback(
    ip: InteractiveShell, pkg: str, capsys: Any
) -> None:
    result = ip.run_cell(f"%runmod --subprocess {pkg}.fails --merge")
    assert isinstance(result.error_in_exec, ValueError)
    out = capsys.readouterr().out
    assert "fails.py" in out and "inner()" in out and "ValueError: bad value" in out
    assert "_child.py" not in out and "_core.py" not in out
    assert ip.user_ns["before"] == 1  # bound before the failure, merged as in-process


def test_an_exception_of_a_class_the_module_defined_comes_as_text(
    ip: InteractiveShell, pkg: str, capsys: Any
) -> None:
    result = ip.run_cell(f"%runmod --subprocess {pkg}.own_error")
    error = result.error_in_exec
    assert isinstance(error, ipy_runmod.UnpicklableError)
    assert (error.type_name, error.message) == (f"{pkg}.own_error.StepError", "step 3 failed")
    out = capsys.readouterr().out
    assert "own_error.py" in out and "step()" in out
    assert out.strip().splitlines()[-1] == f"{pkg}.own_error.StepError: step 3 failed"


@pytest.mark.parametrize(
    ("how", "exception", "message"),
    [
        ("exit", ProcessEnded, "its process exited with status 7 before the run finished"),
        ("kill", ProcessEnded, "its process was killed by SIGKILL (Killed)"),
        ("segv", ProcessEnded, "its process was killed by SIGSEGV (Segmentation fault)"),
    ],
)
def test_a_process_that_dies_fails_with_one_line(
    ip: InteractiveShell, pkg: str, how: str, exception: type, message: str, capsys: Any
) -> None:
    result = ip.run_cell(f"%runmod --subprocess {pkg}.dies -- {how}")
    assert isinstance(result.error_in_exec, exception)
    out = capsys.readouterr()
    assert (out.out + out.err).strip().splitlines()[-1] == (f"ProcessEnded: {pkg}.dies: {message}")
    assert ip.run_cell("1 + 1").success


def test_nonzero_exit_is_module_exit(ip: InteractiveShell, pkg: str, capsys: Any) -> None:
    result = ip.run_cell(f"%runmod --subprocess {pkg}.exits --merge")
    assert isinstance(result.error_in_exec, ModuleExit)
    assert capsys.readouterr().out.strip() == f"ModuleExit: {pkg}.exits exited with status 2"
    assert ip.user_ns["bound_before_exit"] is True


def pids_in(text: str) -> list[int]:
    line = next(line for line in text.splitlines() if line.startswith("pids "))
    return [int(word) for word in line.split()[1:]]


def test_timeout_ends_the_run_and_leaves_no_process(
    ip: InteractiveShell, pkg: str, capsys: Any
) -> None:
    result = ip.run_cell(f"%runmod --subprocess --timeout 1 {pkg}.sleeps")
    assert isinstance(result.error_in_exec, ProcessEnded)
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == (
        f"ProcessEnded: {pkg}.sleeps did not finish within 1.00 s (--timeout); "
        "its process was killed"
    )
    pids = pids_in(out)
    assert len(pids) == 2 and all(map(gone, pids))


@pytest.mark.parametrize("args", ["", "ignore-sigint"])
def test_ctrl_c_interrupts_the_module_and_leaves_no_process(
    ip: InteractiveShell, pkg: str, args: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(text: str) -> None:
        if text.startswith("pids ") and text.endswith("\n") and text.count("\n") == 1:
            signal.raise_signal(signal.SIGINT)  # the notebook's interrupt, in this thread

    stdout = _Watching(interrupt)
    monkeypatch.setattr(sys, "stdout", stdout)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            runmod(ip, f"--subprocess {pkg}.sleeps -- {args}")
    finally:
        signal.signal(signal.SIGINT, previous)
    assert all(map(gone, pids_in(stdout.text)))
    last = ipy_runmod.last_result()
    assert last is not None and isinstance(last.exception, KeyboardInterrupt)


def test_asyncio_run_and_exit_like_python_m(
    ip: InteractiveShell, pkg: str, capsys: Any, make_package: Any
) -> None:
    root = make_package.root
    python_m = subprocess.run(
        [sys.executable, "-m", f"{pkg}.aio", "a b"], cwd=root, capture_output=True, text=True
    )
    result = ip.run_cell(f"%runmod --subprocess {pkg}.aio -- 'a b'")
    out = capsys.readouterr()
    assert isinstance(result.error_in_exec, ModuleExit)
    assert result.error_in_exec.code == python_m.returncode == 3
    assert out.out.startswith(python_m.stdout)
    assert python_m.stdout == "ran ['a b']\n"
    assert out.err == python_m.stderr == "to stderr\n"


def test_which_finds_the_module_in_the_fresh_process(
    ip: InteractiveShell, pkg: str, capsys: Any
) -> None:
    plan = runmod(ip, f"--subprocess {pkg}.helper --which -o --main -- a")
    assert plan.target == f"{pkg}.helper" and plan.run_name == "__main__"
    assert plan.argv is not None and plan.argv[1:] == ["a"]
    assert capsys.readouterr().out == ""  # returned with -o, shown by the shell, not printed
    runmod(ip, f"--subprocess {pkg}.helper --which")
    assert f"runs:      {pkg}.helper" in capsys.readouterr().out
    assert pkg not in sys.modules  # its parent package was imported there, not here


def test_usage_errors(ip: InteractiveShell, pkg: str) -> None:
    with pytest.raises(UsageError, match="--timeout applies to --subprocess runs only"):
        runmod(ip, f"{pkg}.pid --timeout 3")
    for bad in ("0", "-1", "inf", "nan"):
        with pytest.raises(UsageError, match="positive number of seconds"):
            runmod(ip, f"{pkg}.pid --subprocess --timeout {bad}")
    with pytest.raises(UsageError, match="invalid float value: 'soon'"):
        runmod(ip, f"{pkg}.pid --subprocess --timeout soon")
    assert runmod(ip, f"{pkg}.pid --subprocess --timeout 1e300 -o").ok
    with pytest.raises(UsageError, match=f"No module named '{pkg}.pidd'; did you mean '{pkg}.pid'"):
        runmod(ip, f"--subprocess {pkg}.pidd")


def test_sending_variables_never_runs_a_module_in_the_session(
    ip: InteractiveShell, pkg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A function of a module that is not imported (a --no-alter-sys run defined it) does
    not pickle without importing, and so running, that module here: it is left out."""
    log = tmp_path / "ran.log"
    monkeypatch.setenv("RUNMOD_RAN_LOG", str(log))
    runmod(ip, f"{pkg}.defines --no-alter-sys --merge")
    assert f"{pkg}.defines" not in sys.modules and ip.user_ns["tool"]() == "tool"
    with pytest.raises(NameError, match="name 'tool' is not defined"):
        runmod(ip, f"--subprocess {pkg}.uses_tool")
    assert f"{pkg}.defines" not in sys.modules  # pickling imported nothing here
    assert log.read_text().split() == [str(os.getpid())]  # the one run, in the session
