"""%runmod in a real IPython shell: options, namespace in and out, sys, errors."""

from __future__ import annotations

import builtins
import logging
import os
import re
import runpy
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import ipy_runmod
from ipy_runmod.magics import ModuleExit

pytestmark = pytest.mark.shell

ECHO = """
import subprocess
import sys
seen_argv = list(sys.argv)
seen_name = __name__
seen_spec = __spec__.name
seen_package = __package__
registered = sys.modules[__name__].__dict__ is globals()
"""


def runmod(ip: InteractiveShell, line: str) -> Any:
    return ip.run_line_magic("runmod", line)


def cell(ip: InteractiveShell, source: str) -> Any:
    """Run a cell as a user would; return IPython's ExecutionResult."""
    return ip.run_cell(source)


@pytest.fixture
def pkg(make_package: Any) -> str:
    return make_package(
        {
            "__init__.py": "",
            "__main__.py": "ran_main = True\n" + ECHO,
            "echo.py": ECHO,
            "helper.py": "factor = 10\n",
            "uses_ns.py": """
                from . import helper
                total = sum(data) * helper.factor
                data_is_given = data
            """,
            "mainblock.py": """
                flag = "imported"
                if __name__ == "__main__":
                    flag = "main"
            """,
            "fails.py": """
                before = 1
                def inner():
                    raise ValueError("bad value")
                inner()
                after = 2
            """,
            "exits.py": """
                import sys
                bound_before_exit = True
                sys.exit(code)
            """,
            "binds.py": """
                result_a = 1
                result_b = [2]
                other = "x"
                _private = 3
                __dunder__ = 4
                In = "clobbered"
                _ = "underscore"
            """,
        }
    )


def test_load_unload_reload(shell_session: InteractiveShell) -> None:
    ip = shell_session
    ip.run_line_magic("load_ext", "ipy_runmod")
    assert "runmod" in ip.magics_manager.magics["line"]
    assert "runmod" in ip.magics_manager.magics["cell"]
    ip.run_line_magic("reload_ext", "ipy_runmod")
    assert "runmod" in ip.magics_manager.magics["line"]
    ip.run_line_magic("unload_ext", "ipy_runmod")
    assert "runmod" not in ip.magics_manager.magics["line"]
    assert "runmod" not in ip.magics_manager.magics["cell"]
    assert not any(type(c).__name__ == "RunModMagics" for c in ip.configurables)
    result = ip.run_cell("%runmod os")
    assert isinstance(result.error_in_exec, UsageError)


def test_namespace_goes_in_not_back(ip: InteractiveShell, pkg: str, invariants: Any) -> None:
    ip.user_ns["data"] = [1, 2, 3]
    check = invariants()
    res = runmod(ip, f"-o {pkg}.uses_ns")
    assert res["total"] == 60
    assert res["data_is_given"] is ip.user_ns["data"]
    assert "total" not in ip.user_ns
    check.check(run_names=(f"{pkg}.uses_ns",))


def test_default_returns_none_like_run(ip: InteractiveShell, pkg: str) -> None:
    assert runmod(ip, f"{pkg}.echo") is None
    assert ipy_runmod.last_result() is not None
    assert ipy_runmod.last_result().module == f"{pkg}.echo"


def test_special_globals_and_run_names(ip: InteractiveShell, pkg: str) -> None:
    ip.user_ns.update(__spec__="notebook-spec", __package__="notebook-pkg")
    res = runmod(ip, f"-o {pkg}.echo")
    assert (res["seen_name"], res["seen_spec"], res["seen_package"]) == (
        f"{pkg}.echo",
        f"{pkg}.echo",
        pkg,
    )
    res = runmod(ip, f"{pkg}.echo --run-name custom -o")
    assert (res["seen_name"], res["seen_spec"]) == ("custom", f"{pkg}.echo")
    res = runmod(ip, f"-n other {pkg}.echo -o")
    assert res["seen_name"] == "other"
    res = runmod(ip, f"{pkg}.echo --main -o")
    assert res["seen_name"] == "__main__"
    assert ip.user_ns["__spec__"] == "notebook-spec"
    assert ip.user_ns["__package__"] == "notebook-pkg"


def test_main_runs_main_block(ip: InteractiveShell, pkg: str) -> None:
    assert runmod(ip, f"-o {pkg}.mainblock")["flag"] == "imported"
    assert runmod(ip, f"{pkg}.mainblock --main -o")["flag"] == "main"
    assert runmod(ip, f"{pkg}.mainblock --run-name __main__ -o")["flag"] == "main"


def test_package_runs_its_main(ip: InteractiveShell, pkg: str) -> None:
    res = runmod(ip, f"-o {pkg}")
    assert res["ran_main"] is True
    assert res["seen_name"] == f"{pkg}.__main__"
    assert res["seen_spec"] == f"{pkg}.__main__"


def test_module_arguments_after_double_dash(ip: InteractiveShell, pkg: str) -> None:
    before = sys.argv
    res = runmod(ip, f"{pkg}.echo --main -o -- --title 'a b' -x \"c d\" -- tail")
    assert res["seen_argv"][1:] == ["--title", "a b", "-x", "c d", "--", "tail"]
    assert res["seen_argv"][0] == res.file
    assert res.argv == res["seen_argv"]
    assert sys.argv is before


def test_options_after_the_module_name(ip: InteractiveShell, pkg: str) -> None:
    res = runmod(ip, f"{pkg}.binds --run-name __main__ --merge --only result_a -o")
    assert res.run_name == "__main__" and res["__name__"] == "__main__"
    assert ip.user_ns["result_a"] == 1
    assert "result_b" not in ip.user_ns


def test_brace_and_dollar_expansion(ip: InteractiveShell, pkg: str) -> None:
    ip.user_ns["alpha"] = 0.5
    ip.user_ns["name"] = "some title"
    cell(ip, f'res = %runmod -o {pkg}.echo -- --alpha {{alpha}} --name "$name" {{{{x}}}} $$y')
    assert ip.user_ns["res"]["seen_argv"][1:] == [
        "--alpha",
        "0.5",
        "--name",
        "some title",
        "{x}",
        "$y",
    ]


def test_registered_in_sys_modules_during_run(ip: InteractiveShell, pkg: str) -> None:
    main_before = sys.modules["__main__"]
    res = runmod(ip, f"{pkg}.echo --main -o")
    assert res["registered"] is True
    assert sys.modules["__main__"] is main_before
    res = runmod(ip, f"{pkg}.echo -o")
    assert res["registered"] is True
    # Run under its own name, it stays registered as that module, as an import would.
    assert vars(sys.modules[f"{pkg}.echo"]) is res.globals
    res = runmod(ip, f"{pkg}.echo -n custom -o")
    assert res["registered"] is True and "custom" not in sys.modules


def test_no_alter_sys(ip: InteractiveShell, make_package: Any) -> None:
    name = make_package(
        {
            "__init__.py": "",
            "m.py": """
                import sys
                seen_argv = sys.argv
                registered = sys.modules.get(__name__)
            """,
        }
    )
    res = runmod(ip, f"{name}.m --no-alter-sys -o")
    assert res["seen_argv"] is sys.argv
    assert res["registered"] is None
    assert res.argv is None
    with pytest.raises(UsageError, match="--no-alter-sys"):
        runmod(ip, f"{name}.m --no-alter-sys -- --flag")


def test_pickle_dataclasses_inspect_and_import_main(
    ip: InteractiveShell, make_package: Any
) -> None:
    name = make_package(
        {
            "__init__.py": "",
            "defs.py": '''
                from __future__ import annotations
                import dataclasses, inspect, pickle, typing

                @dataclasses.dataclass
                class Point:
                    x: int
                    y: "int"

                def area(p: Point) -> int:
                    """Area."""
                    return p.x * p.y

                roundtrip = pickle.loads(pickle.dumps(Point(1, 2)))
                hints = typing.get_type_hints(area)
                source = inspect.getsource(area)
                import __main__
                main_is_me = __main__.__dict__ is globals()
            ''',
        }
    )
    res = runmod(ip, f"{name}.defs --main -o")
    assert res["roundtrip"] == res["Point"](1, 2)
    assert res["hints"]["p"] is res["Point"]
    assert "return p.x * p.y" in res["source"]
    assert res["main_is_me"] is True


def test_isolated_sees_no_notebook_names(ip: InteractiveShell, pkg: str) -> None:
    ip.user_ns["data"] = [1]
    result = cell(ip, f"%runmod --isolated {pkg}.uses_ns")
    assert isinstance(result.error_in_exec, NameError)
    assert "data" in str(result.error_in_exec)


def test_merge_rules(ip: InteractiveShell, pkg: str, invariants: Any) -> None:
    ip.user_ns["other"] = "notebook"
    check = invariants()
    runmod(ip, f"{pkg}.binds --merge")
    assert ip.user_ns["result_a"] == 1 and ip.user_ns["result_b"] == [2]
    assert ip.user_ns["other"] == "x"
    assert ip.user_ns["_private"] == 3
    assert "__dunder__" not in ip.user_ns
    assert ip.user_ns["In"] != "clobbered"  # IPython's hidden names are never merged
    assert ip.user_ns.get("_") != "underscore"
    merged = ipy_runmod.last_result().merged
    assert set(merged) == {"result_a", "result_b", "other", "_private"}
    check.check(merged=merged)


def test_merge_only_and_exclude_patterns(ip: InteractiveShell, pkg: str) -> None:
    runmod(ip, f"{pkg}.binds --only 'result*' --exclude result_b")
    assert ip.user_ns["result_a"] == 1
    assert "result_b" not in ip.user_ns and "other" not in ip.user_ns
    runmod(ip, f"{pkg}.binds --merge --exclude 'result*,_*'")
    assert ip.user_ns["other"] == "x"
    assert "_private" not in ip.user_ns and "result_b" not in ip.user_ns
    runmod(ip, f"{pkg}.binds --only other --only _private")
    assert ip.user_ns["_private"] == 3


def test_unchanged_names_are_not_merged(ip: InteractiveShell, pkg: str) -> None:
    data = [1, 2]
    ip.user_ns["data"] = data
    runmod(ip, f"{pkg}.uses_ns --merge")
    assert ip.user_ns["data"] is data
    assert "data" not in ipy_runmod.last_result().merged
    assert "helper" in ipy_runmod.last_result().merged


def test_deleted_names_stay(ip: InteractiveShell, make_package: Any) -> None:
    name = make_package({"__init__.py": "", "d.py": "del keep\nnew = 1\n"})
    ip.user_ns["keep"] = "still here"
    runmod(ip, f"{name}.d --merge")
    assert ip.user_ns["keep"] == "still here" and ip.user_ns["new"] == 1


def test_notebook_dunders_never_overwritten(ip: InteractiveShell, pkg: str) -> None:
    def dunders() -> dict[str, Any]:
        return {k: v for k, v in ip.user_ns.items() if k.startswith("__") and k.endswith("__")}

    before = dunders()
    runmod(ip, f"{pkg}.echo --merge --main")
    runmod(ip, f"{pkg}.echo --isolated --merge")
    after = dunders()
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)
    assert "__file__" not in ip.user_ns and "__cached__" not in ip.user_ns


def test_failed_run_merges_partial_names_then_raises(
    ip: InteractiveShell, pkg: str, invariants: Any
) -> None:
    check = invariants()
    with pytest.raises(ValueError, match="bad value"):
        runmod(ip, f"{pkg}.fails --merge")
    assert ip.user_ns["before"] == 1 and "after" not in ip.user_ns
    last = ipy_runmod.last_result()
    assert last is not None and not last.ok and isinstance(last.exception, ValueError)
    assert last["before"] == 1
    check.check(merged=last.merged, run_names=(f"{pkg}.fails",))


def test_failing_cell_traceback_starts_in_module(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = cell(ip, f"%runmod {pkg}.fails")
    assert isinstance(result.error_in_exec, ValueError)
    out = capsys.readouterr().out
    assert "fails.py" in out and "inner()" in out and "bad value" in out
    for runner in ("runpy", "_core.py", "magics.py", "interactiveshell.py", "run_line_magic"):
        assert runner not in out, f"{runner} shown in traceback:\n{out}"
    # The debugger sees the whole chain: the innermost frame is the module's.
    tb = sys.last_traceback
    while tb.tb_next is not None:
        tb = tb.tb_next
    assert tb.tb_frame.f_code.co_name == "inner"


def test_debug_after_failure(
    ip: InteractiveShell,
    pkg: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cell(ip, f"%runmod {pkg}.fails")
    capsys.readouterr()
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("p ('seen', before)\nq\n"))
    ip.run_line_magic("debug", "")
    out = capsys.readouterr().out
    # the debugger stands in the module's frame, at the raise, and sees its globals too
    file = ipy_runmod.last_result().file
    assert out == (
        f"> {file}(4)inner()\n"
        "      2 before = 1\n"
        "      3 def inner():\n"
        '----> 4     raise ValueError("bad value")\n'
        "      5 inner()\n"
        "      6 after = 2\n"
        "\n"
        "ipdb> ('seen', 1)\n"
        "ipdb> "
    )


@pytest.mark.parametrize("code", ["0", "None"])
def test_system_exit_zero_is_success(
    ip: InteractiveShell, pkg: str, code: str, capsys: Any
) -> None:
    ip.user_ns["code"] = eval(code)
    result = cell(ip, f"%runmod {pkg}.exits --merge")
    assert result.success
    assert ip.user_ns["bound_before_exit"] is True
    assert "Traceback" not in capsys.readouterr().out
    assert ipy_runmod.last_result().exit_code == 0


@pytest.mark.parametrize(
    ("code", "message"),
    [(2, "exited with status 2"), ("bad input", "exited with status 1: bad input")],
)
def test_system_exit_nonzero_fails_with_one_line(
    ip: InteractiveShell, pkg: str, code: object, message: str, capsys: Any
) -> None:
    ip.user_ns["code"] = code
    result = cell(ip, f"%runmod {pkg}.exits")
    assert isinstance(result.error_in_exec, ModuleExit)
    out = capsys.readouterr()
    text = (out.out + out.err).strip()
    assert text == f"ModuleExit: {pkg}.exits {message}"
    assert cell(ip, "1 + 1").success  # the session goes on


def test_exit_message_stays_on_one_line(ip: InteractiveShell, pkg: str, capsys: Any) -> None:
    ip.user_ns["code"] = "two\nlines"
    result = cell(ip, f"%runmod {pkg}.exits")
    assert str(result.error_in_exec) == f"{pkg}.exits exited with status 1: 'two\\nlines'"


def test_syntax_error_in_module(ip: InteractiveShell, make_package: Any, capsys: Any) -> None:
    name = make_package({"__init__.py": "", "bad.py": "x = 1\ndef f(:\n    pass\n"})
    result = cell(ip, f"%runmod {name}.bad")
    assert isinstance(result.error_in_exec, SyntaxError)
    assert result.error_in_exec.lineno == 2
    out = capsys.readouterr().out
    assert "bad.py" in out and "_codecache" not in out and "importlib" not in out


def test_keyboard_interrupt_restores_sys(
    ip: InteractiveShell, make_package: Any, invariants: Any
) -> None:
    name = make_package({"__init__.py": "", "k.py": "partial = 1\nraise KeyboardInterrupt\n"})
    check = invariants()
    with pytest.raises(KeyboardInterrupt):
        runmod(ip, f"{name}.k --main -- a b")
    check.check()
    assert ipy_runmod.last_result()["partial"] == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "the following arguments are required: module"),
        ("--merge", "the following arguments are required: module"),
        ("mod extra", "module arguments go after `--`"),
        ("mod --bogus", "module arguments go after `--`"),
        ("--bogus mod", "unrecognized option '--bogus'"),
        ("mod --mer", "unrecognized option '--mer'"),
        ("mod -n", "expected one argument"),
        ("'unbalanced", "No closing quotation"),
        (".relative", "cannot run '.relative': Relative module names not supported"),
        ("pkg/mod.py", "No module named 'pkg/mod'; 'pkg/mod.py' looks like a file path"),
        ("1abc_nosuch", "No module named '1abc_nosuch'"),
        ("mod --main -n other", "--main contradicts --run-name"),
    ],
)
def test_usage_errors_are_one_line(ip: InteractiveShell, line: str, message: str) -> None:
    before = dict(ip.user_ns)
    with pytest.raises(UsageError) as info:
        runmod(ip, line)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert ip.user_ns.keys() == before.keys()


@pytest.mark.parametrize(
    ("files", "line"),
    [
        ({"my-tool.py": "ran = 'my-tool'"}, "my-tool"),
        ({"2fast.py": "ran = '2fast'"}, "2fast"),
        ({"pk/__init__.py": "", "pk/py.py": "ran = 'pk.py'"}, "pk.py"),
    ],
    ids=["dash", "digit", "dotpy"],
)
def test_every_name_runpy_runs_runs(
    ip: InteractiveShell, make_package: Any, files: dict[str, str], line: str
) -> None:
    """README, Usage: MODULE is found exactly as runpy finds it, whatever the name looks like."""
    root = make_package.root
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    try:
        assert runmod(ip, f"-o {line}")["ran"] == line
        assert runpy.run_module(line)["ran"] == line  # the yardstick
    finally:
        for name in [m for m in sys.modules if m == "pk" or m.startswith("pk.")]:
            del sys.modules[name]


def test_module_not_found_suggests(ip: InteractiveShell, pkg: str) -> None:
    with pytest.raises(UsageError) as info:
        runmod(ip, f"{pkg}.uses_nss")
    assert str(info.value) == f"No module named '{pkg}.uses_nss'; did you mean '{pkg}.uses_ns'?"
    with pytest.raises(UsageError, match=r"No module named 'nosuchpkg_xyz'$"):
        runmod(ip, "nosuchpkg_xyz.mod")
    with pytest.raises(UsageError, match="did you mean 'collections'"):
        runmod(ip, "colections")


def test_package_without_main(ip: InteractiveShell, make_package: Any) -> None:
    name = make_package({"__init__.py": "", "m.py": ""})
    with pytest.raises(UsageError, match=f"'{name}' is a package and cannot be directly executed"):
        runmod(ip, name)


def test_error_inside_parent_init_propagates(ip: InteractiveShell, make_package: Any) -> None:
    name = make_package({"__init__.py": "import missing_dependency_xyz\n", "m.py": ""})
    result = cell(ip, f"%runmod {name}.m")
    assert isinstance(result.error_in_exec, ModuleNotFoundError)
    assert result.error_in_exec.name == "missing_dependency_xyz"


def test_edits_are_picked_up(ip: InteractiveShell, make_package: Any) -> None:
    name = make_package({"__init__.py": "", "m.py": "value = 1\n"})
    assert runmod(ip, f"-o {name}.m")["value"] == 1
    (make_package.root / name / "m.py").write_text("value = 'second'\n")
    assert runmod(ip, f"-o {name}.m")["value"] == "second"


def test_result_repr_and_html(ip: InteractiveShell, pkg: str) -> None:
    res = runmod(ip, f"-o {pkg}.binds")
    text = repr(res)
    assert "\n" not in text and f"{pkg}.binds" in text and "ok" in text
    assert re.search(r"\d+ names bound, \d+\.\d+ (µs|ms|s)>$", text), text
    html = res._repr_html_()
    assert "<table" in html and "result_b" in html and "list" in html


def test_configuration_and_line_flags_win(ip: InteractiveShell, pkg: str) -> None:
    ip.run_line_magic("config", "RunModMagics.merge = True")
    runmod(ip, f"{pkg}.binds")
    assert ip.user_ns["result_a"] == 1
    del ip.user_ns["result_a"]
    runmod(ip, f"{pkg}.binds --no-merge")
    assert "result_a" not in ip.user_ns
    ip.run_line_magic("config", "RunModMagics.run_name = '__main__'")
    assert runmod(ip, f"{pkg}.echo -o")["seen_name"] == "__main__"
    assert runmod(ip, f"{pkg}.echo -o -n given")["seen_name"] == "given"
    ip.run_line_magic("config", "RunModMagics.isolated = True")
    ip.user_ns["data"] = [1]
    assert isinstance(cell(ip, f"%runmod {pkg}.uses_ns").error_in_exec, NameError)
    assert runmod(ip, f"{pkg}.uses_ns --no-isolated -o")["total"] == 10
    ip.run_line_magic("config", "RunModMagics.alter_sys = False")
    assert runmod(ip, f"{pkg}.binds -o").argv is None
    assert runmod(ip, f"{pkg}.echo -o --alter-sys")["registered"] is True


def test_settings_from_ipython_config(shell_session: InteractiveShell, pkg: str) -> None:
    ip = shell_session
    ip.config.RunModMagics.merge = True  # as c.RunModMagics.merge = True in ipython_config.py
    ip.run_line_magic("load_ext", "ipy_runmod")
    try:
        runmod(ip, f"{pkg}.binds")
        assert ip.user_ns["result_a"] == 1
    finally:
        ip.run_line_magic("unload_ext", "ipy_runmod")
        ip.config.pop("RunModMagics", None)
        ip.run_line_magic("reset", "-f")


def test_help_is_a_short_man_page(ip: InteractiveShell) -> None:
    """`%runmod?`: usage, the `python -m` equivalence and examples; the README is the manual."""
    doc = ip.find_line_magic("runmod").__doc__
    lines = doc.splitlines()
    assert lines[2] == "  %runmod [OPTIONS] MODULE [OPTIONS] [-- ARG ...]"
    assert "is `python -m pkg.cli --alpha 0.5` run" in doc
    assert "Examples:" in doc and "README" in doc
    # magic_arguments appends a line or two per option: the text before them stays short.
    prose = doc.split("\npositional arguments:", 1)[0]
    assert len(prose.splitlines()) < 45, "the README is the manual; %runmod? stays short"


def test_every_option_is_in_the_readme_options_section(ip: InteractiveShell) -> None:
    """README, "Options, with an example each": the user's list of what %runmod takes.

    (The docstring lists the options whatever it says: magic_arguments appends them.)"""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### Options, with an example each", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"`(--?[a-zA-Z][a-z-]*)", section))
    documented |= set(re.findall(r"(?<![\w-])(--?[a-zA-Z][a-z-]*)", section))
    parser = ip.magics_manager.magics["line"]["runmod"].parser
    options = {opt for action in parser._actions for opt in action.option_strings}
    missing = sorted(options - documented - {"-h", "--help"})
    assert options and not missing, f"options missing from the README's options: {missing}"


def test_unload_removes_completer_and_cell_hook(shell_session: InteractiveShell) -> None:
    from ipy_runmod import magics

    ip = shell_session

    def installed() -> tuple[int, int]:
        callbacks = ip.events.callbacks["post_run_cell"]
        return (
            ip.Completer.custom_matchers.count(magics.complete),
            callbacks.count(magics._after_cell),
        )

    ip.run_line_magic("load_ext", "ipy_runmod")
    ip.run_line_magic("reload_ext", "ipy_runmod")
    assert installed() == (1, 1)
    ip.run_line_magic("unload_ext", "ipy_runmod")
    assert installed() == (0, 0)


def test_bound_names_are_judged_at_the_end_of_the_run(ip: InteractiveShell, pkg: str) -> None:
    ip.user_ns["other"] = "before"
    assert ip.run_cell(f"res = %runmod -o {pkg}.binds", store_history=True).success
    assert ip.run_cell("other = 'rebound later'; 1 + 1", store_history=True).success
    # Later cells rebind _i, _ and the notebook's own names: none of that is the module's.
    assert set(ip.user_ns["res"].bound) == {"result_a", "result_b", "other", "_private", "In", "_"}


QUITS = """
import subprocess
import sys
print(repr(exit), repr(quit))
if sys.argv[1:] == ["quit"]:
    quit()
exit(*map(int, sys.argv[1:]))
print("not reached")
"""


@pytest.mark.parametrize("args", ["", "quit", "3"])
@pytest.mark.parametrize("flags", ["--main", "--main --isolated"])
def test_exit_and_quit_as_under_python_m(
    ip: InteractiveShell, make_package: Any, capsys: Any, args: str, flags: str
) -> None:
    """README, Errors: exit() / quit() in a module are sys.exit(), as under python -m."""
    name = make_package({"__init__.py": "", "quits.py": QUITS})
    cli = subprocess.run(
        [sys.executable, "-m", f"{name}.quits", *args.split()],
        cwd=make_package.root,
        capture_output=True,
        text=True,
    )
    capsys.readouterr()
    result = cell(ip, f"%runmod {name}.quits {flags} -- {args}")
    out = capsys.readouterr().out
    if cli.returncode == 0:
        assert result.success and out == cli.stdout
    else:  # the module's output, then the one line the shell shows for the failed cell
        assert isinstance(result.error_in_exec, ModuleExit)
        exited = f"{name}.quits exited with status {cli.returncode}"
        assert out == cli.stdout + f"ModuleExit: {exited}\n"
    assert cell(ip, "print('the shell goes on')").success


TAMPERS = """
import builtins, gettext, logging, os, signal, sys, warnings
here = os.path.dirname(__file__)
os.chdir(here)
sys.path.insert(0, here)
os.environ["RM_TAMPERED"] = "1"
warnings.simplefilter("ignore")
logging.basicConfig(level=logging.INFO)
signal.signal(signal.SIGINT, lambda *a: sys.exit("interrupted"))
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGUSR1, lambda *a: None)
gettext.install("tampers")  # sets builtins._
builtins.print_all = print
builtins.input = print  # a name that was there, rebound
sys.displayhook = sys.excepthook = print
print("to stdout")
with sys.stdout:  # as json.tool does with its output
    print("inside")
sys.stdout = sys.stderr  # as base64 -x leaves it
"""


def _session_state() -> tuple[object, ...]:
    root = logging.getLogger()
    return (
        os.getcwd(),
        list(sys.path),
        os.environ.get("RM_TAMPERED"),
        list(warnings.filters),
        (root.level, list(root.handlers)),
        dict(vars(builtins)),
    )


@pytest.mark.parametrize("keep", [False, True], ids=["default", "keep-state"])
def test_the_session_is_safe_from_the_module(
    ip: InteractiveShell, make_package: Any, capsys: Any, keep: bool
) -> None:
    """README, Guarantees: what a run can and cannot change in the session."""
    name = make_package({"__init__.py": "", "tampers.py": TAMPERS})
    before = _session_state()
    streams = (sys.stdin, sys.stdout, sys.stderr, sys.displayhook, sys.excepthook)
    handlers = [signal.getsignal(number) for number in signal.valid_signals()]
    try:
        assert cell(ip, f"%runmod {name}.tampers --main {'--keep-state' * keep}").success
        # Always the session's, open and working.
        assert (sys.stdin, sys.stdout, sys.stderr, sys.displayhook, sys.excepthook) == streams
        assert not sys.stdout.closed
        assert [signal.getsignal(number) for number in signal.valid_signals()] == handlers
        assert cell(ip, "print('next cell')").success
        assert capsys.readouterr().out == "to stdout\ninside\nnext cell\n"
        after = _session_state()
        if keep:  # left as the module set it up, as the README says of --keep-state
            assert after[0] == str(make_package.root / name) and after[2] == "1"
            assert after[1][0] == after[0] and after[3][0][0] == "ignore"
            assert "_" in after[5] and "print_all" in after[5] and after[5]["input"] is print
        else:
            assert after == before
    finally:
        os.chdir(before[0])
        sys.path[:] = before[1]
        os.environ.pop("RM_TAMPERED", None)
        warnings.filters[:] = before[3]
        warnings._filters_mutated()  # type: ignore[attr-defined]
        logging.getLogger().setLevel(before[4][0])
        logging.getLogger().handlers[:] = before[4][1]
        for name in set(vars(builtins)) - set(before[5]):
            del vars(builtins)[name]
        vars(builtins).update(before[5])


def test_a_builtin_only_rebound_is_the_sessions_again(
    ip: InteractiveShell, make_package: Any
) -> None:
    """README, Guarantees: `builtins` as it was, also when no name was added or deleted."""
    name = make_package(
        {"__init__.py": "", "rebinds.py": "import builtins\nbuiltins.input = print\n"}
    )
    real = builtins.input
    try:
        assert cell(ip, f"%runmod {name}.rebinds").success
        assert builtins.input is real
    finally:
        builtins.input = real


def test_json_tool_like_python_m(ip: InteractiveShell, tmp_path: Any, capsys: Any) -> None:
    """json.tool closes its output (`with outfile:`): the session's stdout stays open."""
    data = tmp_path / "x.json"
    data.write_text('{"b": [1, 2], "a": null}')
    cli = subprocess.run(
        [sys.executable, "-m", "json.tool", "--sort-keys", str(data)],
        capture_output=True,
        text=True,
        check=True,
    )
    capsys.readouterr()
    assert cell(ip, f"%runmod json.tool --main --isolated -- --sort-keys {data}").success
    assert cell(ip, "print('after')").success
    assert capsys.readouterr().out == cli.stdout + "after\n"


ANNOTATES = """
import builtins
b: str = "mine"
print(__annotations__, __builtins__ is builtins)
"""


@pytest.mark.parametrize("flags", ["--main", "--main --isolated"])
def test_the_notebooks_dunders_stay_out_as_under_python_m(
    ip: InteractiveShell, make_package: Any, capsys: Any, flags: str
) -> None:
    """README, Usage: the module's annotations are its own; __builtins__ is the module."""
    name = make_package({"__init__.py": "", "annotates.py": ANNOTATES})
    cli = subprocess.run(
        [sys.executable, "-m", f"{name}.annotates"],
        cwd=make_package.root,
        capture_output=True,
        text=True,
        check=True,
    )
    assert cell(ip, "a: int = 1").success  # the notebook's own annotation
    capsys.readouterr()
    assert cell(ip, f"%runmod {name}.annotates {flags}").success
    assert capsys.readouterr().out == cli.stdout == "{'b': <class 'str'>} True\n"
    assert ip.user_ns["__annotations__"] == {"a": int}
    assert cell(ip, f"%%runmod {name}.annotates {flags}\nparameter: float = 0.5").success
    assert ip.user_ns["__annotations__"] == {"a": int}  # nor by a cell body's


@pytest.mark.parametrize("flags", ["", "--keep-state"])
def test_the_working_directory_comes_first_as_under_python_m(
    ip: InteractiveShell,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: Any,
    flags: str,
) -> None:
    """README, Usage: a local tabnanny.py is the one that runs, as `python -m tabnanny`."""
    (tmp_path / "tabnanny.py").write_text("import sys\nprint('the local one', sys.path[0])\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "tabnanny", raising=False)
    cli = subprocess.run(
        [sys.executable, "-m", "tabnanny"], capture_output=True, text=True, check=True
    )
    path = list(sys.path)
    capsys.readouterr()
    assert cell(ip, f"%runmod tabnanny --main {flags}").success
    assert capsys.readouterr().out == cli.stdout == f"the local one {tmp_path}\n"
    assert sys.path == path
    assert runmod(ip, "tabnanny --which -o").file == str(tmp_path / "tabnanny.py")
    sys.modules.pop("tabnanny", None)
