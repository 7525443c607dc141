"""What %runmod says: the words it passes on, its suggestions, warnings and tracebacks.

Each is held against what a shell, `python -m` or a plain IPython cell would show (README,
"Usage" and "Errors").
"""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import ipy_runmod

pytestmark = pytest.mark.shell

ARGV = """
import sys
if __name__ == "__main__":
    seen = sys.argv[1:]
"""


@pytest.fixture
def pkg(make_package: Any) -> str:
    return make_package(
        {
            "__init__.py": "",
            "cli.py": ARGV,
            "plain.py": "import sys\nseen = sys.argv[1:]\n",
            "bad.py": "x = 1\ndef f(:\n    pass\n",
            "group.py": """
                def fail():
                    raise ExceptionGroup("several", [ValueError(1), TypeError(2)])
                fail()
            """,
            "fails.py": "def inner():\n    raise ValueError('bad value')\ninner()\n",
            "mod.py": "x = 1\n",
        }
    )


def argv_seen(ip: InteractiveShell, line: str) -> list[str]:
    result = ip.run_line_magic("runmod", f"-o {line}")
    return list(result["seen"])


def test_single_quoted_words_are_literal_as_in_a_shell(ip: InteractiveShell, pkg: str) -> None:
    ip.user_ns.update(x="X", d={"a": 5})
    line = (
        f"{pkg}.cli --main -- '^\\d{{3}}-\\d{{4}}$' '$x' '{{x}}' "
        "{x} $x \"{x} and $x\" {d['a']} \"{d['a']}\" {{x}}"
    )
    expected = ["^\\d{3}-\\d{4}$", "$x", "{x}", "X", "X", "X and X", "5", "5", "{x}"]
    assert argv_seen(ip, line) == expected
    # The same words in a POSIX shell, with the notebook's expansions done:
    shell = subprocess.run(
        ["sh", "-c", "printf '%s\\n' '^\\d{3}-\\d{4}$' '$x' '{x}'"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout.splitlines() == expected[:3]


def test_the_suggested_line_keeps_every_option(ip: InteractiveShell, pkg: str) -> None:
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("runmod", f"{pkg}.cli --main -t --factor 2 -- 'a b'")
    message = str(caught.value)
    suggested = message.partition("as in: ")[2]
    assert suggested == f"%runmod {pkg}.cli --main -t -- --factor 2 'a b'"
    # Pasted back, it runs the module with those arguments.
    res = ip.run_line_magic("runmod", "-o " + suggested.removeprefix("%runmod "))
    assert res["seen"] == ["--factor", "2", "a b"]


def test_arguments_without_main_say_how_to_run_the_main_block(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    res = ip.run_line_magic("runmod", f"-o {pkg}.cli -n job -- --alpha 1")
    assert res.ok and "seen" not in res  # the run happened as asked
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and 'if __name__ == "__main__":' in out
    assert out.endswith(f"%runmod -o {pkg}.cli -n job --main -- --alpha 1\n")
    # Not said when the block ran, when there is none, or without arguments.
    for line in (f"{pkg}.cli --main -- --alpha 1", f"{pkg}.plain -- --alpha 1", f"{pkg}.cli"):
        ip.run_line_magic("runmod", line)
        assert capsys.readouterr().out == ""


def test_an_imported_module_is_warned_of_once_worded_for_a_session(
    ip: InteractiveShell, pkg: str
) -> None:
    __import__(f"{pkg}.mod")
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        ip.run_line_magic("runmod", f"{pkg}.mod --which")  # runs nothing: says nothing
        assert records == []
        for _ in range(3):
            ip.run_line_magic("runmod", f"{pkg}.mod")
    assert len(records) == 1
    warning = records[0]
    assert warning.category is RuntimeWarning
    assert f"'{pkg}.mod' found in sys.modules after import of package '{pkg}'" in str(
        warning.message
    )
    assert "fresh copy" in str(warning.message)
    assert warning.filename.endswith("mod.py")  # the module, not ipy_runmod's code
    # The drop-in for runpy still warns as runpy does, every time.
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        ipy_runmod.run_module(f"{pkg}.mod")
    assert len(records) == 1 and "runpy" in records[0].filename  # `<frozen runpy>` in 3.11


def shown(ip: InteractiveShell, source: str, capsys: pytest.CaptureFixture[str]) -> str:
    """What a user sees of a failing cell; the cell must fail."""
    capsys.readouterr()
    result = ip.run_cell(source, store_history=True)
    assert not result.success
    out = capsys.readouterr()
    return out.out + out.err


RUNNER_FRAMES = ("run_code", "run_line_magic", "run_cell_magic", "magics.py", "_core.py", "runpy")


def test_a_syntax_error_shows_the_place_alone_like_a_cells_own(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = shown(ip, f"%runmod {pkg}.bad", capsys)
    file = Path(sys.modules[pkg].__path__[0], "bad.py")
    assert [line.strip() for line in text.strip().splitlines()] == [
        f"File {file}:2",
        "def f(:",
        "^",
        "SyntaxError: invalid syntax",
    ]
    # A plain cell's own SyntaxError, for comparison: the place alone too.
    plain = shown(ip, "def f(:\n    pass\n", capsys)
    assert "Traceback" not in plain and "Traceback" not in text


def test_a_syntax_error_in_the_body_names_the_cell_and_its_line(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    number = ip.execution_count
    text = shown(ip, f"%%runmod {pkg}.mod\nalpha = 1\nbeta = (\n", capsys)
    lines = [line.strip() for line in text.strip().splitlines()]
    assert lines[0] == f"Cell In[{number}], line 3"  # the cell's third line, as seen
    assert lines[1] == "beta = ("
    assert lines[-1].endswith("Error: incomplete input")  # 3.13: _IncompleteInputError
    assert isinstance(sys.last_value, SyntaxError)
    for runner in RUNNER_FRAMES:
        assert runner not in text


def test_an_error_in_the_body_shows_from_the_body_on(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    number = ip.execution_count
    text = shown(ip, f"%%runmod {pkg}.mod\nalpha = 1\nbeta = 1 / 0\n", capsys)
    assert f"Cell In[{number}], line 3" in text and "beta = 1 / 0" in text
    for runner in RUNNER_FRAMES:
        assert runner not in text, f"{runner} in:\n{text}"
    # A silent execution is not counted: the body is named after the cell it is in.
    silent = ip.run_cell(f"%%runmod {pkg}.mod\nbeta = 1 / 0\n", silent=True)
    assert isinstance(silent.error_in_exec, ZeroDivisionError)
    assert f"Cell In[{ip.execution_count}], line 2" in capsys.readouterr().out


def test_an_exception_group_shows_from_the_module_on(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = shown(ip, f"%runmod {pkg}.group", capsys)
    assert "group.py" in text and "fail()" in text and "ExceptionGroup: several" in text
    assert "ValueError: 1" in text and "TypeError: 2" in text
    for runner in RUNNER_FRAMES:
        assert runner not in text, f"{runner} in:\n{text}"
    assert isinstance(sys.last_value, ExceptionGroup)


def test_the_modules_exception_is_left_as_it_raised_it(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text = shown(ip, f"%runmod {pkg}.fails", capsys)
    assert "fails.py" in text and "bad value" in text
    exc = sys.last_value
    assert isinstance(exc, ValueError) and vars(exc) == {}
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is ValueError and back.args == ("bad value",)
    # The shell's own handling of exceptions is as before for the next cell.
    assert ip.custom_exceptions == ()
    other = shown(ip, "raise ValueError('from a cell')", capsys)
    assert "from a cell" in other and "Cell In[" in other


def test_a_caught_exception_gives_the_shell_its_handling_back(
    ip: InteractiveShell, pkg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ip.run_cell(f"try:\n    %runmod {pkg}.fails\nexcept ValueError:\n    caught = True\n")
    assert ip.user_ns["caught"] is True
    assert ip.custom_exceptions == ()
