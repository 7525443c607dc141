"""What only a real kernel shows: reply status of failing cells, argv, completion,
interrupts, and the session going on. (`--subprocess` runs: test_kernel_subprocess.py.)"""

from __future__ import annotations

import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from real_kernel import Kernel, Reply, running_kernel

#: A run that is interrupted must be over well within this many seconds.
DEADLINE = 10.0
ECHO = """
import sys
seen_argv = list(sys.argv)
registered = sys.modules[__name__].__dict__ is globals()
"""

pytestmark = pytest.mark.kernel

PACKAGE = {
    "__init__.py": "",
    "cli.py": """
        import argparse
        parser = argparse.ArgumentParser()
        parser.add_argument("--alpha", type=float, default=1.0)
        parser.add_argument("--title", default="")
        args = parser.parse_args()
        print(f"alpha={args.alpha} title={args.title!r}")
    """,
    "fails.py": """
        partial = "kept"
        def compute():
            raise ValueError("no good")
        compute()
    """,
    "exits.py": """
        import sys
        sys.exit(code)
    """,
    "uses_ns.py": "doubled = [2 * v for v in data]\n",
    "moves.py": "import os\nos.chdir(os.path.dirname(__file__))\n",
    "aio.py": """
        import asyncio, sys

        async def main():
            await asyncio.sleep(0)
            if sys.argv[2:] == ["forever"]:
                print("started", flush=True)
                while True:
                    await asyncio.sleep(0.01)
            return "ran"

        how = sys.argv[1]
        if how == "run":
            result = asyncio.run(main())
        elif how == "runner":
            with asyncio.Runner() as runner:
                result = runner.run(main())
        elif how == "new_loop":
            loop = asyncio.new_event_loop()
            result = loop.run_until_complete(main())
            loop.close()
        else:
            import anyio
            result = anyio.run(main)
        print(result)
    """,
    "quits.py": """
        import sys
        print(repr(exit))
        if sys.argv[1:] == ["quit"]:
            quit()
        exit(*map(int, sys.argv[1:]))
    """,
}


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kernel]:
    root = tmp_path_factory.mktemp("kernel_site")
    for rel, text in PACKAGE.items():
        path = root / "kpkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    with running_kernel() as k:
        reply = k.execute(f"import sys; sys.path.insert(0, {str(root)!r})\n%load_ext ipy_runmod")
        assert reply.status == "ok", reply.traceback
        yield k


def test_argparse_sees_only_its_own_arguments(kernel: Kernel) -> None:
    assert "-f" in kernel.execute("import sys; print(sys.argv)").stdout  # the kernel's own argv
    reply = kernel.execute("%runmod kpkg.cli --main -- --alpha 0.5 --title 'a b'")
    assert reply.status == "ok", reply.traceback
    assert reply.stdout == "alpha=0.5 title='a b'\n"
    reply = kernel.execute("%runmod kpkg.cli --main")
    assert reply.status == "ok", reply.traceback
    assert reply.stdout == "alpha=1.0 title=''\n"


def test_namespace_in_and_merge_back(kernel: Kernel) -> None:
    reply = kernel.execute("data = [1, 2]\n%runmod kpkg.uses_ns --merge\nprint(doubled)")
    assert reply.status == "ok" and reply.stdout == "[2, 4]\n"


def test_usage_error_fails_the_cell(kernel: Kernel) -> None:
    reply = kernel.execute("%runmod kpkg.clii")
    assert reply.status == "error"
    assert reply.content["ename"] == "UsageError"
    assert "did you mean 'kpkg.cli'?" in reply.content["evalue"]


def test_module_exception_fails_the_cell(kernel: Kernel) -> None:
    reply = kernel.execute("%runmod kpkg.fails --merge\nprint('not reached')")
    assert reply.status == "error"
    assert (reply.content["ename"], reply.content["evalue"]) == ("ValueError", "no good")
    assert "not reached" not in reply.stdout
    tb = reply.traceback
    assert "fails.py" in tb and "compute()" in tb
    assert "runpy" not in tb and "ipy_runmod" not in tb and "run_line_magic" not in tb
    assert kernel.execute("print(partial)").stdout == "kept\n"


def test_nonzero_exit_fails_with_one_line_and_kernel_goes_on(kernel: Kernel) -> None:
    reply = kernel.execute("code = 3\n%runmod kpkg.exits")
    assert reply.status == "error"
    assert reply.content["ename"] == "ModuleExit"
    assert reply.traceback == "ModuleExit: kpkg.exits exited with status 3"
    after = kernel.execute("print('alive')")
    assert after.status == "ok" and after.stdout == "alive\n"


@pytest.mark.parametrize("flags", ["", "--isolated"])
def test_exit_in_a_module_is_sys_exit_and_never_ends_the_kernel(kernel: Kernel, flags: str) -> None:
    """README, Errors: exit() and quit() in a module behave as under python -m."""
    pid = kernel.execute("import os; print(os.getpid())").stdout
    for args, status, traceback in [
        ("", "ok", ""),
        ("quit", "ok", ""),
        ("3", "error", "ModuleExit: kpkg.quits exited with status 3"),
    ]:
        reply = kernel.execute(f"%runmod kpkg.quits {flags} -- {args}")
        assert (reply.status, reply.traceback) == (status, traceback), args
        assert reply.stdout == "Use exit() or Ctrl-D (i.e. EOF) to exit\n"
    after = kernel.execute("import os; print(os.getpid())")
    assert after.status == "ok" and after.stdout == pid  # the same kernel, still running


def test_a_module_that_closes_stdout_or_changes_the_cwd_leaves_the_kernel_as_it_was(
    kernel: Kernel, tmp_path: Path
) -> None:
    """README, Guarantees: json.tool closes its output; the kernel's stdout stays open."""
    data = tmp_path / "x.json"
    data.write_text('{"a": 1}')
    cwd = kernel.execute("import os; print(os.getcwd())").stdout
    reply = kernel.execute(f"%runmod json.tool --main --isolated -- {data}\nprint('same cell')")
    assert (reply.status, reply.stdout) == ("ok", '{\n    "a": 1\n}\nsame cell\n')
    reply = kernel.execute("%runmod kpkg.moves\nprint(os.getcwd())")
    assert (reply.status, reply.stdout) == ("ok", cwd)


LOOP_STATE = (
    "import asyncio; loop = asyncio.get_event_loop(); "
    "print(id(loop), loop.is_running(), id(asyncio.get_event_loop_policy()))"
)


@pytest.mark.parametrize("how", ["run", "runner", "new_loop", "anyio"])
def test_asyncio_entry_points_run_as_under_python_m(kernel: Kernel, how: str) -> None:
    """README, Usage: asyncio.run() and friends work, and the kernel's loop is untouched."""
    before = kernel.execute(LOOP_STATE)
    assert before.status == "ok" and " True " in before.stdout  # the kernel's, running
    reply = kernel.execute(f"%runmod kpkg.aio --main -- {how}")
    assert (reply.status, reply.stdout) == ("ok", "ran\n"), reply.traceback
    assert kernel.execute(LOOP_STATE).stdout == before.stdout
    reply = kernel.execute("await asyncio.sleep(0); print('top-level await')")
    assert (reply.status, reply.stdout) == ("ok", "top-level await\n"), reply.traceback


@pytest.mark.parametrize("how", ["run", "runner", "new_loop", "anyio"])
def test_ctrl_c_interrupts_asyncio_entry_points(kernel: Kernel, how: str) -> None:
    before = kernel.execute(LOOP_STATE).stdout
    line = f"%runmod kpkg.aio --main -- {how} forever"
    reply = _execute_and_interrupt(kernel, line, "started")
    assert reply.status == "error" and reply.content["ename"] == "KeyboardInterrupt"
    assert kernel.execute(LOOP_STATE).stdout == before
    reply = kernel.execute("await asyncio.sleep(0); print('top-level await')")
    assert (reply.status, reply.stdout) == ("ok", "top-level await\n"), reply.traceback


def test_zero_exit_is_success(kernel: Kernel) -> None:
    reply = kernel.execute("code = 0\n%runmod kpkg.exits\nprint('went on')")
    assert reply.status == "ok" and reply.stdout == "went on\n"


def test_result_displays_as_html(kernel: Kernel) -> None:
    reply = kernel.execute("data = [3]\n%runmod -o kpkg.uses_ns")
    assert reply.status == "ok"
    (result,) = [o for o in reply.outputs if "data" in o]
    assert "<table" in result["data"]["text/html"] and "doubled" in result["data"]["text/html"]
    assert result["data"]["text/plain"].startswith("<RunResult kpkg.uses_ns as kpkg.uses_ns: ok")


def test_kernel_argv_untouched(kernel: Kernel) -> None:
    before = kernel.execute("print(sys.argv)").stdout
    assert kernel.execute("%runmod kpkg.cli --main -- --alpha 2").status == "ok"
    assert kernel.execute("%runmod kpkg.fails").content["ename"] == "ValueError"
    assert kernel.execute("print(sys.argv)").stdout == before


def test_each_cell_gets_its_own_reply_even_with_other_replies_queued(kernel: Kernel) -> None:
    """A reply to another request (as `wait_for_ready` leaves after a slow start, having
    asked kernel_info more than once) is never taken for a cell's reply."""
    kernel.client.kernel_info()
    reply = kernel.execute("raise ValueError('this cell')")
    assert reply.status == "error"
    assert (reply.content["ename"], reply.content["evalue"]) == ("ValueError", "this cell")
    kernel.client.kernel_info()
    assert kernel.complete("%runmod kpkg.cl") == ["kpkg.cli"]
    after = kernel.execute("print('next')")
    assert after.status == "ok" and after.stdout == "next\n"
    assert after.content["execution_count"] > reply.content["execution_count"]


def test_completion_in_a_kernel(kernel: Kernel) -> None:
    top_level = kernel.complete("%runmod jso")
    assert "json" in top_level and all(name.startswith("jso") for name in top_level)
    assert kernel.complete("%runmod json.t") == ["json.tool"]
    assert kernel.complete("%runmod --isol") == ["--isolated"]
    assert kernel.complete("x = 1\n%runmod json.de") == ["json.decoder"]
    assert kernel.execute("import sys; print('json.tool' in sys.modules)").stdout == "False\n"


def test_parameters_and_which_in_a_kernel(kernel: Kernel) -> None:
    reply = kernel.execute("%%runmod json.tool --which\nignored = 1")
    assert reply.status == "ok" and "runs:      json.tool" in reply.stdout


KERNEL_PACKAGE = {
    "__init__.py": "",
    "loop.py": f"""
        import sys, time
        partial = list(sys.argv)
        data = "rebound by the module"
        print("started", flush=True)
        deadline = time.monotonic() + {DEADLINE}
        while time.monotonic() < deadline:
            time.sleep(0.001)
        finished = True
    """,
    "echo.py": ECHO,
}


def _execute_and_interrupt(kernel: Kernel, code: str, when_printed: str) -> Reply:
    """Execute `code`; interrupt the kernel once it has printed `when_printed`."""
    interrupted_at: list[float] = []

    def interrupt_once(stdout: str) -> None:
        if not interrupted_at and when_printed in stdout:
            interrupted_at.append(time.monotonic())
            kernel.manager.interrupt_kernel()

    reply = kernel.execute(code, timeout=30, on_stdout=interrupt_once)
    assert interrupted_at and time.monotonic() - interrupted_at[0] < DEADLINE / 2
    return reply


def test_interrupt_kernel_during_a_long_run(tmp_path: Path) -> None:
    root = tmp_path / "site"
    for rel, text in KERNEL_PACKAGE.items():
        path = root / "kintpkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    with running_kernel() as kernel:
        setup = f"""
import sys
sys.path.insert(0, {str(root)!r})
%load_ext ipy_runmod
import ipy_runmod
data = [1, 2]
_before = (sys.argv, list(sys.argv), sys.modules["__main__"], set(sys.modules), data)
"""
        reply = kernel.execute(setup)
        assert reply.status == "ok", reply.traceback
        reply = _execute_and_interrupt(
            kernel, "%runmod kintpkg.loop --main --merge -- a b\nprint('not reached')", "started"
        )
        assert reply.status == "error", reply.content
        assert reply.content["ename"] == "KeyboardInterrupt"
        assert "not reached" not in reply.stdout
        check = """
argv, items, main, modules, data_before = _before
res = ipy_runmod.last_result()
print(sys.argv is argv and sys.argv == items)
print(sys.modules["__main__"] is main)
print(sorted({"kintpkg.loop", "__main__"} & (set(sys.modules) - modules)))
print(data is data_before or "data" in res.merged, "finished" in dir())
print(("partial" in dir()) == ("partial" in res.merged))  # merged exactly as reported
print(type(res.exception).__name__, res["partial"][1:])
"""
        reply = kernel.execute(check)
        assert reply.status == "ok", reply.traceback
        assert reply.stdout.splitlines() == [
            "True",
            "True",
            "[]",
            "True False",
            "True",
            "KeyboardInterrupt ['a', 'b']",
        ]
        reply = kernel.execute("res = %runmod kintpkg.echo -o --main -- next\nprint(res.argv[1:])")
        assert reply.status == "ok", reply.traceback
        assert reply.stdout == "['next']\n"
        reply = kernel.execute("print(sys.argv is _before[0], 1 + 1)")
        assert reply.stdout == "True 2\n"
