"""%%runmod parameters, --which, --time, --reload, completion, and the HTML result."""

from __future__ import annotations

import os
import re
import sys
import textwrap
import warnings
from typing import Any

import pytest
import result_html
from IPython.core.completer import provisionalcompleter
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import ipy_runmod
from ipy_runmod._core import Plan

pytestmark = pytest.mark.shell


@pytest.fixture
def pkg(make_package: Any) -> str:
    return make_package(
        {
            "__init__.py": "",
            "__main__.py": "ran = 'main'\n",
            "sweep.py": """
                from . import helper
                score = alpha * helper.factor
                frame_len = len(frame)
                alpha_seen = alpha
            """,
            "helper.py": "factor = 10\n",
            "sub/__init__.py": "",
            "sub/deep.py": "import sys\nargv = sys.argv\n",
            "rebinds.py": "alpha = alpha * 2\n",
            "never_run.py": "raise RuntimeError('this module must not run')\n",
        }
    )


DURATION = r"\d+\.\d+ (µs|ms|s)"


def cell_magic(ip: InteractiveShell, line: str, body: str) -> Any:
    return ip.run_cell_magic("runmod", line, textwrap.dedent(body))


class Frame:
    """Stands for a DataFrame: any object can be a parameter."""

    def __init__(self, rows: int) -> None:
        self.rows = rows

    def __len__(self) -> int:
        return self.rows


def test_cell_parameters_override_for_this_run_only(
    ip: InteractiveShell, pkg: str, invariants: Any
) -> None:
    ip.user_ns.update(alpha=1, base=Frame(3))
    check = invariants()
    res = cell_magic(ip, f"{pkg}.sweep -o --merge", "alpha = 0.5\nframe = base\n")
    assert res["score"] == 5.0 and res["frame_len"] == 3
    assert res["frame"] is ip.user_ns["base"]
    assert ip.user_ns["alpha"] == 1  # the notebook's value, untouched
    assert "frame" not in ip.user_ns  # parameters never land in the notebook
    assert ip.user_ns["score"] == 5.0  # what the module bound is merged
    assert set(res.merged) == {"score", "frame_len", "alpha_seen", "helper"}
    check.check(merged=res.merged)


def test_cell_parameters_read_notebook_variables(ip: InteractiveShell, pkg: str) -> None:
    ip.user_ns.update(alpha=3, rows=[1, 2])
    res = cell_magic(ip, f"{pkg}.sweep -o", "frame = [r * alpha for r in rows]\n")
    assert res["frame_len"] == 2 and res["score"] == 30


def test_parameter_rebound_by_module_is_merged(ip: InteractiveShell, pkg: str) -> None:
    ip.user_ns["alpha"] = 1
    cell_magic(ip, f"{pkg}.rebinds --merge", "alpha = 10\n")
    assert ip.user_ns["alpha"] == 20


def test_cell_parameters_with_isolated(ip: InteractiveShell, pkg: str) -> None:
    ip.user_ns.update(alpha=2, unrelated="x")
    res = cell_magic(ip, f"{pkg}.sweep -o --isolated", "frame = 'abc'\nalpha = alpha + 1\n")
    assert res["score"] == 30 and "unrelated" not in res


def test_failing_parameter_cell_fails_and_runs_nothing(
    ip: InteractiveShell, pkg: str, invariants: Any
) -> None:
    check = invariants()
    before = ipy_runmod.last_result()
    result = ip.run_cell(f"%%runmod {pkg}.never_run\nalpha = 1 / 0\n")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    assert ipy_runmod.last_result() is before
    check.check()


def test_which_in_the_cell_form_runs_neither_module_nor_body(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.user_ns["effects"] = effects = []
    before = ipy_runmod.last_result()
    plan = cell_magic(ip, f"{pkg}.never_run --which -o", "effects.append('body ran')\nalpha = 2\n")
    assert isinstance(plan, Plan) and plan.target == f"{pkg}.never_run"
    assert capsys.readouterr().out == ""  # returned, not printed: the shell shows it
    assert cell_magic(ip, f"{pkg}.never_run --which", "effects.append('body ran')\n") is None
    assert capsys.readouterr().out.splitlines()[0] == f"module:    {pkg}.never_run"
    assert effects == [] and "alpha" not in ip.user_ns
    assert ipy_runmod.last_result() is before


def test_which_prints_and_runs_nothing(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ip.run_cell(f"%runmod {pkg}.never_run --which --main -- --x 'a b'").success
    out = capsys.readouterr().out
    path = os.path.join(sys.modules[pkg].__path__[0], "never_run.py")
    assert out.splitlines() == [
        f"module:    {pkg}.never_run",
        f"runs:      {pkg}.never_run",
        "run name:  __main__",
        f"file:      {path}",
        "loader:    SourceFileLoader",
        f"argv:      {[path, '--x', 'a b']!r}",
    ]
    plan = ip.run_line_magic("runmod", f"{pkg}.never_run --which --main -o -- --x 'a b'")
    assert isinstance(plan, Plan)
    assert (plan.run_name, plan.package_main, plan.argv) == (
        "__main__",
        False,
        [path, "--x", "a b"],
    )


def test_which_with_result_is_shown_once(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--which -o` returns the plan and the shell shows it, as it shows any value: once."""
    assert ip.run_cell(f"%runmod {pkg}.never_run --which -o").success
    out = capsys.readouterr().out
    assert out.count(f"module:    {pkg}.never_run") == 1 and "Plan(" not in out
    assert ip.run_cell(f"plan = %runmod {pkg}.never_run --which -o").success
    assert capsys.readouterr().out == "" and isinstance(ip.user_ns["plan"], Plan)


def test_which_for_a_package_and_without_alter_sys(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ip.run_line_magic("runmod", f"{pkg} --which") is None
    out = capsys.readouterr().out
    assert f"runs:      {pkg}.__main__ (the package's __main__)" in out
    assert f"run name:  {pkg}.__main__" in out
    ip.run_line_magic("runmod", f"{pkg}.sub.deep --which --no-alter-sys")
    assert "argv:      sys.argv left alone" in capsys.readouterr().out
    assert f"{pkg}.sub" in sys.modules  # parents are imported to find it, as python -m does
    assert f"{pkg}.sub.deep" not in sys.modules


def test_which_never_reloads(
    ip: InteractiveShell, pkg: str, make_package: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell(f"import {pkg}.helper")
    _edit(make_package.root / pkg / "helper.py", "raise RuntimeError('must not run')\n")
    assert ip.run_cell(f"%runmod {pkg}.sweep --which --reload").success
    assert "Reloaded" not in capsys.readouterr().out


def test_which_reports_usage_errors(ip: InteractiveShell, pkg: str) -> None:
    with pytest.raises(UsageError, match="did you mean"):
        ip.run_line_magic("runmod", f"{pkg}.swep --which")


def test_time_prints_one_line(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("runmod", f"{pkg} -t")
    (line,) = capsys.readouterr().out.splitlines()
    assert re.fullmatch(rf"{pkg}: wall {DURATION}, CPU {DURATION}", line), line
    ip.run_line_magic("config", "RunModMagics.show_time = True")
    ip.run_line_magic("runmod", pkg)
    assert ", CPU " in capsys.readouterr().out
    ip.run_line_magic("runmod", f"{pkg} --no-time")
    assert capsys.readouterr().out == ""


def test_time_is_printed_for_failed_runs_too(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell(f"%runmod {pkg}.never_run -t")
    assert f"{pkg}.never_run: wall " in capsys.readouterr().out


def _edit(path: Any, text: str) -> None:
    """Rewrite a file so that its stamp surely changes (mtime moved on by a second)."""
    st = os.stat(path)
    path.write_text(text)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def test_reload_changed_helpers(
    ip: InteractiveShell, pkg: str, make_package: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.user_ns.update(alpha=1, frame=[])
    assert ip.run_cell(f"%runmod {pkg}.sweep --merge").success  # imports pkg.helper
    assert ip.user_ns["score"] == 10
    _edit(make_package.root / pkg / "helper.py", "factor = 1000\n")
    capsys.readouterr()
    ip.run_cell(f"%runmod {pkg}.sweep --merge --no-reload")
    assert ip.user_ns["score"] == 10  # without reloading the imported helper is the old one
    assert capsys.readouterr().out == ""
    assert ip.run_cell(f"%runmod {pkg}.sweep --merge").success  # reloading is the default
    assert capsys.readouterr().out == f"Reloaded: {pkg}.helper\n"
    assert ip.user_ns["score"] == 1000
    assert ip.run_cell(f"%runmod {pkg}.sweep --reload").success
    assert capsys.readouterr().out == ""  # nothing changed: nothing to say
    ip.run_line_magic("config", "RunModMagics.reload = False")
    _edit(make_package.root / pkg / "helper.py", "factor = 7\n")
    assert ip.run_cell(f"%runmod {pkg}.sweep --merge").success
    assert ip.user_ns["score"] == 1000
    assert ip.run_cell(f"%runmod {pkg}.sweep --merge --reload").success
    assert ip.user_ns["score"] == 7


def test_reload_takes_a_changed_package_with_its_submodules(
    ip: InteractiveShell, pkg: str, make_package: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell(f"import {pkg}.sub.deep, {pkg}.helper")
    helper = sys.modules[f"{pkg}.helper"]
    _edit(make_package.root / pkg / "sub/__init__.py", "# edited\nvalue = 1\n")
    capsys.readouterr()
    assert ip.run_cell(f"%runmod {pkg}").success
    assert capsys.readouterr().out == f"Reloaded: {pkg}.sub, {pkg}.sub.deep\n"
    # dropped, to be imported afresh by whoever imports them next; the rest is untouched
    assert f"{pkg}.sub" not in sys.modules and f"{pkg}.sub.deep" not in sys.modules
    assert not hasattr(sys.modules[pkg], "sub")  # `from pkg import sub` imports it afresh
    assert sys.modules[f"{pkg}.helper"] is helper
    ip.run_cell(f"from {pkg} import sub")
    assert ip.user_ns["sub"].value == 1


def test_reload_takes_the_modules_that_hold_a_changed_ones(
    ip: InteractiveShell, make_package: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A helper in another package, used through a module that did not change."""
    lib = make_package({"__init__.py": "", "helper.py": "def factor():\n    return 10\n"})
    app = make_package(
        {
            "__init__.py": "",
            "middle.py": f"from {lib}.helper import factor\n",
            "main.py": "from .middle import factor\nscore = factor()\n",
        }
    )
    assert ip.run_cell(f"%runmod {app}.main --merge").success
    assert ip.user_ns["score"] == 10
    _edit(make_package.root / lib / "helper.py", "def factor():\n    return 20\n")
    capsys.readouterr()
    # Two runs in one cell: the second sees the edit made between them too.
    ip.user_ns.update(_edit=_edit, root=make_package.root)
    cell = (
        f"%runmod {app}.main --merge\n"
        "first = score\n"
        f"_edit(root / {lib!r} / 'helper.py', 'def factor():\\n    return 30\\n')\n"
        f"%runmod {app}.main --merge\n"
    )
    assert ip.run_cell(cell).success
    assert (ip.user_ns["first"], ip.user_ns["score"]) == (20, 30)
    reloaded = ", ".join(sorted([f"{lib}.helper", f"{app}.middle"]))
    assert capsys.readouterr().out == f"Reloaded: {reloaded}\n" * 2


def test_a_broken_edit_fails_the_run_that_imports_it(
    ip: InteractiveShell, pkg: str, make_package: Any, invariants: Any
) -> None:
    ip.user_ns.update(alpha=1, frame=[])
    assert ip.run_cell(f"%runmod {pkg}.sweep").success
    _edit(make_package.root / pkg / "helper.py", "factor = (\n")
    check = invariants()
    result = ip.run_cell(f"%runmod {pkg}.sweep --merge")
    assert isinstance(result.error_in_exec, SyntaxError)
    assert result.error_in_exec.filename.endswith("helper.py")
    check.check(run_names=(f"{pkg}.sweep",))
    _edit(make_package.root / pkg / "helper.py", "factor = 3\n")
    assert ip.run_cell(f"%runmod {pkg}.sweep --merge").success
    assert ip.user_ns["score"] == 3


def test_reload_executes_nothing(
    ip: InteractiveShell, pkg: str, make_package: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Changed modules are dropped, to be imported by the run if it imports them."""
    ip.run_cell(f"import {pkg}.helper")
    _edit(make_package.root / pkg / "helper.py", "print('imported')\nfactor = 1\n")
    capsys.readouterr()
    assert ip.run_cell(f"%runmod {pkg}.sub.deep").success
    assert capsys.readouterr().out == f"Reloaded: {pkg}.helper\n"
    assert f"{pkg}.helper" not in sys.modules


def test_settings_for_every_option(ip: InteractiveShell) -> None:
    magics = ip.magics_manager.registry["RunModMagics"]
    assert {
        name: magics.trait_metadata(name, "config") for name in magics.class_own_traits()
    } == dict.fromkeys(
        ["merge", "run_name", "isolated", "alter_sys", "reload", "show_time", "keep_state"], True
    )
    assert ip.run_cell("%config RunModMagics.show_time = True").success
    assert magics.show_time is True


def complete(ip: InteractiveShell, line: str) -> list[str]:
    with provisionalcompleter():
        return [c.text for c in ip.Completer.completions(line, len(line))]


def test_completion_in_the_shell(ip: InteractiveShell, pkg: str) -> None:
    assert pkg in complete(ip, f"%runmod {pkg[:-1]}")
    assert complete(ip, f"%runmod {pkg}.") == [
        f"{pkg}.helper",
        f"{pkg}.never_run",
        f"{pkg}.rebinds",
        f"{pkg}.sub",
        f"{pkg}.sweep",
    ]
    assert complete(ip, f"%runmod {pkg}.sub.d") == [f"{pkg}.sub.deep"]
    assert complete(ip, f"res = %runmod -o {pkg}.sw") == [f"{pkg}.sweep"]
    assert complete(ip, f"%%runmod --merge {pkg}.he") == [f"{pkg}.helper"]
    assert complete(ip, "%runmod --me") == ["--merge"]
    assert complete(ip, "%runmod x --no-a") == ["--no-alter-sys"]
    assert "--which" in complete(ip, "%runmod --")
    assert f"{pkg}.never_run" not in sys.modules and f"{pkg}.sub" not in sys.modules
    assert not any(c.startswith("-") for c in complete(ip, "%runmod x -- --"))


def test_help_is_a_short_man_page(ip: InteractiveShell) -> None:
    """README: `%runmod?` shows a short man page, its usage with the module's arguments."""
    doc = ip.magics_manager.magics["line"]["runmod"].__doc__
    assert "%runmod [OPTIONS] MODULE [OPTIONS] [-- ARG ...]" in doc.splitlines()[2]
    assert len(doc.splitlines()) < 100


def test_completion_of_options(ip: InteractiveShell) -> None:
    """README, "Tab completion": short options too, `--no-*` once typed, a description each."""
    for prefix in ("-", "--"):
        offered = complete(ip, f"%runmod {prefix}")
        shorts = [c for c in offered if not c.startswith("--")]
        assert offered[: len(shorts)] == shorts, prefix  # the short options first
        assert {"-h", "-n", "-o", "-t", "-p", "-d", "-b", "-G"} <= set(shorts), prefix
        assert {"--merge", "--which", "--run-name", "--only"} <= set(offered)
        assert not any(c.startswith("--no-") for c in offered)
    assert complete(ip, "%runmod --no") == [
        "--no-reload",
        "--no-keep-state",
        "--no-alter-sys",
        "--no-isolated",
        "--no-merge",
        "--no-time",
    ]
    described = descriptions(ip, "%runmod -")
    assert described["-n"] == described["--run-name"] == "__name__ in the module"
    assert described["--which"] == "Print what would run, and run nothing"
    assert described["--merge"] == "Afterwards, copy the names the module bound …"
    assert descriptions(ip, "%runmod --no-m") == {"--no-merge": "turns --merge off"}
    # What an option goes with comes after what it does; argparse's %% is one %.
    assert described["-s"] == "Sort by KEY (with -p)"
    assert described["-p"] == "Profile with cProfile, as %prun does"
    assert described["--timeout"].endswith("(with --subprocess)")


def descriptions(ip: InteractiveShell, line: str) -> dict[str, str]:
    """Each completion's description (its type), as read: no-break spaces and hyphens are
    there so that JupyterLab's popup does not wrap it."""
    readable = str.maketrans({"\N{NO-BREAK SPACE}": " ", "\N{NON-BREAKING HYPHEN}": "-"})
    with provisionalcompleter():
        return {
            c.text: c.type.translate(readable) for c in ip.Completer.completions(line, len(line))
        }


def test_no_completion_for_an_option_s_value(ip: InteractiveShell) -> None:
    """After -n, --only, --exclude: no Python names; the one empty match inserts nothing."""
    for line in (
        "%runmod -n ",
        "%runmod m --run-name x",
        "%runmod m --only res",
        "%runmod --exclude ",
    ):
        assert complete(ip, line) == [""], line
    assert complete(ip, "%runmod -n x --me") == ["--merge"]  # the value given, options again


def test_html_result_has_header_and_escapes(ip: InteractiveShell, make_package: Any) -> None:
    name = make_package(
        {"__init__.py": "", "h.py": "tag = '<b>&</b>'\nclass Weird: pass\nw = Weird()\n"}
    )
    html = ip.run_line_magic("runmod", f"{name}.h -o")._repr_html_()
    shown = result_html.read(html)
    assert shown.header.startswith(f"RunResult {name}.h ok 3 names bound")
    assert "&lt;b&gt;&amp;&lt;/b&gt;" in html and "<b>&</b>" not in html
    assert [row[:2] for row in shown.rows] == [("tag", "str"), ("Weird", "type"), ("w", "Weird")]


def test_reload_notices_an_import_while_another_module_goes(
    ip: InteractiveShell, pkg: str, make_package: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cell that imports one module and removes another leaves sys.modules as long."""
    ip.run_cell(f"import {pkg}.sub.deep")
    ip.run_cell(f"import sys, {pkg}.helper\ndel sys.modules[{pkg + '.sub.deep'!r}]")
    _edit(make_package.root / pkg / "helper.py", "factor = 2\n")
    capsys.readouterr()
    assert ip.run_cell(f"%runmod {pkg}").success
    assert capsys.readouterr().out == f"Reloaded: {pkg}.helper\n"


@pytest.mark.parametrize("fails", [False, True], ids=["run-ends-well", "run-fails"])
def test_reload_notices_a_helper_a_cell_body_imported(
    ip: InteractiveShell, make_package: Any, capsys: pytest.CaptureFixture[str], fails: bool
) -> None:
    """The body imports the helper just before the run; the run writes next to its module,
    so that finding it next time looks again (and puts the previous run's module last; a
    failed run puts it back where it was)."""
    name = make_package(
        {
            "__init__.py": "",
            "y.py": "VALUE = 1\n",
            "x.py": "import os\n"
            "open(os.path.join(os.path.dirname(__file__), 'out.txt'), 'w').write('done')\n"
            "value = y.VALUE if 'y' in globals() else None\n"
            f"if {fails} and value is not None:\n    raise ValueError(value)\n",
        }
    )
    body = f"from {name} import y"
    assert ip.run_cell(f"%runmod {name}.x").success
    assert ip.run_cell(f"%%runmod {name}.x\n{body}").success is not fails
    assert ipy_runmod.last_result()["value"] == 1  # type: ignore[index]
    _edit(make_package.root / name / "y.py", "VALUE = 2\n")
    capsys.readouterr()
    assert ip.run_cell(f"%%runmod {name}.x\n{body}").success is not fails
    # As python -m, which imports the helper as it is now.
    assert capsys.readouterr().out.startswith(f"Reloaded: {name}.y\n")
    assert ipy_runmod.last_result()["value"] == 2  # type: ignore[index]


def test_a_run_stays_registered_as_its_module(
    ip: InteractiveShell, make_package: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """README, "Guarantees": as an import would leave it, and replaced by the next run."""
    name = make_package(
        {
            "__init__.py": "",
            "m.py": "import sys\nprint('ran')\nclass C:\n    pass\n"
            "if sys.argv[1:] == ['fail']:\n    raise ValueError('failed')\n",
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # runpy's "found in sys.modules" would be an error
        for _ in range(2):
            assert ip.run_cell(f"%runmod {name}.m --merge").success
            assert vars(sys.modules[f"{name}.m"]) is ipy_runmod.last_result().globals
    assert ip.run_cell(f"import {name}.m\nsame = {name}.m.C is C").success
    assert ip.user_ns["same"] is True
    assert capsys.readouterr().out == "ran\nran\n"  # the import ran nothing
    # Other run names, and failed runs, leave the entry as it was.
    kept = sys.modules[f"{name}.m"]
    for line in (f"{name}.m --main", f"{name}.m -n other", f"{name}.m -- fail"):
        ip.run_cell(f"%runmod {line}")
        assert sys.modules[f"{name}.m"] is kept
    assert "other" not in sys.modules


def test_a_main_target_imported_by_a_sibling_is_fresh(
    ip: InteractiveShell, make_package: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Under python -m, a sibling importing the target by its real name gets its new code."""
    name = make_package(
        {
            "__init__.py": "",
            "cli.py": "VALUE = 1\nif __name__ == '__main__':\n    from . import other\n"
            "    print(other.value())\n",
            "other.py": "from . import cli\n\ndef value():\n    return cli.VALUE\n",
        }
    )
    assert ip.run_cell(f"%runmod {name}.cli --main").success
    assert capsys.readouterr().out == "1\n"
    _edit(
        make_package.root / name / "cli.py",
        "VALUE = 2\nif __name__ == '__main__':\n"
        "    from . import other\n    print(other.value())\n",
    )
    assert ip.run_cell(f"%runmod {name}.cli --main").success
    assert capsys.readouterr().out.splitlines()[-1] == "2"


def test_module_arguments_complete_as_file_names(
    ip: InteractiveShell, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README, "Tab completion": after `--`, file names as in a shell, no Python names."""
    (tmp_path / "a1.csv").write_text("")
    (tmp_path / "a2.csv").write_text("")
    monkeypatch.chdir(tmp_path)
    assert complete(ip, "%runmod json.tool --main -- a") == ["a1.csv", "a2.csv"]
