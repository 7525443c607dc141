"""What only a real kernel shows: reply status of failing cells, argv, completion,
interrupts, and the session going on. (`--subprocess` runs: test_kernel_subprocess.py.)"""

from __future__ import annotations

import os
import re
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
    "guarded.py": """
        import sys
        if __name__ == "__main__":
            print("main block:", sys.argv[1:])
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
    "bad.py": "x = 1\ndef f(:\n    pass\n",
    "group.py": """
        def fail():
            raise ExceptionGroup("several", [ValueError(1), TypeError(2)])
        fail()
    """,
    "dmod.py": """
        from . import helper
        a = 1
        b = helper.twice(a)
        print("b is", b)
    """,
    "helper.py": """
        def twice(v):
            w = v * 2
            return w
    """,
    "slow.py": """
        def slow_part(n):
            return sum(i * i for i in range(n))
        total = slow_part(20_000)
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


def test_words_hints_and_suggestions_as_in_a_shell(kernel: Kernel) -> None:
    """Single quotes are literal; a usage error's line and the --main hint can be pasted."""
    reply = kernel.execute("t = 'T'\n%runmod kpkg.cli --main -- --title '{t}$t'")
    assert reply.stdout == "alpha=1.0 title='{t}$t'\n"
    reply = kernel.execute("%runmod kpkg.cli --main -t --alpha 2")
    assert reply.status == "error" and reply.content["ename"] == "UsageError"
    assert reply.content["evalue"].endswith("as in: %runmod kpkg.cli --main -t -- --alpha 2")
    reply = kernel.execute("%runmod kpkg.guarded -- --alpha 2")
    assert reply.status == "ok"
    assert reply.stdout == (
        "kpkg.guarded ran as 'kpkg.guarded', so its `if __name__ == \"__main__\":` block, "
        "which reads the arguments, did not run; as python -m runs it: "
        "%runmod kpkg.guarded --main -- --alpha 2\n"
    )
    pasted = reply.stdout.partition("as python -m runs it: ")[2]
    assert kernel.execute(pasted).stdout == "main block: ['--alpha', '2']\n"


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


@pytest.mark.parametrize(
    ("module", "ename", "shown"),
    [
        ("bad", "SyntaxError", "def f(:"),
        ("group", "ExceptionGroup", "fail()"),
    ],
)
def test_syntax_errors_and_groups_fail_the_cell_shown_from_the_module(
    kernel: Kernel, module: str, ename: str, shown: str
) -> None:
    reply = kernel.execute(f"%runmod kpkg.{module}\nprint('not reached')")
    assert reply.status == "error" and reply.content["ename"] == ename
    tb = reply.traceback
    assert f"{module}.py" in tb and shown in tb, tb
    for runner in ("run_code", "run_line_magic", "ipy_runmod", "runpy", "Cell In"):
        assert runner not in tb, f"{runner} in:\n{tb}"
    plain = kernel.execute("import pickle\nprint(len(pickle.dumps(sys.last_value)) > 0)")
    assert plain.stdout == "True\n"  # the module's exception, as it raised it


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
    # a terminal's Jupyter client shows the text: the same table, never "m as m"
    text = result["data"]["text/plain"].splitlines()
    assert re.fullmatch(r"RunResult kpkg\.uses_ns: ok, 1 name bound, \S+ \S+", text[0]), text
    assert text[1:] == ["  doubled  list  1 item: [6]"]


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


def test_completion_describes_options_and_is_quiet_after_a_value_option(kernel: Kernel) -> None:
    """What JupyterLab shows: each option with what it does (the match's `type`), short
    options too, `--no-*` only once typed, and nothing at all where a value goes."""
    reply = kernel.complete_reply("%runmod -")
    types = {
        item["text"]: item["type"] for item in reply["metadata"]["_jupyter_types_experimental"]
    }
    matches = reply["matches"]
    shorts = [match for match in matches if not match.startswith("--")]
    assert matches[: len(shorts)] == shorts and list(types) == matches
    assert {"-h", "-n", "-o", "-t", "-p", "-d", "-b", "-G"} <= set(shorts)
    assert (
        types["-o"] == types["--result"] == "Return\N{NO-BREAK SPACE}the\N{NO-BREAK SPACE}RunResult"
    )
    assert (
        types["--which"].split("\N{NO-BREAK SPACE}")
        == "Print what would run, and run nothing".split()
    )
    assert not any(match.startswith("--no-") for match in reply["matches"])
    assert "--no-merge" in kernel.complete("%runmod --no")
    for line in ("%runmod -n ", "%runmod m --only ", "%runmod m --exclude res", "%runmod m -d -b "):
        assert [match for match in kernel.complete(line) if match] == [], line


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


def test_debugger_prompts_through_the_notebook_s_input_box(kernel: Kernel) -> None:
    """README, `-d`: the debugger reads what is typed in the notebook (input_request)."""
    reply = kernel.execute("%runmod kpkg.dmod -d", stdin=["n", "n", "p a", "c"])
    assert reply.status == "ok", reply.traceback
    assert reply.prompts == ["ipdb> "] * 4
    out = reply.plain_stdout
    first_stop = out.index("dmod.py(2)<module>()")  # line 1 is dedent's blank
    assert "----> 2 from . import helper" in out[first_stop:]
    assert out.endswith("\n1\nb is 2\n")  # `p a`, then the module's own output


def test_debugger_breakpoint_in_another_file_through_the_input_box(kernel: Kernel) -> None:
    where = kernel.execute("import kpkg, os; print(os.path.dirname(kpkg.__file__))")
    helper = os.path.join(where.stdout.strip(), "helper.py")
    reply = kernel.execute(f"%runmod kpkg.dmod -d -b {helper}:3", stdin=["p v", "c"])
    assert reply.status == "ok", reply.traceback
    assert reply.prompts == ["ipdb> "] * 2  # one for each line typed: "p v", "c"
    out = reply.plain_stdout
    assert "dmod.py(" not in out  # no stop before the breakpoint
    assert f"Breakpoint 1 at {helper}:3" in out
    assert "helper.py(3)twice()" in out and out.endswith("\n1\nb is 2\n")


def test_profile_report_goes_to_the_notebook_s_pager(kernel: Kernel) -> None:
    """README, `-p`: as %prun in a notebook, the report is a pager payload of the reply."""
    reply = kernel.execute("%runmod kpkg.slow -p -s cumulative")
    assert reply.status == "ok", reply.traceback
    [page] = [p for p in reply.content["payload"] if p["source"] == "page"]
    report = page["data"]["text/plain"]
    assert "Ordered by: cumulative time" in report and "slow.py:2(slow_part)" in report
    quiet = kernel.execute("%runmod kpkg.slow -p -q")
    assert quiet.status == "ok" and not quiet.content["payload"] and not quiet.stdout


# --- Later cells: what a run defines keeps working; edits take effect ------------------

CELLS_FILES = {
    "sc/__init__.py": "",
    "sc/model.py": """
        from __future__ import annotations

        import dataclasses

        print("training…")


        @dataclasses.dataclass
        class Model:
            weights: list[float]
            parent: Model | None = None

            def predict(self, x: float) -> float:
                return sum(self.weights) * x


        def train() -> Model:
            return Model([1.0, 2.0])


        model = train()
    """,
    "test_s.py": """
        def test_sum():
            total = 1 + 1
            assert total == 3
    """,
    "test_u.py": """
        import unittest

        class T(unittest.TestCase):
            def test_sum(self):
                self.assertEqual(1 + 1, 3)
    """,
    "doc_s.py": '''
        def double(x):
            """
            >>> double(2)
            5
            """
            return 2 * x
    ''',
}


@pytest.fixture
def cells_kernel(tmp_path: Path) -> Iterator[tuple[Kernel, Path]]:
    """A fresh kernel working in a directory of user files (a package, test modules)."""
    for rel, text in CELLS_FILES.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    with running_kernel() as k:
        reply = k.execute(f"import os; os.chdir({str(tmp_path)!r})\n%load_ext ipy_runmod")
        assert reply.status == "ok", reply.traceback
        yield k, tmp_path


def _ok(kernel: Kernel, code: str) -> Reply:
    reply = kernel.execute(code)
    assert reply.status == "ok", reply.traceback
    return reply


def test_what_a_run_defines_works_in_later_cells(cells_kernel: tuple[Kernel, Path]) -> None:
    """README, "Merging back": later cells see objects of an imported module."""
    kernel, _ = cells_kernel
    assert _ok(kernel, "%runmod sc.model --merge").stdout == "training…\n"
    reply = _ok(
        kernel,
        """
import copy, dataclasses, inspect, os, pickle, tempfile, typing
import joblib
back = pickle.loads(pickle.dumps(model))
print(type(back) is Model, back == model, pickle.loads(pickle.dumps(train)) is train)
print(copy.copy(model) == model, copy.deepcopy(model) == model)
print(typing.get_type_hints(Model)["parent"] == (Model | None))
print(inspect.getsource(Model).splitlines()[0], inspect.getsource(train).splitlines()[0])
print(dataclasses.replace(model, weights=[3.0]).predict(2))
path = os.path.join(tempfile.mkdtemp(), "model.joblib")
joblib.dump(model, path)
print(type(joblib.load(path)) is Model)
""",
    )
    # Nothing ran the module again: "training…" is printed once, by the run.
    assert reply.stdout.splitlines() == [
        "True True True",
        "True True",
        "True",
        "@dataclasses.dataclass def train() -> Model:",
        "6.0",
        "True",
    ]
    reply = _ok(kernel, "%store model\ndel model\n%store -r model\nprint(type(model) is Model)")
    assert reply.stdout.splitlines()[-1] == "True" and "training" not in reply.stdout
    _ok(kernel, "%store -d model")
    # The next run replaces the previous one, without runpy's "found in sys.modules".
    reply = _ok(
        kernel, "%runmod sc.model --merge\nprint(type(pickle.loads(pickle.dumps(model))) is Model)"
    )
    assert reply.stdout == "training…\nTrue\n"
    assert reply.stderr == ""


def test_with_main_what_pickle_reaches_through_the_notebook(
    cells_kernel: tuple[Kernel, Path],
) -> None:
    """README, "Merging back": with --main, pickle looks names up in the notebook."""
    kernel, _ = cells_kernel
    _ok(kernel, "%runmod sc.model --main --merge\nimport pickle")
    reply = _ok(kernel, "print(type(pickle.loads(pickle.dumps(model))) is Model)")
    assert reply.stdout == "True\n"
    reply = kernel.execute("del Model\n%runmod sc.model --main --only model\npickle.dumps(model)")
    assert reply.status == "error" and reply.content["ename"] == "PicklingError"


def _edit(path: Path, old: str, new: str) -> None:
    """Change a file so that its stamp surely changes (mtime moved on by a second)."""
    st = path.stat()
    path.write_text(path.read_text().replace(old, new))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_a_fixed_test_passes_when_run_again(cells_kernel: tuple[Kernel, Path]) -> None:
    """README, "Edits take effect": pytest, unittest and doctest, as python -m runs them."""
    kernel, root = cells_kernel
    failed = kernel.execute("%runmod pytest --main -- -q -p no:cacheprovider test_s.py")
    assert failed.status == "error" and "1 failed" in failed.stdout
    assert "assert 2 == 3" in failed.stdout  # pytest's assertion rewriting
    _edit(root / "test_s.py", "total == 3", "total == 4")
    failed = kernel.execute("%runmod pytest --main -- -q -p no:cacheprovider test_s.py")
    assert "assert 2 == 4" in failed.stdout  # the new module, rewritten again
    _edit(root / "test_s.py", "total == 4", "total == 2")
    passed = _ok(kernel, "%runmod pytest --main -- -q -p no:cacheprovider test_s.py")
    assert "1 passed" in passed.stdout

    assert kernel.execute("%runmod unittest --main -- test_u").status == "error"
    _edit(root / "test_u.py", "1 + 1, 3", "1 + 1, 2")
    assert "OK" in _ok(kernel, "%runmod unittest --main -- test_u").stderr

    assert kernel.execute("%runmod doctest --main -- doc_s.py").status == "error"
    _edit(root / "doc_s.py", "    5\n", "    4\n")
    _ok(kernel, "%runmod doctest --main -- doc_s.py")
