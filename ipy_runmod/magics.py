"""The `%runmod` / `%%runmod` magic: parse the line, call the core, merge, report."""

from __future__ import annotations

import argparse
import builtins
import difflib
import functools
import re
import shlex
import sys
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from IPython.core.completer import (
    CompletionContext,
    SimpleCompletion,
    SimpleMatcherResult,
    context_matcher,
)
from IPython.core.completerlib import get_root_modules
from IPython.core.error import UsageError
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


_FORMATTER = DollarFormatter()


@dataclass(frozen=True)
class _Line:
    """A `%runmod` line as written: only what depends on its words (so it is remembered)."""

    words: argparse.Namespace  #: the options, never mutated
    args: tuple[str, ...]  #: the module's arguments, after `--`


@functools.lru_cache(maxsize=256)
def _split(line: str) -> _Line:
    """Split and parse a line; every mistake in it is a one-line `UsageError` from here."""
    try:
        words = shlex.split(line)
    except ValueError as e:  # "No closing quotation" and the like
        raise UsageError(f"cannot split the %runmod line: {e}") from None
    args: list[str] = []
    if "--" in words:
        at = words.index("--")
        words, args = words[:at], words[at + 1 :]
    ns, extra = PARSER.parse_known_args(words)
    if extra:
        what = "option" if extra[0].startswith("-") else "argument"
        raise UsageError(
            f"unrecognized {what} {extra[0]!r}; module arguments go after `--`, "
            f"as in: %runmod {_shown(ns.module)} -- {' '.join(map(_shown, extra))}"
        )
    if ns.main and ns.run_name not in (None, "__main__"):
        raise UsageError(f"--main contradicts --run-name {_shown(ns.run_name)}; give one of them")
    return _Line(ns, tuple(args))


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
    reload = Bool(False, help="Reload changed modules before a run (--reload).").tag(config=True)
    show_time = Bool(False, help="Print each run's times (-t).").tag(config=True)
    keep_state = Bool(
        False, help="Let runs change cwd, sys.path, os.environ, warnings, logging (--keep-state)."
    ).tag(config=True)

    @magic_arguments()
    @kwds(
        usage="%(prog)s [OPTIONS] MODULE [OPTIONS] [-- ARG ...]\n"
        "  %%%%runmod [OPTIONS] MODULE [OPTIONS] [-- ARG ...]  (cell body: parameters)"
    )
    @argument("module", help="The absolute dotted name of the module or package to run.")
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
        help="First reload the target package's modules whose source changed.",
    )
    @argument(
        "--keep-state",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Let the module's changes to cwd, sys.path, os.environ, warnings and logging stay.",
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
        Words are split like a shell; {expr} and $name are expanded from the notebook.
        In the cell form, the names the body binds are given to the module, for this
        run only. Settings: %config RunModMagics (a flag on the line wins).
        The manual, with every rule: the README of ipy_runmod.

        Examples:

            %runmod pkg.analysis --main
            %runmod pkg.analysis --merge --only 'result*' --exclude '_*'
            %runmod pkg.cli --main -- --input data.csv --title 'a b'
            res = %runmod -o pkg.analysis

            %%runmod pkg.sweep -o
            alpha = 0.5
        """
        __tracebackhide__ = True  # IPython leaves this frame out of tracebacks
        assert self.shell is not None
        parsed = _split(self._expand(line, local_ns))
        opts = parsed.words
        try:
            request = self._request(parsed, cell)
            if opts.which:  # runs nothing: no reload, no cell body
                plan = _core.plan(request)
                print(plan)
                return plan if opts.result else None
            result = _core.execute(request)
        except (_core.NotRunnable, _core.InvalidRequest) as e:
            message = (
                _not_runnable_message(opts.module, e)
                if isinstance(e, _core.NotRunnable)
                else str(e)
            )
            raise UsageError(message) from None
        except SyntaxError as e:
            # The module (or the cell body) does not compile: IPython shows where; the
            # frames of the runner and of importlib's compile say nothing.
            raise e.with_traceback(None) from None
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
            self._show_from_user_code(exc)
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
            args=parsed.args,
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
        source = self.shell.transform_cell(cell)
        # Tracebacks name the cell being run: IPython counts it before running it.
        number = max(self.shell.execution_count - 1, 0)
        filename = self.shell.compile.cache(source, number, raw_code=cell)
        code = self.shell.compile(source, filename, "exec")
        exec(code, scratch)
        given.update((name, scratch[name]) for name in _core.bound_names(scratch, ns))
        return given

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
        try:
            return _FORMATTER.vformat(line, args=[], kwargs=namespace)
        except Exception:
            return line  # as IPython: a line that cannot be expanded is left as it is

    def _show_from_user_code(self, exc: BaseException) -> None:
        """Have IPython show `exc` from the user's code on, without runner frames.

        `_render_traceback_` is IPython's hook for an exception to format itself. The
        traceback object keeps the frames from the cell down, so %debug and %pdb start
        in the module's innermost frame.
        """
        if hasattr(exc, "_render_traceback_"):
            return
        shell = self.shell
        assert shell is not None

        def render() -> list[str]:
            tb = _runner_frames_skipped(exc.__traceback__) or exc.__traceback__
            return list(shell.InteractiveTB.structured_traceback(type(exc), exc, tb, 0))

        try:
            exc._render_traceback_ = render  # type: ignore[attr-defined]
        except (AttributeError, TypeError):
            pass  # an exception type that refuses attributes: shown in full


#: The one parser of a `%runmod` line, built by the decorators above: `_split` parses
#: with it, `complete` offers its options.
PARSER = RunModMagics.runmod.parser
PARSER.allow_abbrev = False  # `--mer` must not silently mean `--merge`


# `%runmod ...`, `%%runmod ...` or `res = %runmod ...` at the start of the line.
_MAGIC_ON_LINE = re.compile(r"^\s*(?:[\w.]+\s*=\s*)?%%?runmod\s")


@context_matcher()
def complete(context: CompletionContext) -> SimpleMatcherResult:
    """Tab completion after %runmod: options, top-level modules, a package's submodules.

    Nothing is imported but the parents of a package being listed; the module named on
    the line is never run. Module arguments (after `--`) and option values are left to
    the other completers.
    """
    line = context.text_until_cursor
    found = _MAGIC_ON_LINE.match(line)
    if found is None:
        return {"completions": [], "suppress": False}
    words = line[found.end() :].split()
    if line[-1:].isspace():
        words.append("")
    current, before = (words[-1], words[:-1]) if words else ("", [])
    options = [(s, a.nargs) for a in PARSER._actions for s in a.option_strings]
    takes_value = {s for s, nargs in options if nargs is None}
    if "--" in before or (before and before[-1] in takes_value):
        return {"completions": [], "suppress": False}
    if current.startswith("-"):
        names = sorted(s for s, _ in options if s.startswith(current))
    else:
        package, dot, _ = current.rpartition(".")
        if dot:
            # a package's __main__ runs as `%runmod package`: not offered on its own
            subs = [name for name in _core.submodule_names(package) if name != "__main__"]
            names = [f"{package}.{name}" for name in subs]
        else:
            names = sorted(set(get_root_modules()))
        names = [name for name in names if name.startswith(current)]
    return {
        "completions": [
            SimpleCompletion(name, type="module" if name[0] != "-" else "param") for name in names
        ],
        "matched_fragment": current,
        "suppress": True,  # the Python completers have nothing to add on a %runmod line
    }


def _note_imports_after_cell(result: Any) -> None:
    note_imports()  # for --reload: what each cell imported, with its source as it was


def load(shell: Any) -> None:
    """Register the magics and their completer with `shell`."""
    shell.register_magics(RunModMagics)
    shell.Completer.custom_matchers.append(complete)
    note_imports()
    shell.events.register("post_run_cell", _note_imports_after_cell)


def unload(shell: Any) -> None:
    """Remove the magics and their completer from `shell`."""
    manager = shell.magics_manager
    instance = manager.registry.pop(RunModMagics.__name__, None)
    for kind in ("line", "cell"):
        manager.magics[kind].pop("runmod", None)
    if instance in shell.configurables:
        shell.configurables.remove(instance)
    if _note_imports_after_cell in shell.events.callbacks["post_run_cell"]:
        shell.events.unregister("post_run_cell", _note_imports_after_cell)
    if complete in shell.Completer.custom_matchers:
        shell.Completer.custom_matchers.remove(complete)
    if "ipy_runmod._subprocess" in sys.modules:  # the process kept for the next run
        sys.modules["ipy_runmod._subprocess"].discard_spare()


__all__ = ["ModuleExit", "RunModMagics", "complete", "load", "unload"]
