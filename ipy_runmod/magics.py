"""The `%runmod` / `%%runmod` magic: parse the line, call the core, merge, report."""

from __future__ import annotations

import argparse
import bdb
import builtins
import cProfile
import difflib
import functools
import glob
import io
import linecache
import os
import pstats
import re
import shlex
import sys
import textwrap
import traceback
import types
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import CodeType, TracebackType
from typing import Any

from IPython.core import page
from IPython.core.completer import (
    CompletionContext,
    SimpleCompletion,
    SimpleMatcherResult,
    context_matcher,
)
from IPython.core.completerlib import get_root_modules
from IPython.core.error import UsageError
from IPython.core.getipython import get_ipython
from IPython.core.magic import (
    Magics,
    line_cell_magic,
    magics_class,
    needs_local_scope,
    no_var_expand,
)
from IPython.core.magic_arguments import argument, argument_group, kwds, magic_arguments
from IPython.utils.text import DollarFormatter
from traitlets import Bool, Unicode

from . import _core
from ._reload import note_imports
from ._result import ModuleExit, RunResult, format_seconds


def _patterns(values: list[str] | None) -> list[str]:
    return [p.strip() for value in values or () for p in value.split(",") if p.strip()]


def _shown(word: str) -> str:
    """A word of the line as it can be typed back, on one line (a message is one line)."""
    quoted = shlex.quote(word)
    return quoted if quoted.isprintable() else repr(word)


def _did_you_mean(missing: str) -> str:
    parent, _, leaf = missing.rpartition(".")
    candidates = _core.submodule_names(parent or None)
    close = difflib.get_close_matches(leaf, candidates, n=1, cutoff=0.7)
    if not close:
        return ""
    return f"; did you mean {'.'.join(filter(None, [parent, close[0]]))!r}?"


def _not_runnable_message(module: str, error: _core.NotRunnable) -> str:
    if error.missing is None:
        return f"cannot run {module!r}: {error}"
    if module.endswith(".py") or "/" in module or "\\" in module:
        # Only now: `pk.py` is a fine module name when `pk/py.py` exists.
        return (
            f"No module named {error.missing!r}; {module!r} looks like a file path: "
            "%runmod takes a module name such as 'pkg.analysis' (use %run for files)"
        )
    return f"No module named {error.missing!r}{_did_you_mean(error.missing)}"


# IPython's own history names: _, __, ___, _i, _ii, _iii, _i7, _7.
_HISTORY_NAME = re.compile(r"_{1,3}|_i{1,3}|_i?\d+")


def _runner_frames_skipped(tb: TracebackType | None) -> TracebackType | None:
    """The traceback after the runner's own frames (the cell, IPython and ipy_runmod)."""
    seen_runner = False
    while tb is not None:
        name = tb.tb_frame.f_globals.get("__name__")
        is_runner = isinstance(name, str) and name.partition(".")[0] == __package__
        if seen_runner and not is_runner:
            return tb
        seen_runner = seen_runner or is_runner
        tb = tb.tb_next
    return None


#: Shells lending their custom exception handler to `_show_from_module_on`, with what
#: they had before: (custom_exceptions, CustomTB).
_lent: dict[Any, tuple[tuple[type[BaseException], ...], Any]] = {}


def _show_from_module_on(shell: Any, exc: BaseException) -> None:
    """Have the shell show `exc`, about to be raised, from the module's own code on.

    IPython shows an exception that ends a cell with every frame from the cell down, the
    runner's included (for a SyntaxError raised in a call, all of them above its place).
    Its hook for an exception to show itself otherwise, `_render_traceback_`, is an
    attribute on the exception, which would make the module's exception something it
    was not (it would no longer pickle). So the shell's handler of custom exceptions is
    borrowed for this one exception, and given back when it is shown or the cell ends.
    The exception and its traceback are left whole: `%debug` and `%pdb` start in the
    module's innermost frame.
    """
    _give_back(shell)
    previous = shell.custom_exceptions, shell.CustomTB

    def show(
        _: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: Any = None
    ) -> None:
        _give_back(shell)
        if value is not exc:  # another exception of the same type, from elsewhere
            if isinstance(value, previous[0]):
                previous[1](etype, value, tb, tb_offset)
            else:
                shell.showtraceback(running_compiled_code=True)
            return
        if isinstance(value, SyntaxError):
            shell.showsyntaxerror()  # the place alone, as for a cell's own
            return
        shown = (etype, value, _runner_frames_skipped(tb) or tb)
        if isinstance(value, BaseExceptionGroup):
            # IPython prints a group with all of its frames; this keeps them off.
            shell._get_exc_info(shown)  # sys.last_value and friends, for %debug
            shell._showtraceback(etype, value, ["".join(traceback.format_exception(*shown))])
        else:
            shell.showtraceback(shown)

    _lent[shell] = previous
    shell.custom_exceptions = (*previous[0], type(exc))
    shell.CustomTB = types.MethodType(show, shell)


def _give_back(shell: Any) -> None:
    """Return the custom exception handler `_show_from_module_on` borrowed, if any."""
    previous = _lent.pop(shell, None)
    if previous is not None:
        shell.custom_exceptions, shell.CustomTB = previous


_FORMATTER = DollarFormatter()


def _single_quoted_apart(line: str) -> list[str]:
    """The line cut around its single-quoted words: odd items are those words, quotes and all.

    As in a POSIX shell, text in single quotes is literal (`'^\\d{3}$'` reaches the module
    as typed), so it is kept out of `{expr}` / `$name` expansion; double-quoted and bare
    text is expanded. Quotes inside an `{expression}` are Python's own (`{d['a']}`).
    """
    pieces: list[str] = []
    start = at = depth = 0
    double = False
    while at < len(line):
        char = line[at]
        if depth:  # inside {expression}: Python, up to its closing brace
            if char in "'\"":  # a string literal, skipped whole
                end = line.find(char, at + 1)
                at = len(line) if end < 0 else end + 1
                continue
            depth += {"{": 1, "}": -1}.get(char, 0)
        elif char == "\\" or line.startswith(("{{", "}}"), at):
            at += 2  # an escaped character, or a literal brace
            continue
        elif char == "{":
            depth = 1
        elif char == '"':
            double = not double
        elif char == "'" and not double and (end := line.find("'", at + 1)) >= 0:
            pieces += [line[start:at], line[at : end + 1]]
            start = at = end + 1
            continue
        at += 1
    return [*pieces, line[start:]]


@dataclass(frozen=True)
class _Line:
    """A `%runmod` line as written: only what depends on its words (so it is remembered)."""

    words: argparse.Namespace  #: the options, never mutated
    args: tuple[str, ...]  #: the module's arguments, after `--`
    quoted: tuple[bool, ...]  #: for each of `args`: written with a quote or a backslash
    typed: tuple[str, ...]  #: the words before `--`, as split

    def suggest(self, *, extra: Sequence[str] = (), add: Sequence[str] = ()) -> str:
        """The line again, as it can be typed: `extra` words moved after `--`, `add` added."""
        kept = list(self.typed)
        for word in reversed(extra):  # each from the end: module arguments come last
            del kept[len(kept) - 1 - kept[::-1].index(word)]
        after = [*extra, *self.args]
        words = [*kept, *add, *(["--", *after] if after else [])]
        return " ".join(["%runmod", *(w if w == "--" else _shown(w) for w in words)])


class _HelpRequested(Exception):
    """`-h` / `--help` is on the line: the usage is shown and nothing runs."""


class _Help(argparse.Action):
    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.update(nargs=0, default=argparse.SUPPRESS)
        super().__init__(option_strings, argparse.SUPPRESS, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise _HelpRequested  # before argparse can complain that MODULE is missing


def _shell_words(line: str) -> list[tuple[str, bool]]:
    """The words of `line` split as `shlex.split` does, each with whether any of it was
    quoted or escaped (a shell expands globs only in words that were not)."""
    stream = io.StringIO(line)
    lexer = shlex.shlex(stream, posix=True)
    lexer.whitespace_split, lexer.commenters = True, ""  # exactly shlex.split's lexer
    words: list[tuple[str, bool]] = []
    start = 0
    while (word := lexer.get_token()) is not None:
        end = stream.tell()  # the lexer reads one character past a word, no more
        words.append((word, any(c in line[start:end] for c in "'\"\\")))
        start = end
    return words


_PROFILE_ONLY = {"sort": "-s", "limit": "-l", "dump": "-D", "text": "-T", "quiet": "-q"}


@functools.lru_cache(maxsize=256)
def _split(line: str) -> _Line:
    """Split and parse a line; every mistake in it is a one-line `UsageError` from here."""
    try:
        split = _shell_words(line)
    except ValueError as e:  # "No closing quotation" and the like
        raise UsageError(f"cannot split the %runmod line: {e}") from None
    words = [word for word, _ in split]
    args: list[tuple[str, bool]] = []
    if "--" in words:
        at = words.index("--")
        words, args = words[:at], split[at + 1 :]
    ns, extra = PARSER.parse_known_args(words)
    parsed = _Line(
        ns, tuple(word for word, _ in args), tuple(quoted for _, quoted in args), tuple(words)
    )
    if extra:
        what = "option" if extra[0].startswith("-") else "argument"
        raise UsageError(
            f"unrecognized {what} {extra[0]!r}; module arguments go after `--`, "
            f"as in: {parsed.suggest(extra=extra)}"
        )
    if ns.main and ns.run_name not in (None, "__main__"):
        raise UsageError(f"--main contradicts --run-name {_shown(ns.run_name)}; give one of them")
    _check_profile_and_debug(ns)
    return parsed


def _check_profile_and_debug(ns: argparse.Namespace) -> None:
    if ns.profile and ns.debug:
        raise UsageError("-p and -d cannot be combined; give one of them")
    if ns.subprocess and (ns.profile or ns.debug):
        flag = "-p" if ns.profile else "-d"
        raise UsageError(f"{flag} works in this process: it does not go with --subprocess")
    given = [flag for dest, flag in _PROFILE_ONLY.items() if getattr(ns, dest)]
    if given and not ns.profile:
        raise UsageError(f"{given[0]} is a profiler option: it goes with -p")
    if ns.breakpoint is not None and not ns.debug:
        raise UsageError("-b sets a breakpoint for the debugger: it goes with -d")
    if ns.sort:
        try:
            pstats.Stats().sort_stats(*ns.sort)
        except KeyError as e:
            raise UsageError(
                f"-s {_shown(e.args[0])}: not a sort key of pstats (cumulative, time, calls, ...)"
            ) from None


def _globbed(args: tuple[str, ...], quoted: tuple[bool, ...]) -> list[str]:
    """The module's arguments as a shell gives them: each unquoted word with `*`, `?` or
    `[` is replaced by the paths it matches, sorted (kept as it is when none does), and a
    leading `~` is the home directory."""
    expanded: list[str] = []
    for word, was_quoted in zip(args, quoted, strict=True):
        if was_quoted:
            expanded.append(word)
            continue
        if word.startswith("~"):
            word = os.path.expanduser(word)
        if any(c in word for c in "*?["):
            expanded.extend(sorted(glob.glob(word)) or [word])
        else:
            expanded.append(word)
    return expanded


def _breakpoint(text: str, module_file: str | None) -> tuple[str, int]:
    """`-b LINE` (in the module's file) or `-b FILE:LINE`, checked as pdb's `break` checks."""
    file, _, number = text.rpartition(":")
    if not number.strip().isdigit():
        raise UsageError(f"-b {_shown(text)}: give LINE or FILE:LINE, such as -b 12")
    line = int(number)
    path = os.path.abspath(os.path.expanduser(file)) if file else module_file
    if path is None or not os.path.isfile(path):
        raise UsageError(f"-b {_shown(text)}: no such file {_shown(file or str(path))}")
    linecache.checkcache(path)
    source = linecache.getline(path, line).strip()
    if not source:
        raise UsageError(f"-b {_shown(text)}: {path} has no line {line} with code")
    if source.startswith(("#", '"""', "'''")):
        raise UsageError(f"-b {_shown(text)}: line {line} of {path} is a comment or a docstring")
    return path, line


def _debugged(debugger: Any, stop_first: bool, code: CodeType, namespace: dict[str, Any]) -> None:
    """Run the module's code under `debugger`, as `bdb.Bdb.run` does: stopping at its first
    line, or (not `stop_first`) only at breakpoints."""
    __tracebackhide__ = True  # IPython's debugger shows the module's frames, not this one
    trace = sys.gettrace()  # a coverage tool's, say: it comes back afterwards
    debugger.reset()
    if not stop_first:
        # As after `continue` typed in this frame: until it returns, only breakpoints stop.
        debugger.botframe = sys._getframe()
        debugger.set_continue()
    sys.settrace(debugger.trace_dispatch)
    try:
        exec(code, namespace)
    except bdb.BdbQuit:
        pass  # `q` at the prompt: the run ends there, quietly, as with %run -d
    finally:
        sys.settrace(trace)
        debugger.quitting = True


def _profiled(profile: cProfile.Profile, code: CodeType, namespace: dict[str, Any]) -> None:
    """Run the module's code with `profile` on: it sees the module's calls, none of ours."""
    profile.enable()
    try:
        exec(code, namespace)
    finally:
        profile.disable()


def _limit(text: str) -> int | float | str:
    """A `-l` value as %prun reads it: a number of lines, a fraction, or a regex."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _report(profile: cProfile.Profile, opts: argparse.Namespace) -> None:
    """The profile's report, shown and saved as `%prun` and `%run -p` do."""
    stream = io.StringIO()
    stats = pstats.Stats(profile, stream=stream).strip_dirs()
    stats.sort_stats(*(opts.sort or ["time"])).print_stats(*map(_limit, opts.limit or ()))
    text = stream.getvalue().rstrip()
    if not opts.quiet:
        page.page(text)
    if opts.dump:
        profile.dump_stats(opts.dump)
        print(f"*** Profile stats marshalled to file {opts.dump!r}.")
    if opts.text:
        Path(opts.text).write_text(text, encoding="utf-8")
        print(f"*** Profile printout saved to text file {opts.text!r}.")


@magics_class
class RunModMagics(Magics):
    """`%runmod`: run a module like `python -m`, inside the session."""

    merge = Bool(False, help="Merge what a module binds into the notebook (--merge).").tag(
        config=True
    )
    run_name = Unicode(
        None, allow_none=True, help="Default __name__ (-n); None keeps runpy's."
    ).tag(config=True)
    isolated = Bool(False, help="Run in a fresh namespace (--isolated).").tag(config=True)
    alter_sys = Bool(True, help="Set sys.argv and sys.modules for a run (--alter-sys).").tag(
        config=True
    )
    reload = Bool(
        True, help="Before a run, re-import user modules whose source changed (--no-reload)."
    ).tag(config=True)
    show_time = Bool(False, help="Print each run's times (-t).").tag(config=True)
    keep_state = Bool(
        False,
        help="Let runs change cwd, sys.path, os.environ, warnings, logging, builtins "
        "(--keep-state).",
    ).tag(config=True)

    @magic_arguments()
    @kwds(
        usage="%(prog)s [OPTIONS] MODULE [OPTIONS] [-- ARG ...]\n"
        "  %%%%runmod [OPTIONS] MODULE [OPTIONS] [-- ARG ...]  (cell body: parameters)"
    )
    @argument("module", help="The absolute dotted name of the module or package to run.")
    @argument(
        "-h", "--help", action=_Help, help="Show this usage, run nothing; %%runmod? is the manual."
    )
    @argument_group("What runs")
    @argument(
        "-n",
        "--run-name",
        metavar="NAME",
        help="__name__ in the module (default: its own name, or pkg.__main__ for a package).",
    )
    @argument("--main", action="store_true", help="Short for --run-name __main__.")
    @argument(
        "--which",
        action="store_true",
        help="Print what would run, and run nothing (with -o, return it).",
    )
    @argument(
        "--reload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="First re-import your modules whose source changed since imported (default).",
    )
    @argument(
        "--keep-state",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Let the module's changes to cwd, sys.path, os.environ, warnings, logging and "
        "builtins stay.",
    )
    @argument(
        "--alter-sys",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Set sys.argv and register the module in sys.modules during the run (default).",
    )
    @argument_group("The notebook's variables")
    @argument(
        "--isolated",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Start from a fresh namespace, not the notebook's variables.",
    )
    @argument(
        "--merge",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Afterwards, copy the names the module bound into the notebook.",
    )
    @argument(
        "--only",
        metavar="PATTERNS",
        action="append",
        help="Merge only these names (comma-separated, fnmatch patterns); implies --merge.",
    )
    @argument("--exclude", metavar="PATTERNS", action="append", help="Never merge these names.")
    @argument_group("The result")
    @argument(
        "-o", "--result", action="store_true", help="Return the RunResult: res = %%runmod -o m."
    )
    @argument(
        "-t",
        "--time",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Print the run's wall-clock and CPU time.",
    )
    @argument_group("As %run does: profiling, debugging, globbing")
    @argument(
        "-p", dest="profile", action="store_true", help="Profile with cProfile, as %%prun does."
    )
    @argument(
        "-s",
        dest="sort",
        metavar="KEY",
        action="append",
        help="With -p: sort by KEY (time, cumulative, calls...).",
    )
    @argument(
        "-l",
        dest="limit",
        metavar="LIMIT",
        action="append",
        help="With -p: cut the report (lines, fraction, regex).",
    )
    @argument("-D", dest="dump", metavar="FILE", help="With -p: save the statistics to FILE.")
    @argument("-T", dest="text", metavar="FILE", help="With -p: save the report to FILE.")
    @argument("-q", dest="quiet", action="store_true", help="With -p: do not show the report.")
    @argument(
        "-d", dest="debug", action="store_true", help="Debug, stopping at the module's first line."
    )
    @argument(
        "-b",
        dest="breakpoint",
        metavar="[FILE:]LINE",
        help="With -d: stop at this line of the module or FILE.",
    )
    @argument(
        "-G",
        dest="no_glob",
        action="store_true",
        help="Leave *, ?, [ and ~ in module arguments as typed.",
    )
    @argument_group("Where it runs")
    @argument(
        "--subprocess",
        action="store_true",
        help="Run in a fresh Python process; variables go by pickle.",
    )
    @argument(
        "--timeout",
        metavar="SECONDS",
        type=float,
        help="With --subprocess: fail a run that takes longer.",
    )
    @no_var_expand  # done by _expand, which copies the namespace only when it must
    @needs_local_scope
    @line_cell_magic
    def runmod(
        self, line: str, cell: str | None = None, local_ns: dict[str, Any] | None = None
    ) -> RunResult | _core.Plan | None:
        """Run a module the way `python -m` does, inside this session.

        `%runmod pkg.cli --main -- --alpha 0.5` is `python -m pkg.cli --alpha 0.5` run
        in this kernel, as runpy.run_module("pkg.cli", init_globals=<the notebook>,
        run_name="__main__") with sys.argv = [<file>, "--alpha", "0.5"]: the module
        sees the notebook's variables, its assignments stay its own unless --merge,
        and its exception or non-zero sys.exit fails the cell.

        Options go before or after MODULE; the module's own arguments after `--`.
        Words are split like a shell; {expr} and $name are expanded from the notebook,
        except in single quotes.
        As in a shell, an unquoted module argument with *, ? or [ is replaced by the
        paths it matches, and a leading ~ by the home directory (-G: never).
        As with %run, -p profiles the run (%prun's report and options) and -d runs
        it under the debugger, from its first line or the breakpoint -b LINE.
        -h shows the usage and runs nothing.
        In the cell form, the names the body binds are given to the module, for this
        run only. Settings: %config RunModMagics (a flag on the line wins).
        Your modules edited since imported are imported afresh (--no-reload: not).
        Without --main, what the module defined pickles in later cells, as imported.
        The manual, with every rule: the README of ipy_runmod.

        Examples:

            %runmod pkg.analysis --main
            %runmod pkg.analysis --merge --only 'result*' --exclude '_*'
            %runmod pkg.cli --main -- --input data.csv --title 'a b'
            res = %runmod -o pkg.analysis
            %runmod pkg.cli --main -- data/*.csv
            %runmod pkg.slow -p -s cumulative -l 10
            %runmod pkg.cli --main -d -b 42
            %runmod pytest --main -- -q tests/test_io.py

            %%runmod pkg.sweep -o
            alpha = 0.5
        """
        __tracebackhide__ = True  # IPython leaves this frame out of tracebacks
        assert self.shell is not None
        try:
            parsed = _split(self._expand(line, local_ns))
        except _HelpRequested:
            print(_usage())
            return None
        opts = parsed.words
        profile = cProfile.Profile() if opts.profile else None
        try:
            request = self._request(parsed, cell)
            if opts.which:  # runs nothing: no reload, no cell body
                plan = _core.plan(request)
                if opts.result:
                    return plan  # the shell shows it (unless it is assigned): not printed twice
                print(plan)
                return None
            if profile is not None:
                request.runner = functools.partial(_profiled, profile)
            elif opts.debug:
                request.runner = self._debugger(opts.breakpoint, request)
            result = _core.execute(request)
        except (_core.NotRunnable, _core.InvalidRequest) as e:
            message = (
                _not_runnable_message(opts.module, e)
                if isinstance(e, _core.NotRunnable)
                else str(e)
            )
            raise UsageError(message) from None
        except SyntaxError as e:
            # The module (or the cell body) does not compile: shown as IPython shows a
            # cell's own, the place alone.
            _show_from_module_on(self.shell, e)
            raise
        if profile is not None:
            _report(profile, opts)
        if parsed.args and result.run_name != "__main__" and _core.has_main_guard(result.spec):
            print(
                f"{opts.module} ran as {result.run_name!r}, so its "
                '`if __name__ == "__main__":` block, which reads the arguments, did not run; '
                f"as python -m runs it: {parsed.suggest(add=['--main'])}"
            )
        if self.show_time if opts.time is None else opts.time:
            print(
                f"{opts.module}: wall {format_seconds(result.elapsed)}, "
                f"CPU {format_seconds(result.cpu_time)}"
            )
        if not result.ok:
            exc = result.exception
            assert exc is not None
            if isinstance(exc, SystemExit):
                raise ModuleExit(opts.module, exc) from exc
            _show_from_module_on(self.shell, exc)
            raise exc
        return result if opts.result else None

    def _request(self, parsed: _Line, cell: str | None) -> _core.Request:
        """The run the line asks for, with the configured defaults filled in."""
        assert self.shell is not None
        opts = parsed.words
        only, exclude = _patterns(opts.only), _patterns(opts.exclude)
        merge = bool(only) or (self.merge if opts.merge is None else opts.merge)
        isolated = self.isolated if opts.isolated is None else opts.isolated
        return _core.Request(
            opts.module,
            args=parsed.args if opts.no_glob else _globbed(parsed.args, parsed.quoted),
            run_name="__main__" if opts.main else (opts.run_name or self.run_name),
            init_globals=None if isolated else self.shell.user_ns,
            parameters=functools.partial(self._parameters, cell, isolated),
            alter_sys=self.alter_sys if opts.alter_sys is None else opts.alter_sys,
            reload=self.reload if opts.reload is None else opts.reload,
            keep_state=self.keep_state if opts.keep_state is None else opts.keep_state,
            merge_into=self.shell.user_ns if merge else None,
            only=only,
            exclude=exclude,
            skip=self._is_ipython_name,
            report=print,
            subprocess=opts.subprocess,
            timeout=opts.timeout,
        )

    def _debugger(self, breakpoint: str | None, request: _core.Request) -> _core.Runner:
        """IPython's debugger as the module's runner: stopping at its first line as `%run -d`
        does, or with a breakpoint only there (`%run -d -b` stops at line 1 first)."""
        assert self.shell is not None
        # A module not found or a bad -b says so before anything is set up or printed.
        module_file = _core.plan(request).file
        stop = None if breakpoint is None else _breakpoint(breakpoint, module_file)
        traceback = self.shell.InteractiveTB
        if not traceback.pdb:
            traceback.pdb = traceback.debugger_cls()
        debugger = traceback.pdb
        # bdb keeps breakpoints in class attributes: each run starts with none.
        bdb.Breakpoint.next = 1
        bdb.Breakpoint.bplist = {}
        bdb.Breakpoint.bpbynumber = [None]
        debugger.clear_all_breaks()
        if stop is None:
            print(f"NOTE: Enter 'c' at the {debugger.prompt.strip()} prompt to continue execution.")
        else:
            debugger.do_break("{}:{}".format(*stop))  # says where, as pdb's `break` does
        return functools.partial(_debugged, debugger, stop is None)

    def _parameters(self, cell: str | None, isolated: bool) -> dict[str, Any]:
        """What the module is given over the notebook: what python -m gives it (`exit`,
        `quit`, `__builtins__`, annotations of its own), and what the `%%runmod` cell body
        binds, run in a scratch copy of the notebook.

        IPython's own `exit` would end the kernel, and during a cell it hides the builtin
        ones. The body can read the notebook's variables but never changes them.
        """
        assert self.shell is not None
        ns, hidden = self.shell.user_ns, self.shell.user_ns_hidden
        given: dict[str, Any] = {
            name: quitter
            for name, quitter in _core.EXITS.items()
            if isolated or (name in hidden and ns.get(name) is hidden[name])
        }
        if isolated:
            given["__builtins__"] = builtins  # what exec would put in is its dict
        elif "__annotations__" in ns:
            given["__annotations__"] = {}  # the module's annotations are not the notebook's
        if cell is None:
            return given
        scratch = dict(self.shell.user_ns)
        if "__annotations__" in scratch:
            scratch["__annotations__"] = {}  # a copy shares the notebook's dict: not its to fill
        # Line numbers as the user sees them in the cell, whose first line is `%%runmod`.
        source = "\n" + self.shell.transform_cell(cell)
        filename = self.shell.compile.cache(source, self._cell_number(), raw_code=cell)
        code = self.shell.compile(source, filename, "exec")
        try:
            exec(code, scratch)
        except BaseException as e:
            _show_from_module_on(self.shell, e)  # from the body's own line on
            raise
        given.update((name, scratch[name]) for name in _core.bound_names(scratch, ns))
        return given

    def _cell_number(self) -> int:
        """The number of the cell running this magic, for tracebacks: `Cell In[7]`.

        IPython counts a cell before running it, unless it is not kept in the history
        (a silent execution): the number its code was compiled under is the one to use.
        """
        assert self.shell is not None
        numbers = self.shell.compile._filename_map
        frame = sys._getframe(1)
        while frame is not None:
            number = numbers.get(frame.f_code.co_filename)
            if number is not None:
                return int(number)
            frame = frame.f_back  # type: ignore[assignment]
        return self.shell.execution_count

    def _is_ipython_name(self, name: str) -> bool:
        """IPython's hidden names (In, Out, get_ipython...) and its history variables."""
        assert self.shell is not None
        return name in self.shell.user_ns_hidden or _HISTORY_NAME.fullmatch(name) is not None

    def _expand(self, line: str, local_ns: dict[str, Any] | None) -> str:
        """IPython's `{expr}` / `$name` expansion of the line, as `var_expand` does it.

        IPython would copy the whole namespace for every call, expansion or not: a cost
        that grows with the notebook (a million names, a copy each run). Here that copy
        is made only for a line that has something to expand.
        """
        if "{" not in line and "}" not in line and "$" not in line:
            return line
        assert self.shell is not None
        namespace = dict(self.shell.user_ns)
        if local_ns is not None:
            namespace.update(local_ns)
        pieces = _single_quoted_apart(line)
        try:
            pieces[::2] = [_FORMATTER.vformat(p, args=[], kwargs=namespace) for p in pieces[::2]]
        except Exception:
            return line  # as IPython: a line that cannot be expanded is left as it is
        return "".join(pieces)


#: The one parser of a `%runmod` line, built by the decorators above: `_split` parses
#: with it, `complete` offers its options.
PARSER = RunModMagics.runmod.parser
PARSER.allow_abbrev = False  # `--mer` must not silently mean `--merge`


def _usage() -> str:
    """What `%runmod -h` shows: the syntax and every option, in a few lines."""
    syntax = PARSER.format_usage().removeprefix("::").strip().splitlines()
    options = [
        "/".join(action.option_strings)
        + (f" {action.metavar or action.dest.upper()}" if action.nargs is None else "")
        for action in PARSER._actions
        if action.option_strings
    ]
    return "\n".join(
        [
            "usage: " + "\n       ".join(line.strip() for line in syntax),
            textwrap.fill(
                ", ".join(options),
                88,
                initial_indent="options: ",
                subsequent_indent="  ",
                break_on_hyphens=False,
            ),
            "The manual, with every option: %runmod?",
        ]
    )


# `%runmod ...`, `%%runmod ...` or `res = %runmod ...` at the start of the line.
_MAGIC_ON_LINE = re.compile(r"^\s*(?:[\w.]+\s*=\s*)?%%?runmod\s")


def _described(action: argparse.Action, option: str) -> str:
    """What an option does, in a few words, from its help: shown beside the completion.

    IPython passes a completion's `type` on to every front end (the terminal's menu,
    Jupyter's `_jupyter_types_experimental`), and nothing else, so it carries this. It is
    short and never breaks (no-break spaces and hyphens): JupyterLab's popup, made for
    one-word types, would wrap it over the next row.
    """
    text = (action.help or "").replace("%%", "%")  # argparse's escape for a literal %
    # "With -p: sort by KEY ..." says first what it goes with: that comes last here.
    condition, _, text = text.partition(": ") if text.startswith("With ") else ("", "", text)
    words = re.split(r" \(|: |; |\.(?: |$)", text, maxsplit=1)[0]
    if option.startswith("--no-"):
        words = f"turns {option.replace('--no-', '--', 1)} off"
    after = f" ({condition.lower()})" if condition else ""
    width = _DESCRIBED_WIDTH - len(after)
    if len(words) > width:
        cut = words.rfind(" ", 0, width)
        words = words[: cut if cut > 0 else width] + " …"
    words = f"{words[:1].upper()}{words[1:]}{after}" if condition else words
    return words.translate(_NO_BREAKS)


_DESCRIBED_WIDTH = 45
_NO_BREAKS = str.maketrans({" ": "\N{NO-BREAK SPACE}", "-": "\N{NON-BREAKING HYPHEN}"})


def _option_completions(current: str) -> list[SimpleCompletion]:
    """Short options first, then long ones in the usage's order; `--no-*` once `--no` is typed."""
    actions = [(s, a) for a in PARSER._actions for s in a.option_strings]
    short = [(s, a) for s, a in actions if not s.startswith("--")]
    long = [(s, a) for s, a in actions if s.startswith("--")]
    if not current.startswith("--no"):
        long = [(s, a) for s, a in long if not s.startswith("--no-")]
    # `--` alone still offers the short options: they are the ones typed most.
    offered = [(s, a) for s, a in short + long if s.startswith(current) or current == "--"]
    return [SimpleCompletion(s, type=_described(a, s)) for s, a in offered]


@context_matcher()
def complete(context: CompletionContext) -> SimpleMatcherResult:
    """Tab completion after %runmod: options, top-level modules, a package's submodules.

    Nothing is imported but the parents of a package being listed; the module named on
    the line is never run. Module arguments (after `--`) complete as file names only;
    an option's value gets no completion at all (Python's keywords mean nothing there).
    """
    line = context.text_until_cursor
    found = _MAGIC_ON_LINE.match(line)
    if found is None:
        return {"completions": [], "suppress": False}
    words = line[found.end() :].split()
    if line[-1:].isspace():
        words.append("")
    current, before = (words[-1], words[:-1]) if words else ("", [])
    if "--" in before:
        # The module's arguments: file names, as a shell offers, and no Python names.
        shell = get_ipython()
        if shell is None:
            return {"completions": [], "suppress": False}
        files: SimpleMatcherResult = shell.Completer.file_matcher(context)
        files["suppress"] = True
        return files
    value_of = {s: a for a in PARSER._actions if a.nargs is None for s in a.option_strings}
    if before and before[-1] in value_of:
        # An option's value: nothing to offer, and Python's names mean nothing there. IPython
        # lets a matcher silence the others only with a completion, so this one is empty:
        # it inserts nothing, the terminal leaves it out, and its type says what goes here.
        action = value_of[before[-1]]
        hint = f"{action.metavar}:\N{NO-BREAK SPACE}{_described(action, before[-1])}"
        return {
            "completions": [SimpleCompletion("", type=hint)],
            "matched_fragment": "",
            "suppress": True,
        }
    if current.startswith("-"):
        completions = _option_completions(current)
    else:
        package, dot, _ = current.rpartition(".")
        if dot:
            # a package's __main__ runs as `%runmod package`: not offered on its own
            subs = [name for name in _core.submodule_names(package) if name != "__main__"]
            names = [f"{package}.{name}" for name in subs]
        else:
            names = sorted(set(get_root_modules()))
        completions = [
            SimpleCompletion(name, type="module") for name in names if name.startswith(current)
        ]
    return {
        "completions": completions,
        "matched_fragment": current,
        "ordered": True,
        "suppress": True,  # the Python completers have nothing to add on a %runmod line
    }


def _after_cell(result: Any) -> None:
    note_imports()  # for --reload: what each cell imported, with its source as it was
    for shell in list(_lent):  # an exception the cell caught was never shown
        _give_back(shell)


def load(shell: Any) -> None:
    """Register the magics and their completer with `shell`."""
    shell.register_magics(RunModMagics)
    shell.Completer.custom_matchers.append(complete)
    note_imports()
    shell.events.register("post_run_cell", _after_cell)


def unload(shell: Any) -> None:
    """Remove the magics and their completer from `shell`."""
    manager = shell.magics_manager
    instance = manager.registry.pop(RunModMagics.__name__, None)
    for kind in ("line", "cell"):
        manager.magics[kind].pop("runmod", None)
    if instance in shell.configurables:
        shell.configurables.remove(instance)
    _give_back(shell)
    if _after_cell in shell.events.callbacks["post_run_cell"]:
        shell.events.unregister("post_run_cell", _after_cell)
    if complete in shell.Completer.custom_matchers:
        shell.Completer.custom_matchers.remove(complete)
    if "ipy_runmod._subprocess" in sys.modules:  # the process kept for the next run
        sys.modules["ipy_runmod._subprocess"].discard_spare()


__all__ = ["ModuleExit", "RunModMagics", "complete", "load", "unload"]
