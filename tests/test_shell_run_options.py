"""What `%run` and a shell give, in a real shell: globs, -h, -p and -d/-b."""

from __future__ import annotations

import io
import json
import os
import pstats
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core import debugger
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import ipy_runmod

pytestmark = pytest.mark.shell

ECHO_ARGV = "import json, sys\nprint(json.dumps(sys.argv[1:]))\n"
SLOW = """
    def slow_part(n):
        return sum(i * i for i in range(n))

    def fast_part():
        return 1

    total = slow_part(20_000) + fast_part()
"""
DEBUGGED = """
    from . import helper
    a = 1
    b = helper.twice(a)
    print("b is", b)
"""
HELPER = """
    def twice(v):
        w = v * 2
        return w
"""


@pytest.fixture
def pkg(make_package: Any) -> str:
    return make_package(
        {
            "__init__.py": "",
            "echo.py": ECHO_ARGV,
            "slow.py": SLOW,
            "fails.py": SLOW + "    raise ValueError('after the work')\n",
            "dmod.py": DEBUGGED,
            "helper.py": HELPER,
            "never_run.py": "# a comment\nraise RuntimeError('this module must not run')\n",
        }
    )


# --- globbing ---------------------------------------------------------------------


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory with data files, and a home directory with notes."""
    work, home = tmp_path / "work", tmp_path / "home"
    for path in ["data/b.csv", "data/a.csv", "data/c.txt", "data/ab.csv", "data/.hidden.csv"]:
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text("")
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "todo.md").write_text("")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    return work


SHELL_WORDS = [
    "data/*.csv",
    "data/?.csv",
    "data/[ab].csv data/[!a]*",
    "data/*.csv data/*.txt",
    "--input=data/*.csv",
    "nothing*.here",
    "'data/*.csv'",
    '"data/?.csv"',
    r"data/\*.csv",
    "data/'*'.csv",
    "~ ~/notes/*.md '~/notes'",
    "data/a.csv",
]


@pytest.mark.parametrize("words", SHELL_WORDS)
def test_module_arguments_are_globbed_as_a_posix_shell_does(
    ip: InteractiveShell,
    pkg: str,
    files: Path,
    make_package: Any,
    capsys: pytest.CaptureFixture[str],
    words: str,
) -> None:
    """README, Usage: the same words after `--` reach the module as from `sh -c 'python -m'`."""
    env = dict(os.environ, PYTHONPATH=str(make_package.root), LC_ALL="C")
    shell = subprocess.run(
        ["sh", "-c", f"{sys.executable} -m {pkg}.echo {words}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    ip.run_line_magic("runmod", f"{pkg}.echo --main -- {words}")
    assert json.loads(capsys.readouterr().out) == json.loads(shell.stdout)


def test_minus_g_passes_the_words_as_typed(
    ip: InteractiveShell, pkg: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_line_magic("runmod", f"{pkg}.echo --main -G -- data/*.csv ~/notes")
    assert json.loads(capsys.readouterr().out) == ["data/*.csv", "~/notes"]


def test_globs_are_matched_again_at_each_run(
    ip: InteractiveShell, pkg: str, files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same line, run after a file appeared, sees it (the split line is cached)."""
    ip.run_line_magic("runmod", f"{pkg}.echo --main -- data/*.txt")
    (files / "data" / "d.txt").write_text("")
    ip.run_line_magic("runmod", f"{pkg}.echo --main -- data/*.txt")
    first, second = capsys.readouterr().out.splitlines()
    assert json.loads(first) == ["data/c.txt"]
    assert json.loads(second) == ["data/c.txt", "data/d.txt"]


# --- -h / --help ------------------------------------------------------------------


@pytest.mark.parametrize("line", ["-h", "--help", "{pkg}.never_run --main -h", "--help -d"])
def test_help_shows_the_usage_and_runs_nothing(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    assert ip.run_line_magic("runmod", line.format(pkg=pkg)) is None
    out = capsys.readouterr().out
    assert out.startswith("usage: %runmod [OPTIONS] MODULE [OPTIONS] [-- ARG ...]\n")
    assert "%runmod?" in out.splitlines()[-1]
    for option in ["--main", "--merge", "-p", "-s KEY", "-d", "-b [FILE:]LINE", "-G"]:
        assert option in out
    assert ipy_runmod.last_result() is None or ipy_runmod.last_result().module != (
        f"{pkg}.never_run"
    )


# --- -p ---------------------------------------------------------------------------


@pytest.fixture
def printed_pager(monkeypatch: pytest.MonkeyPatch) -> None:
    """IPython's pager prints on a dumb terminal (else it may start `less`)."""
    monkeypatch.setenv("TERM", "dumb")


def _report_rows(text: str) -> list[str]:
    """The function column of a pstats report, row by row."""
    rows = text.split("filename:lineno(function)", 1)[1].strip().splitlines()
    return [row.split(None, 5)[-1] for row in rows if row.strip()]


def test_profile_shows_the_module_s_functions_and_none_of_ours(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str], printed_pager: None
) -> None:
    ip.run_line_magic("runmod", f"{pkg}.slow -p")
    out = capsys.readouterr().out
    assert "function calls" in out and "Ordered by: internal time" in out
    rows = _report_rows(out)
    assert any("slow.py" in row and "(slow_part)" in row for row in rows)
    assert any("(fast_part)" in row for row in rows)
    others = {row for row in rows if "slow.py" not in row}
    # What the module called (sum), what ran it (exec), and the profiler stopping.
    assert others == {
        "{built-in method builtins.sum}",
        "{built-in method builtins.exec}",
        "{method 'disable' of '_lsprof.Profiler' objects}",
    }


def test_profile_sort_and_limit_as_prun(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str], printed_pager: None
) -> None:
    ip.run_line_magic("runmod", f"{pkg}.slow -p -s cumulative -l 2")
    out = capsys.readouterr().out
    assert "Ordered by: cumulative time" in out and "due to restriction <2>" in out
    assert len(_report_rows(out)) == 2


def test_profile_saves_to_files_and_q_shows_nothing(
    ip: InteractiveShell, pkg: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dump, text = tmp_path / "slow.prof", tmp_path / "slow.txt"
    ip.run_line_magic("runmod", f"{pkg}.slow -p -q -D {dump} -T {text}")
    out = capsys.readouterr().out
    assert "function calls" not in out
    assert out.splitlines() == [
        f"*** Profile stats marshalled to file {str(dump)!r}.",
        f"*** Profile printout saved to text file {str(text)!r}.",
    ]
    names = {func for _, _, func in pstats.Stats(str(dump)).stats}
    assert {"slow_part", "fast_part"} <= names
    assert "(slow_part)" in text.read_text()


def test_profile_of_a_failing_module_shows_the_report_then_fails(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str], printed_pager: None
) -> None:
    result = ip.run_cell(f"%runmod {pkg}.fails -p")
    assert isinstance(result.error_in_exec, ValueError)
    out = capsys.readouterr().out
    assert "(slow_part)" in out
    assert out.index("(slow_part)") < out.index("ValueError: after the work")


# --- -d / -b ----------------------------------------------------------------------


class _FakeInput(io.TextIOBase):
    """What the user types at the debugger's prompt, line by line (as IPython's tests)."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = iter(lines)

    def readline(self, size: int | None = -1) -> str:
        line = next(self.lines)
        print(line)  # as if echoed by the terminal
        return line + "\n"


@pytest.fixture
def typed(ip: InteractiveShell, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`typed([...])`: the lines the debugger reads. IPython's own debugger, as a shell
    with a simple prompt has it (the terminal's reads through prompt_toolkit)."""
    monkeypatch.setattr(ip.InteractiveTB, "debugger_cls", debugger.Pdb)
    monkeypatch.setattr(ip.InteractiveTB, "pdb", None)
    trace = sys.gettrace()

    def typed(lines: list[str]) -> None:
        monkeypatch.setattr(sys, "stdin", _FakeInput(lines))

    yield typed
    assert sys.gettrace() is trace, "the debugger left its trace function behind"


def test_debug_stops_at_the_module_s_first_line(
    ip: InteractiveShell, pkg: str, typed: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    typed(["p 41 + 1", "n", "n", "p a", "c"])
    ip.run_line_magic("runmod", f"{pkg}.dmod -d")
    out = capsys.readouterr().out
    assert out.startswith("NOTE: Enter 'c' at the ipdb> prompt to continue execution.\n")
    first_stop = out.index("dmod.py(2)<module>()")  # line 1 is the blank one of dedent
    assert "from . import helper" in out[first_stop:].splitlines()[2]
    assert "ipdb> p 41 + 1\n42\n" in out and "ipdb> p a\n1\n" in out
    assert out.rstrip().endswith("b is 2")
    result = ipy_runmod.last_result()
    assert result is not None and result.ok and result["b"] == 2


def test_debug_with_a_breakpoint_in_the_module_stops_only_there(
    ip: InteractiveShell, pkg: str, typed: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    typed(["p a, b", "c"])
    ip.run_line_magic("runmod", f"{pkg}.dmod -d -b 5")
    out = capsys.readouterr().out
    assert f"Breakpoint 1 at {ip.run_line_magic('runmod', f'{pkg}.dmod --which -o').file}:5" in out
    assert "dmod.py(2)" not in out and "dmod.py(5)<module>()" in out
    assert "ipdb> p a, b\n(1, 2)\n" in out and "b is 2" in out


def test_debug_with_a_breakpoint_in_another_file(
    ip: InteractiveShell,
    pkg: str,
    make_package: Any,
    typed: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(make_package.root / pkg)
    typed(["p v", "c"])
    ip.run_line_magic("runmod", f"{pkg}.dmod -d -b helper.py:3")
    out = capsys.readouterr().out
    assert "dmod.py(" not in out.split("helper.py(3)twice()")[0]
    assert "ipdb> p v\n1\n" in out and "b is 2" in out


def test_quit_in_the_debugger_ends_the_run_quietly(
    ip: InteractiveShell, pkg: str, typed: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    typed(["n", "q"])
    result = ip.run_cell(f"%runmod {pkg}.dmod -d --merge")
    assert result.success
    assert "b is 2" not in capsys.readouterr().out
    assert "helper" in ip.user_ns and "a" not in ip.user_ns  # bound before the quit: merged
    assert ip.run_cell("c = 3").success and ip.user_ns["c"] == 3


def test_debug_of_a_missing_module_is_the_usage_error_alone(
    ip: InteractiveShell, typed: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(UsageError, match="No module named 'rmpkg_nowhere'"):
        ip.run_line_magic("runmod", "rmpkg_nowhere -d")
    assert capsys.readouterr().out == ""


BAD_LINES = [
    ("{pkg}.never_run -s time", "-s is a profiler option: it goes with -p"),
    ("{pkg}.never_run -q", "-q is a profiler option: it goes with -p"),
    ("{pkg}.never_run -b 2", "-b sets a breakpoint for the debugger: it goes with -d"),
    ("{pkg}.never_run -p -d", "-p and -d cannot be combined; give one of them"),
    ("{pkg}.never_run -p -s bogus", "-s bogus: not a sort key of pstats"),
    ("{pkg}.never_run -d -b 99", "has no line 99 with code"),
    ("{pkg}.never_run -d -b 1", "line 1 of "),
    ("{pkg}.never_run -d -b nowhere.py:2", "-b nowhere.py:2: no such file nowhere.py"),
    ("{pkg}.never_run -d -b two", "-b two: give LINE or FILE:LINE"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_bad_profile_and_debug_options_are_one_line_usage_errors(
    ip: InteractiveShell, pkg: str, line: str, message: str, invariants: Any
) -> None:
    before, debugger_before = invariants(), ip.InteractiveTB.pdb
    with pytest.raises(UsageError) as info:
        ip.run_line_magic("runmod", line.format(pkg=pkg))
    assert message in str(info.value) and "\n" not in str(info.value)
    before.check()
    assert ip.InteractiveTB.pdb is debugger_before  # %debug's own debugger is left as it was
