"""The standard library's own command-line tools, run both ways and compared.

Each case runs `python -m TOOL ARGS` in a subprocess and `%runmod TOOL --main --isolated --
ARGS` in a fresh process hosting a real IPython (tests/differential_host.py), side by side,
each in its own copy of the same working directory. What a user sees must be the same
(README, "Like `python -m`"): the output, the error output, the exit status; where
`python -m` ends with a traceback or an exit message on stderr, the cell fails and shows
that error instead. Then the host's report must show the session as it was before the run.

A difference that is legitimate is normalised by the case, which says why in `why`.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.differential

HOST = Path(__file__).with_name("differential_host.py")
TIMEOUT = 120.0
TIMINGS = re.compile(r"\d+(\.\d+)?")
ADDRESSES = re.compile(r"\b0x[0-9a-f]+\b")
# What IPython runs for each write to its sys.stdout, which keeps the cell's output.
IPYTHON_WRITE = re.compile(r"^.*(/IPython/|/traitlets/|HistoryOutput).*\n", re.MULTILINE)

SAMPLE = '''\
"""A sample module for the tools to read.

>>> double(2)
4
"""

import sys


class Greeter:
    """Says hello."""

    def greet(self, name: str) -> str:
        return f"hello {name}"


def double(x: int) -> int:
    return 2 * x


if __name__ == "__main__":
    print(Greeter().greet(sys.argv[-1]), double(21))
'''

WRONG_DOCTEST = '''\
"""
>>> 1 + 1
3
"""
'''

TEST_SAMPLE = """\
import unittest

from sample import double


class TestDouble(unittest.TestCase):
    def test_double(self):
        self.assertEqual(double(2), 4)


def test_double_with_pytest():
    assert double(3) == 6
"""

TEST_FAILING = """\
def test_fails():
    assert 1 + 1 == 3
"""


def make_files(where: Path) -> None:
    """The files the cases read: the same in both working directories."""
    where.mkdir()
    (where / "x.json").write_text('{"b": 1, "a": [1, 2, {"c": null}]}\n')
    (where / "bad.json").write_text("{oops}\n")
    (where / "data.txt").write_text("héllo wörld = tab\there\n" * 3)
    (where / "data.b64").write_bytes(base64.encodebytes(b"decoded from base64\n"))
    (where / "sample.py").write_text(SAMPLE)
    (where / "wrong_doctest.py").write_text(WRONG_DOCTEST)
    (where / "broken.py").write_text("def f(:\n    pass\n")
    (where / "test_sample.py").write_text(TEST_SAMPLE)
    (where / "test_failing.py").write_text(TEST_FAILING)
    (where / "obj.pickle").write_bytes(pickle.dumps({"a": [1, 2.5, "three"]}, protocol=4))
    (where / "blob.txt.gz").write_bytes(gzip.compress(b"unzipped\n", mtime=0))
    with zipfile.ZipFile(where / "archive.zip", "w") as archive:
        archive.writestr(zipfile.ZipInfo("inside.txt", (2020, 1, 1, 0, 0, 0)), "in a zip\n")
    with tarfile.open(where / "archive.tar", "w") as archive:
        archive.add(where / "data.txt", arcname="data.txt")
    (where / "left").mkdir()
    (where / "right").mkdir()
    (where / "left" / "same.txt").write_text("same\n")
    (where / "right" / "same.txt").write_text("same\n")
    (where / "left" / "only-left.txt").write_text("left\n")
    (where / "app").mkdir()
    (where / "app" / "__main__.py").write_text("print('app')\n")


def numbers_hidden(text: str) -> str:
    return TIMINGS.sub("N", text)


# timeit warns when its worst time is over four times its best: a matter of the machine's
# load at that moment, different from one run to the next.
UNRELIABLE = re.compile(r"^.*UserWarning: The test results are likely unreliable.*\n", re.M)


def timings_hidden(text: str) -> str:
    return numbers_hidden(UNRELIABLE.sub("", text))


def addresses_hidden(text: str) -> str:
    return ADDRESSES.sub("0x…", text)


@dataclass(frozen=True)
class Tool:
    """One command line: `python -m {module} {args}`, given `stdin`."""

    module: str
    args: tuple[str, ...] = ()
    stdin: str = ""
    # A legitimate difference between the two runs, in one line, and how it is undone.
    why: str = ""
    normalise: Callable[[str], str] | None = None
    since: tuple[int, int] = (3, 11)
    before: tuple[int, int] = (4, 0)

    @property
    def id(self) -> str:
        return " ".join([self.module, *self.args])


def tool(module: str, *args: str, **kw: object) -> Tool:
    return Tool(module, args, **kw)  # type: ignore[arg-type]


TIMED = {"why": "the tool prints how long it took", "normalise": numbers_hidden}
TRACED = {
    "why": "a tracer sees the Python code of the session's sys.stdout too (IPython's)",
    "normalise": lambda text: IPYTHON_WRITE.sub("", text),
}
ADDRESSED = {"why": "the tool prints objects' addresses", "normalise": addresses_hidden}

TOOLS = [
    # json.tool closes its output stream (`with outfile:`), here sys.stdout.
    tool("json.tool", "x.json"),
    tool("json.tool", "--sort-keys", "--indent", "1", stdin='{"z": 1, "a": 2}'),
    tool("json.tool", "bad.json"),  # sys.exit(message): exit status 1
    tool("json.tool", "missing.json"),  # argparse's error: exit status 2
    tool("json.tool", "--help"),
    tool("calendar", "2024", "2"),
    tool("calendar", "-t", "html", "2024"),  # bytes written to sys.stdout.buffer
    tool("calendar", "2024", "13"),
    tool("base64", "-e", "data.txt"),
    tool("base64", "-d", "data.b64"),
    tool("base64", "-t"),
    tool("base64", stdin="from stdin\n"),
    tool("base64", "-x"),  # binds sys.stdout to sys.stderr, prints usage, exits 2
    tool("zipfile", "-l", "archive.zip"),
    tool("zipfile", "-t", "archive.zip"),
    tool("zipfile", "-c", "new.zip", "data.txt", "sample.py"),
    tool("tarfile", "-l", "archive.tar"),
    tool("tarfile", "-v", "-c", "new.tar", "data.txt"),
    tool("gzip", "-d", "blob.txt.gz"),
    tool("tokenize", "sample.py"),
    tool("tokenize", "-e", stdin="x = 1 + 2\n"),
    tool("ast", "sample.py"),
    tool("ast", "missing.py"),  # FileNotFoundError: a traceback, exit status 1
    tool("dis", "sample.py", **ADDRESSED),
    tool("py_compile", "sample.py"),
    tool("py_compile", "broken.py"),
    tool("compileall", "-q", "."),
    tool("compileall", "broken.py"),
    tool("unittest", "-v", "test_sample", **TIMED),
    tool("unittest", "test_missing", **TIMED),
    tool("doctest", "sample.py"),
    tool("doctest", "wrong_doctest.py"),
    tool(
        "timeit",
        "-n",
        "3",
        "-r",
        "2",
        "x = 2 ** 10",
        why="it prints how long it took, and may warn the times vary",
        normalise=timings_hidden,
    ),
    tool("timeit", "-n", "1", "-r", "1", "1 / 0"),
    tool("trace", "--listfuncs", "sample.py", "trace", **TRACED),
    tool("trace", "--count", "-C", "covered", "--summary", "--missing", "sample.py", **TRACED),
    tool("cProfile", "-o", "run.prof", "sample.py", "profiled"),
    tool("cProfile", "-o", "run.prof", "-m", "json.tool", "x.json"),
    tool("profile", "-o", "run.prof", "sample.py", "profiled"),
    tool("pdb", "--help"),
    tool("venv", "--help"),
    tool("http.server", "--help"),
    tool("ensurepip", "--help"),
    tool("zipapp", "app", "-o", "app.pyz"),
    tool("zipapp", "--help"),
    tool("pickletools", "-a", "obj.pickle"),
    tool("pickle", "obj.pickle"),
    tool("quopri", "data.txt"),
    tool("quopri", "-x"),
    tool("encodings.rot_13", stdin="Hello, World\n"),
    tool("platform"),
    tool("sysconfig"),
    tool("site", "--user-base"),
    tool("this"),
    tool("inspect", "-d", "json", **ADDRESSED),
    tool("inspect", "json:dumps"),
    tool("pyclbr", "sample"),
    tool("tabnanny", "-v", "sample.py"),
    tool("modulefinder", "sample.py"),
    tool("filecmp", "left", "right"),
    tool("mimetypes", "data.txt", "x.json"),
    tool("mimetypes", "-e", "text/plain"),
    tool("locale"),
    tool("shlex", "sample.py"),
    tool("pydoc", "json.tool"),
    tool("webbrowser"),  # no arguments: its usage on stderr, exit status 1
    tool("sqlite3", ":memory:", "select 6 * 7", since=(3, 12)),
    tool("uuid", "-u", "uuid5", "-n", "@dns", "-N", "python.org", since=(3, 12)),
    tool("cgi", before=(3, 13)),  # swaps sys.stdout and sys.stderr
    tool("uu", "data.txt", before=(3, 13)),
    # Third-party tools in the test environment.
    tool("pip", "--version"),
    tool("pip", "show", "pip"),  # configures the root logger
    tool("pytest", "--version"),
    tool("pytest", "-p", "no:cacheprovider", "test_sample.py", **TIMED),
    tool("pytest", "-q", "-p", "no:cacheprovider", "test_failing.py", **TIMED),
]

RUNNABLE = [t for t in TOOLS if t.since <= sys.version_info[:2] < t.before]


@dataclass
class Seen:
    """What a user sees of one run: exit status, output, error output."""

    status: int
    stdout: str
    stderr: str


def environment() -> dict[str, str]:
    """The same fixed environment for both runs: no pager, colour or network for pip."""
    env = dict(os.environ, PYTHONHASHSEED="0", COLUMNS="80", LC_ALL="C.UTF-8", TERM="dumb")
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PAGER="cat")
    for name in ("PYTHONPATH", "PYTHONSTARTUP", "PYTHONSAFEPATH", "PYTEST_ADDOPTS", "NO_COLOR"):
        env.pop(name, None)
    return env


def run(command: list[str], cwd: Path, stdin: str) -> Seen:
    done = subprocess.run(
        command,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        encoding="utf-8",
        errors="surrogateescape",
        env=environment(),
        timeout=TIMEOUT,
    )
    # Each run's own directory is the same place to its user: say so.
    clean = lambda text: text.replace(str(cwd), "<cwd>")  # noqa: E731
    return Seen(done.returncode, clean(done.stdout), clean(done.stderr))


@pytest.mark.parametrize("case", RUNNABLE, ids=lambda t: t.id)
def test_runmod_shows_what_python_m_shows(case: Tool, tmp_path: Path) -> None:
    direct_cwd, hosted_cwd = tmp_path / "python-m", tmp_path / "runmod"
    make_files(direct_cwd)
    shutil.copytree(direct_cwd, hosted_cwd)
    report_path = tmp_path / "report.json"
    line = " ".join(["%runmod", case.module, "--main", "--isolated", "--", *map(quote, case.args)])
    with ThreadPoolExecutor(2) as pool:
        direct_run = pool.submit(
            run, [sys.executable, "-m", case.module, *case.args], direct_cwd, case.stdin
        )
        hosted_run = pool.submit(
            run, [sys.executable, str(HOST), str(report_path), line], hosted_cwd, case.stdin
        )
        direct, hosted = direct_run.result(), hosted_run.result()
    assert hosted.status == 0, f"the host itself failed:\n{hosted.stderr}"
    report = json.loads(report_path.read_text())
    normalise = case.normalise or (lambda text: text)
    for seen in (direct, hosted):
        seen.stdout, seen.stderr = normalise(seen.stdout), normalise(seen.stderr)

    assert report["status"] == direct.status, report["error"]
    assert hosted.stdout[: len(direct.stdout)] == direct.stdout
    assert hosted.stderr == direct.stderr[: len(hosted.stderr)]
    shown = hosted.stdout[len(direct.stdout) :]
    told = direct.stderr[len(hosted.stderr) :]
    if direct.status == 0:
        assert (shown, told) == ("", "")
    elif told.startswith("Traceback (most recent call last):"):
        # An exception: python -m prints its traceback, the cell shows it, with the same
        # last line but for the module IPython leaves out: `Error: …` for `locale.Error: …`.
        last = told.rstrip().splitlines()[-1]
        assert shown.rstrip().splitlines()[-1] == re.sub(r"^[\w.]+\.(?=\w+:)", "", last)
    else:
        # sys.exit(status) or sys.exit(message): python -m prints the message, the cell
        # fails with one line that ends with it.
        message = f": {told.rstrip()}" if told else ""
        exit_line = f"ModuleExit: {case.module} exited with status {direct.status}{message}"
        assert shown == normalise(exit_line + "\n")
    assert report["problems"] == []
    assert report["changed"] == {}


def quote(arg: str) -> str:
    """`arg` as one word of a %runmod line: as a shell would read it back."""
    return arg if re.fullmatch(r"[\w@%+=:,./-]+", arg) else "'" + arg.replace("'", "'\\''") + "'"


def test_the_corpus_is_large_enough() -> None:
    """README: the standard library's `-m` tools the differential test runs, 40 and more."""
    standard = {t.module for t in RUNNABLE if t.module not in ("pip", "pytest")}
    assert len(standard) >= 40, sorted(standard)
