"""`%runmod --subprocess` in a real kernel: what the notebook sees, and the kernel going on."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from real_kernel import Kernel, running_kernel
from test_shell_subprocess import MODULES, gone, pids_in

pytestmark = pytest.mark.kernel

SNAPSHOT = """
import os, signal, sys
_snapshot = lambda: (
    set(sys.modules), list(sys.path), os.getcwd(), dict(os.environ), list(sys.argv),
    [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGUSR1, signal.SIGTERM)],
)
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("subprocess_site")
    for rel, text in MODULES.items():
        path = root / "kspkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


@pytest.fixture(scope="module")
def kernel(site: Path) -> Iterator[Kernel]:
    with running_kernel() as k:
        reply = k.execute(f"import sys; sys.path.insert(0, {str(site)!r})\n%load_ext ipy_runmod")
        assert reply.status == "ok", reply.traceback
        reply = k.execute(SNAPSHOT)
        assert reply.status == "ok", reply.traceback
        yield k


def _alive(kernel: Kernel) -> None:
    after = kernel.execute("print('alive', 1 + 1)")
    assert after.status == "ok" and after.stdout == "alive 2\n"


def test_another_process_and_the_kernel_untouched(kernel: Kernel) -> None:
    code = """
%runmod --subprocess kspkg.helper
before = _snapshot()  # with what the first run imports for its own use (subprocess, ...)
res = %runmod --subprocess --keep-state kspkg.changes -o
after = _snapshot()
print(res.ok, res["changed"], after == before, "kspkg.helper" in sys.modules)
print([a == b for a, b in zip(after, before)], set(after[0]) - set(before[0]))
res = %runmod --subprocess kspkg.pid -o --merge
print(pid != os.getpid(), res.merged)
"""
    reply = kernel.execute(code)
    assert reply.status == "ok", reply.traceback
    assert reply.stdout == (
        "True True True False\n[True, True, True, True, True, True] set()\nTrue ('pid',)\n"
    )


def test_variables_in_merge_back_and_dropped(kernel: Kernel) -> None:
    code = """
import threading
data, factor, lock = [1, 2], 3, threading.Lock()
%runmod --subprocess kspkg.uses --merge
print(total, data)
res = %runmod --subprocess kspkg.binds -o --merge --exclude data
print(sorted(res.merged), sorted(res.dropped), value, data)
"""
    reply = kernel.execute(code)
    assert reply.status == "ok", reply.traceback
    assert reply.stdout == (
        "9 [1, 2]\n['value'] ['Local', 'instance', 'lock', 'threading'] [1, 2] [1, 2]\n"
    )
    reply = kernel.execute("%runmod --subprocess kspkg.uses_lock")
    assert (reply.content["ename"], reply.content["evalue"]) == (
        "NameError",
        "name 'lock' is not defined",
    )
    # What the notebook shows says why (README, "In a process of its own").
    assert reply.traceback.endswith(
        "NameError: name 'lock' is not defined\n'lock' was left out of this run in a process "
        "of its own (not picklable: TypeError: cannot pickle '_thread.lock' object)"
    )


def test_output_arrives_while_the_module_runs(kernel: Kernel, tmp_path: Path) -> None:
    fifo = tmp_path / "go"
    os.mkfifo(fifo)

    def answer(stdout: str) -> None:
        # The module ends only once it is answered: it is, when its output has arrived.
        if stdout == "started\n":
            with open(fifo, "w") as f:
                f.write("go")

    # Python's streams are unbuffered only if asked: the child makes its own so, not this.
    code = f"""
_unbuffered = os.environ.pop("PYTHONUNBUFFERED", None)
try:
    %runmod --subprocess --timeout 20 kspkg.live -- {fifo}
finally:
    if _unbuffered is not None:
        os.environ["PYTHONUNBUFFERED"] = _unbuffered
"""
    reply = kernel.execute(code, on_stdout=answer)
    assert reply.status == "ok", reply.traceback
    assert reply.stdout == "started\ngot go\n"


def test_every_write_arrives_in_order(kernel: Kernel) -> None:
    for _ in range(3):  # a new process, then ones started ahead
        reply = kernel.execute("%runmod --subprocess kspkg.chatty")
        assert reply.status == "ok", reply.traceback
        assert reply.stdout == "".join(f"line {i}\n" for i in range(300))
        assert reply.stderr == "".join(f"err {i}\n" for i in range(300))


def test_module_exception_fails_the_cell_with_its_traceback(kernel: Kernel) -> None:
    reply = kernel.execute("%runmod --subprocess kspkg.fails\nprint('not reached')")
    assert reply.status == "error"
    assert (reply.content["ename"], reply.content["evalue"]) == ("ValueError", "bad value")
    assert "fails.py" in reply.traceback and "inner()" in reply.traceback
    assert "ipy_runmod" not in reply.traceback and "not reached" not in reply.stdout
    _alive(kernel)


@pytest.mark.parametrize(
    ("line", "ename", "message"),
    [
        ("kspkg.exits", "ModuleExit", "kspkg.exits exited with status 2"),
        (
            "kspkg.dies -- exit",
            "ProcessEnded",
            "kspkg.dies: its process exited with status 7 before the run finished",
        ),
        (
            "kspkg.dies -- kill",
            "ProcessEnded",
            "kspkg.dies: its process was killed by SIGKILL (Killed)",
        ),
        (
            "kspkg.dies -- segv",
            "ProcessEnded",
            "kspkg.dies: its process was killed by SIGSEGV (Segmentation fault)",
        ),
    ],
)
def test_exit_and_death_fail_the_cell_with_one_line(
    kernel: Kernel, line: str, ename: str, message: str
) -> None:
    reply = kernel.execute(f"%runmod --subprocess {line}")
    assert reply.status == "error"
    assert reply.content["ename"] == ename
    assert reply.traceback == f"{ename}: {message}"
    _alive(kernel)


def test_timeout_ends_the_run_and_leaves_no_process(kernel: Kernel) -> None:
    reply = kernel.execute("%runmod --subprocess --timeout 1 kspkg.sleeps")
    assert reply.status == "error" and reply.content["ename"] == "ProcessEnded"
    assert reply.traceback == (
        "ProcessEnded: kspkg.sleeps did not finish within 1.00 s (--timeout); "
        "its process was killed"
    )
    pids = pids_in(reply.stdout)
    assert len(pids) == 2 and all(map(gone, pids))
    _alive(kernel)


@pytest.mark.parametrize("args", ["", "ignore-sigint"])
def test_ctrl_c_ends_the_child_and_leaves_no_process(kernel: Kernel, args: str) -> None:
    interrupted: list[bool] = []

    def interrupt_once(stdout: str) -> None:
        if not interrupted and "pids " in stdout:
            interrupted.append(True)
            kernel.manager.interrupt_kernel()

    reply = kernel.execute(
        f"%runmod --subprocess kspkg.sleeps -- {args}\nprint('not reached')",
        timeout=30,
        on_stdout=interrupt_once,
    )
    assert interrupted and reply.status == "error"
    assert reply.content["ename"] == "KeyboardInterrupt"
    assert "not reached" not in reply.stdout
    assert all(map(gone, pids_in(reply.stdout)))
    _alive(kernel)


def test_asyncio_run_and_exit_3_as_under_python_m(kernel: Kernel, site: Path) -> None:
    python_m = subprocess.run(
        [sys.executable, "-m", "kspkg.aio", "a b"], cwd=site, capture_output=True, text=True
    )
    reply = kernel.execute("%runmod --subprocess kspkg.aio -- 'a b'")
    assert reply.stdout == python_m.stdout == "ran ['a b']\n"
    assert reply.stderr == python_m.stderr == "to stderr\n"
    assert python_m.returncode == 3
    assert reply.traceback == "ModuleExit: kspkg.aio exited with status 3"
    _alive(kernel)
