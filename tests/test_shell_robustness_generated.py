"""Generated %runmod lines (hypothesis) through a real shell: only the allowed outcomes.

Lines are built from valid and invalid pieces: options and their values, junk options,
good, failing, exiting, misspelt, nonexistent, relative and malformed module names,
quotes, `--` and arbitrary text, `{expr}` / `$name`, unicode and empty strings. After
every line, one of these happened, and nothing else:

- the run (or `--which`) happened;
- a UsageError with a one-line message, and nothing ran;
- the module's own exception (raised by code of the throwaway package), as itself;
- ModuleExit with a one-line message, for a module that exited with a non-zero status.

And the invariants (conftest's `Invariants`) hold after each line.
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Invariants, MakePackage
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import ipy_runmod
from ipy_runmod.magics import ModuleExit, _split

# `%runmod rmgen.helper` after `rmgen.ok` imported it, or `%runmod rmgen.ok` after
# `rmgen.ok.deeper` imported its parent: runpy warns the same way about these.
pytestmark = [
    pytest.mark.shell,
    pytest.mark.filterwarnings(
        "ignore:.* found in sys.modules after import of package:RuntimeWarning"
    ),
]

PKG = "rmgen"

FILES = {
    "__init__.py": "",
    "__main__.py": "import sys\nran_main = list(sys.argv)\n",
    "ok.py": """
        import sys
        from . import helper
        seen_argv = list(sys.argv)
        registered = sys.modules[__name__].__dict__ is globals()
        value = helper.factor
    """,
    "helper.py": "factor = 10\n",
    "fails.py": "partial = 1\nraise ValueError('fails on purpose')\n",
    "exit0.py": "import sys\npartial = 1\nsys.exit(0)\n",
    "exit2.py": "import sys\npartial = 1\nsys.exit(2)\n",
    "exitmsg.py": "import sys\nsys.exit('a message')\n",
    "exitobj.py": "raise SystemExit(object())\n",
    "stop.py": "class Stop(BaseException):\n    pass\npartial = 1\nraise Stop('stop')\n",
    "uses_ns.py": "doubled = [2 * v for v in data]\n",
    "binds.py": "result_a = 1\nother = 'x'\n_private = 3\nIn = 'clobbered'\n_ = 'u'\n",
    "nomain/__init__.py": "",
    "badinit/__init__.py": "raise ImportError('badinit on purpose')\n",
    "badinit/mod.py": "x = 1\n",
    "sub/__init__.py": "",
    "sub/__main__.py": "ran_sub = True\n",
    "sub/deep.py": "from .. import helper\ndeep = helper.factor\n",
}

GOOD_MODULES = [
    f"{PKG}.ok",
    PKG,
    f"{PKG}.fails",
    f"{PKG}.exit0",
    f"{PKG}.exit2",
    f"{PKG}.exitmsg",
    f"{PKG}.exitobj",
    f"{PKG}.stop",
    f"{PKG}.uses_ns",
    f"{PKG}.binds",
    f"{PKG}.sub",
    f"{PKG}.sub.deep",
    f"{PKG}.__main__",
    f"{PKG}.helper",
]

BAD_MODULES = [
    f"{PKG}.okk",  # misspelt: "did you mean"
    f"{PKG}.nothere",
    f"{PKG}.nomain",  # a package without __main__
    f"{PKG}.badinit",  # a package whose __init__ raises
    f"{PKG}.badinit.mod",
    f"{PKG}.sub.nothere",
    f"{PKG}.ok.deeper",  # the parent is not a package
    f"{PKG}_missing",  # top-level and nonexistent
    f"{PKG}n",  # top-level and misspelt
    ".ok",
    f".{PKG}.ok",
    "..",
    ".",
    f"{PKG}..ok",
    f"{PKG}.",
    "1abc",
    f"{PKG}/ok.py",
    f"{PKG}.ok.py",
    "módulo",
    f"{PKG}.ök",
    "sys",
    "builtins",
    f"'{PKG}.ok'",
    f'"{PKG}.ok"',
    "'a b'",
    "''",
    '""',
    f"{PKG}.ok\\ x",
]

FLAGS = [
    "--merge",
    "--no-merge",
    "--main",
    "-o",
    "--result",
    "-t",
    "--time",
    "--no-time",
    "--which",
    "--isolated",
    "--no-isolated",
    "--no-alter-sys",
    "--alter-sys",
    "--reload",
    "--no-reload",
]

VALUES = {
    "-n": ["custom", "__main__", "'a b'", "''", f"{PKG}.helper", PKG, "sys", "$modname"],
    "--run-name": ["custom", "__main__", "x.y"],
    "--only": ["'a*,b'", "result_a", "''", "'*'", "'[!_]*'", "','", "seen_argv"],
    "--exclude": ["x", "'_*'", "'*'", "'result*,other'"],
}

JUNK = [
    "--bogus",
    "-",
    "---",
    "--mer",
    "-x",
    "--merge=1",
    "--run-name=",
    "--only",
    "-n",
    "--=",
    "-o-",
    "--main=yes",
    "-nfoo",
    "--exclude",
]

EXPANSIONS = [
    "{1+1}",
    "{undefined_name}",
    "{",
    "}",
    "{{x}}",
    "{modname}",
    "$modname",
    "$undefined",
    "$$",
    "{1/0}",
    "{'a b'}",
    "${modname}",
    "'{multiline}'",
    "$multiline",
]

QUOTES = ["'", '"', "'unbalanced", '"a b"', "\\", "'it''s'", '"\\""', "''", '""']

# Anything a user can type on one line: no surrogates, controls or line separators
# (a line separator would end the magic's line and start Python code).
typed_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), max_size=10
)

flag = st.sampled_from(FLAGS)
option_with_value = st.sampled_from(sorted(VALUES)).flatmap(
    lambda opt: st.one_of(st.sampled_from(VALUES[opt]), typed_text.map(repr)).map(
        lambda value: f"{opt} {value}"
    )
)
junk = st.sampled_from(JUNK)
option = st.one_of(flag, flag, option_with_value, junk)
module = st.one_of(
    st.sampled_from(GOOD_MODULES), st.sampled_from(GOOD_MODULES), st.sampled_from(BAD_MODULES)
)
dashdash = st.one_of(
    st.just("--"),
    st.lists(
        st.one_of(typed_text, st.sampled_from(EXPANSIONS), st.sampled_from(QUOTES)), max_size=4
    ).map(lambda words: " ".join(["--", *words])),
)
piece = st.one_of(
    option,
    module,
    dashdash,
    st.sampled_from(EXPANSIONS),
    st.sampled_from(QUOTES),
    typed_text,
    st.just(""),
)

#: A plausible line: options, one module, options, maybe `--` and arguments.
structured_line = st.builds(
    lambda before, mod, after, tail: " ".join([*before, mod, *after, tail]),
    st.lists(option, max_size=3),
    module,
    st.lists(option, max_size=3),
    st.one_of(st.just(""), dashdash),
)

#: Anything made of the pieces, in any order.
chaos_line = st.lists(piece, max_size=7).map(" ".join)

#: Raw text of any kind given straight to run_line_magic (no cell: controls allowed).
raw_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)
raw_line = st.one_of(
    st.builds(lambda m, t: f"{m} -- {t}", st.sampled_from(GOOD_MODULES), raw_text),
    st.builds(lambda m, t: f"{m} {t}", st.sampled_from(GOOD_MODULES), raw_text),
    raw_text,
)

SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def gen(ip: InteractiveShell, make_package: MakePackage) -> Iterator[Path]:
    """The throwaway package; the shell displays nothing (no `_`, `Out` changes)."""
    make_package(FILES, PKG)
    interactivity = ip.ast_node_interactivity
    ip.ast_node_interactivity = "none"
    ip.user_ns.update(data=[1, 2], modname=f"{PKG}.ok", multiline="line one\nline two")
    yield make_package.root / PKG  # type: ignore[attr-defined]
    ip.ast_node_interactivity = interactivity


def _innermost_file(error: BaseException) -> str:
    tb = error.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename if tb is not None else ""


def run_line(ip: InteractiveShell, package: Path, line: str, *, as_cell: bool) -> str:
    """Run one %runmod line like a user; assert an allowed outcome and the invariants."""
    check = Invariants(ip.user_ns, ip.user_ns_hidden)
    previous = ipy_runmod.last_result()
    error: BaseException | None
    if as_cell:
        result = ip.run_cell(f"%runmod {line}", store_history=False)
        error = result.error_before_exec or result.error_in_exec
    else:
        try:
            ip.run_line_magic("runmod", line)
            error = None
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            error = e
    res = ipy_runmod.last_result()
    ran = res is not None and res is not previous
    if error is None:
        outcome = "ran" if ran else "which"
        assert not ran or res.ok
    elif isinstance(error, UsageError):
        outcome = "usage"
        assert "\n" not in str(error), repr(str(error))
        assert str(error).strip(), "an empty usage message"
        assert not ran, f"a run happened before {error!r}"
    elif isinstance(error, ModuleExit):
        outcome = "exit"
        assert "\n" not in str(error), repr(str(error))
        assert ran and res.exception is error.__cause__ and res.exit_code not in (0, None)
    else:
        outcome = f"module {type(error).__name__}"
        where = _innermost_file(error)
        assert where.startswith(str(package) + os.sep), (
            f"{error!r} escaped the magic from {where}, not from the module's code"
        )
        assert not ran or res.exception is error  # the very same exception object
    if ran:
        check.check(merged=res.merged, run_names=(res.run_name, res.spec.name))
    else:
        check.check()
    return outcome


def _opens_the_debugger(line: str) -> bool:
    """`-d` (alone, or bundled as in `-od`) stops at the module's first line and waits
    for the user to type: generated text makes it now and then; other tests cover it."""
    try:
        return bool(_split(line).words.debug)
    except Exception:
        return False  # not a line that parses: it runs nothing


def _drive(
    ip: InteractiveShell, package: Path, lines: Any, count: int, *, as_cell: bool
) -> Counter[str]:
    """Run `count` generated lines, each with an allowed outcome and the invariants."""
    outcomes: Counter[str] = Counter()

    @settings(SETTINGS, max_examples=count)
    @given(line=lines)
    def one(line: str) -> None:
        assume(not _opens_the_debugger(line))
        outcomes[run_line(ip, package, line, as_cell=as_cell)] += 1

    one()
    assert sum(outcomes.values()) >= count
    return outcomes


def test_structured_lines(ip: InteractiveShell, gen: Path) -> None:
    outcomes = _drive(ip, gen, structured_line, 1500, as_cell=True)
    # the generator reaches every kind of outcome, so the test can catch a wrong one
    for kind in ("ran", "which", "usage", "exit", "module ValueError", "module Stop"):
        assert outcomes[kind] > 0, outcomes


def test_chaos_lines(ip: InteractiveShell, gen: Path) -> None:
    outcomes = _drive(ip, gen, chaos_line, 2000, as_cell=True)
    assert outcomes["usage"] > 0 and outcomes["ran"] > 0, outcomes


def test_raw_text_through_run_line_magic(ip: InteractiveShell, gen: Path) -> None:
    outcomes = _drive(ip, gen, raw_line, 1500, as_cell=False)
    assert outcomes["usage"] > 0 and outcomes["ran"] > 0, outcomes


#: Words that IPython's expansion leaves alone (no braces, no dollar).
plain_word = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="{}$"), max_size=8
)


def test_module_arguments_arrive_exactly(ip: InteractiveShell, gen: Path) -> None:
    @settings(SETTINGS, max_examples=500)
    @given(words=st.lists(plain_word, max_size=5), main=st.booleans())
    def one(words: list[str], main: bool) -> None:
        check = Invariants(ip.user_ns, ip.user_ns_hidden)
        tail = " ".join(shlex.quote(word) for word in words)
        res = ip.run_line_magic("runmod", f"{PKG}.ok -o {'--main' if main else ''} -- {tail}")
        assert res["seen_argv"] == [res.file, *words]
        assert res["registered"]
        check.check(run_names=(res.run_name, f"{PKG}.ok"))

    one()


@pytest.mark.parametrize(
    "line",
    [
        f"{PKG}.ok '{{multiline}}'",  # an argument before `--`
        f"{PKG}.ok --bogus '{{multiline}}'",
        "'{multiline}' extra",  # the module name is quoted back unescaped
        f"{PKG}.ok --main -n '{{multiline}}'",
    ],
)
def test_usage_errors_are_one_line(ip: InteractiveShell, gen: Path, line: str) -> None:
    check = Invariants(ip.user_ns, ip.user_ns_hidden)
    previous = ipy_runmod.last_result()
    result = ip.run_cell(f"%runmod {line}", store_history=False)
    assert ipy_runmod.last_result() is previous  # nothing ran
    check.check()
    assert isinstance(result.error_in_exec, UsageError)
    assert "\n" not in str(result.error_in_exec), str(result.error_in_exec)
