"""The `%runmod` / `%%runmod` magic: parse the line, call the core, merge, report."""

from __future__ import annotations

import argparse
import difflib
import functools
import re
import shlex
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
from IPython.core.magic_arguments import argument, magic_arguments
from IPython.utils.text import DollarFormatter
from traitlets import Bool, Unicode

from . import _core
from ._reload import note_imports, reload_changed
from ._result import ModuleExit, RunResult, format_seconds


@dataclass
class Options:
    """A `%runmod` line, parsed, with the configured defaults filled in."""

    module: str
    args: list[str]
    run_name: str | None
    isolated: bool
    merge: bool
    only: list[str]
    exclude: list[str]
    result: bool
    alter_sys: bool
    time: bool
    which: bool
    reload: bool


def _patterns(values: list[str] | None) -> list[str]:
    return [p.strip() for value in values or () for p in value.split(",") if p.strip()]


def _check_module_name(name: str) -> None:
    if name.startswith("."):
        raise UsageError(
            f"relative module names are not supported: {name!r}; give the absolute "
            "dotted name, e.g. 'pkg.analysis'"
        )
    if name.endswith(".py") or "/" in name or "\\" in name:
        raise UsageError(
            f"{name!r} looks like a file path; %runmod takes a module name such as "
            "'pkg.analysis' (use %run for files)"
        )
    if not all(part.isidentifier() for part in name.split(".")):
        raise UsageError(f"{name!r} is not a valid module name")


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
    if error.missing is not None:
        return f"No module named {error.missing!r}{_did_you_mean(error.missing)}"
    return f"cannot run {module!r}: {error}"


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


@functools.lru_cache(maxsize=256)
def _parse_words(line: str) -> tuple[argparse.Namespace, tuple[str, ...]]:
    """The line's options and module arguments; remembered, as loops run the same line.

    Only what depends on the line alone is here (never mutate the namespace returned):
    the configured defaults are filled in by `RunModMagics._parse` on every call.
    """
    try:
        words = shlex.split(line)
    except ValueError as e:  # "No closing quotation" and the like
        raise UsageError(f"cannot split the %runmod line: {e}") from None
    args: list[str] = []
    if "--" in words:
        at = words.index("--")
        words, args = words[:at], words[at + 1 :]
    ns, extra = RunModMagics.runmod.parser.parse_known_args(words)
    if extra:
        what = "option" if extra[0].startswith("-") else "argument"
        raise UsageError(
            f"unrecognized {what} {extra[0]!r}; module arguments go after `--`, "
            f"as in: %runmod {_shown(ns.module)} -- {' '.join(map(_shown, extra))}"
        )
    _check_module_name(ns.module)
    if ns.main and ns.run_name not in (None, "__main__"):
        raise UsageError(f"--main contradicts --run-name {_shown(ns.run_name)}; give one of them")
    return ns, tuple(args)


@magics_class
class RunModMagics(Magics):
    """`%runmod`: run a module like `python -m`, inside the session."""

    merge = Bool(
        False, help="Merge the names a module binds into the namespace after every run."
    ).tag(config=True)
    run_name = Unicode(
        None,
        allow_none=True,
        help="Default `__name__` for runs; None keeps runpy's (the module's own name).",
    ).tag(config=True)
    isolated = Bool(False, help="Run modules in a fresh namespace instead of the notebook's.").tag(
        config=True
    )
    alter_sys = Bool(
        True, help="Set sys.argv and register the module in sys.modules during a run."
    ).tag(config=True)
    reload = Bool(
        False, help="Before every run, reload the changed modules of the target's package."
    ).tag(config=True)
    show_time = Bool(False, help="After every run, print its wall-clock and CPU time.").tag(
        config=True
    )

    @magic_arguments()
    @argument("module", help="The absolute dotted name of the module or package to run.")
    @argument(
        "-n",
        "--run-name",
        metavar="NAME",
        help="The value of __name__ in the module. By default it is the module's own "
        "name, or 'pkg.__main__' for a package, as with runpy.run_module.",
    )
    @argument(
        "--main",
        action="store_true",
        help="Run with __name__ set to '__main__', as `python -m` does, so that "
        '`if __name__ == "__main__":` blocks run. Short for --run-name __main__.',
    )
    @argument(
        "--isolated",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Start the module from a fresh namespace, as under `python -m`, instead "
        "of one pre-filled with the notebook's variables.",
    )
    @argument(
        "--merge",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="After the run, copy the names the module bound (new names, or names "
        "rebound to other objects) into the notebook. Dunder names and IPython's "
        "hidden names are never copied. A failed run merges what it bound before "
        "failing, then the error is raised.",
    )
    @argument(
        "--only",
        metavar="PATTERNS",
        action="append",
        help="Merge only these names: comma-separated names or fnmatch patterns such "
        "as 'result*,table'. Implies --merge. May be given more than once.",
    )
    @argument(
        "--exclude",
        metavar="PATTERNS",
        action="append",
        help="Never merge these names (same form as --only).",
    )
    @argument(
        "-o",
        "--result",
        action="store_true",
        help="Return the RunResult as the value of the magic: `res = %%runmod -o mod`. "
        "Without it the magic returns None; ipy_runmod.last_result() always has it.",
    )
    @argument(
        "-t",
        "--time",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="After the run, print its wall-clock and CPU time (every RunResult has "
        "them as .elapsed and .cpu_time).",
    )
    @argument(
        "--which",
        action="store_true",
        help="Print what would run (module, run name, file, loader, whether a "
        "package's __main__ runs, argv) and run nothing. Parent packages are "
        "imported to find the module, as `python -m` does. With -o, return it.",
    )
    @argument(
        "--reload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Before the run, reload every already-imported module of the target's "
        "top-level package whose source changed since it was loaded (parents "
        "first), and say which. If one fails to reload, its error is raised and "
        "the module does not run.",
    )
    @argument(
        "--alter-sys",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--no-alter-sys leaves sys.argv and sys.modules alone during the run "
        "(runpy's alter_sys=False); module arguments then cannot be given.",
    )
    @no_var_expand  # done by _expand, which copies the namespace only when it must
    @needs_local_scope
    @line_cell_magic
    def runmod(
        self, line: str, cell: str | None = None, local_ns: dict[str, Any] | None = None
    ) -> RunResult | _core.Plan | None:
        """Run a module the way `python -m` does, inside this session.

        %runmod [OPTIONS] MODULE [OPTIONS] [-- ARG ...]
        %%runmod [OPTIONS] MODULE [OPTIONS] [-- ARG ...]  (cell body: parameters)

        `%runmod pkg.analysis --main -- --alpha 0.5` is `python -m pkg.analysis
        --alpha 0.5`, run in this kernel: the module is found by the import system
        (a package runs its __main__ submodule, relative imports work, the code is
        read afresh so edits are picked up) and runs in a new namespace pre-filled
        with the notebook's variables, exactly as runpy.run_module(mod,
        init_globals=notebook) would. The notebook itself is not changed unless
        --merge is given.

        While the module runs, sys.argv is [module file, ARG ...] (the kernel's own
        arguments never reach the module's argparse), and the module is registered
        in sys.modules under its run name, so pickle, dataclasses, inspect and
        `import __main__` work for what it defines. Both are restored afterwards,
        whatever happens.

        Options may stand before or after MODULE. Everything after the first bare
        `--` is passed to the module as its arguments; any other word after MODULE
        is an error. Words are split like a shell (quote with ' or "), and
        {expression} / $name are expanded from the notebook as for %run ({{ and $$
        give a literal brace or dollar).

        Cell form: in `%%runmod MODULE`, the cell body runs first, in a scratch
        copy of the notebook namespace (it can read the notebook's variables); the
        names it binds are given to the module for this run only, overriding the
        notebook's, and never land in the notebook (not even with --merge, unless
        the module rebinds them). Any object can be a parameter.

        Merging (--merge, --only): a name is copied when the module bound it (new,
        or bound to another object than it was given: identity, not equality), it
        is not a dunder nor one of IPython's own names (In, Out, _, _i3, ...), and
        it passes --only/--exclude. Names the module deleted stay in the notebook.

        Errors: an exception in the module fails the cell, with a traceback that
        starts in the module (%debug and %pdb work); with --merge, what the module
        bound before failing is merged first. Ctrl-C (KeyboardInterrupt) is a
        failed run too, raised once sys is restored. sys.exit(0) is a success; a
        non-zero exit fails the cell with one line (ModuleExit). A mistake on the
        line (bad option, unknown or misspelt module, relative name) is a
        one-line UsageError, with a suggestion for a misspelt module.

        The result (-o, and ipy_runmod.last_result() for every run, failed ones
        too) is a RunResult: a read-only mapping over the module's globals, with
        .module, .run_name, .file, .spec, .argv, .globals, .bound, .merged,
        .elapsed, .cpu_time, .exception, .exit_code and .ok.

        --reload judges a module changed when its file's mtime or size differs from
        what they were at the end of the cell that imported it.

        Limits: with --no-alter-sys what the module itself does to sys stays, as
        under runpy. Runs hold a lock on sys: a module that starts %runmod in
        another thread and waits for it deadlocks (nested in one thread is fine).

        Tab completion: `%runmod pk<TAB>` completes top-level modules,
        `%runmod pkg.<TAB>` submodules, `%runmod --<TAB>` options.

        Settings (c.RunModMagics.NAME in ipython_config.py, or %config
        RunModMagics.NAME = VALUE): merge (False), run_name (None: runpy's
        default), isolated (False), alter_sys (True), reload (False), show_time
        (False). A flag on the line wins over the setting: --merge/--no-merge,
        --isolated/--no-isolated, --alter-sys/--no-alter-sys, --reload/--no-reload,
        --time/--no-time, --run-name NAME.

        Examples:

            %runmod pkg.analysis --main
            %runmod pkg.analysis --merge --only 'result*' --exclude '_*'
            %runmod pkg.cli --main -- --input data.csv --title 'a b'
            %runmod pkg.sweep -- --alpha {alpha}
            res = %runmod -o pkg.analysis
            %runmod pkg.analysis --isolated --no-alter-sys
            %runmod pkg.analysis --which --main -- --input data.csv
            %runmod pkg.analysis --reload -t

            %%runmod pkg.sweep -o
            alpha = 0.5
            frame = df[df.year > 2020]

        Equivalent in Python: ipy_runmod.run(module, init_globals, run_name=...,
        args=[...]) returns the RunResult; ipy_runmod.run_module is a drop-in for
        runpy.run_module.
        """
        __tracebackhide__ = True  # IPython leaves this frame out of tracebacks
        assert self.shell is not None
        opts = self._parse(self._expand(line, local_ns))
        init_globals: dict[str, Any] | None = None if opts.isolated else self.shell.user_ns
        try:
            if opts.which:  # before --reload: --which executes nothing but parent packages
                plan = _core.plan(
                    opts.module, run_name=opts.run_name, args=opts.args, alter_sys=opts.alter_sys
                )
                print(plan)
                return plan if opts.result else None
            if opts.reload:
                reloaded = reload_changed(opts.module)
                print(
                    f"Reloaded: {', '.join(reloaded)}" if reloaded else "Reloaded: nothing changed"
                )
            if cell is not None:
                init_globals = self._with_parameters(init_globals, cell)
            result = _core.run(
                opts.module,
                init_globals,
                run_name=opts.run_name,
                args=opts.args,
                alter_sys=opts.alter_sys,
            )
        except _core.NotRunnable as e:
            raise UsageError(_not_runnable_message(opts.module, e)) from None
        except SyntaxError as e:
            # The module (or the cell body) does not compile: IPython shows where; the
            # frames of the runner and of importlib's compile say nothing.
            raise e.with_traceback(None) from None
        except BaseException as e:
            interrupted = _core.last_result()
            if opts.merge and interrupted is not None and interrupted.exception is e:
                self._merge(interrupted, opts)  # a KeyboardInterrupt is a failed run too
            self._show_from_user_code(e)
            raise
        if opts.merge:
            self._merge(result, opts)
        if opts.time:
            print(
                f"{opts.module}: wall {format_seconds(result.elapsed)}, "
                f"CPU {format_seconds(result.cpu_time)}"
            )
        if not result.ok:
            assert result.exception is not None
            if isinstance(result.exception, SystemExit):
                raise ModuleExit(opts.module, result.exception) from result.exception
            self._show_from_user_code(result.exception)
            raise result.exception
        return result if opts.result else None

    def _with_parameters(self, init_globals: dict[str, Any] | None, cell: str) -> dict[str, Any]:
        """`init_globals` overridden by what the `%%runmod` cell body binds.

        The body runs in a scratch copy of the notebook namespace, so it can read the
        notebook's variables but never changes them.
        """
        assert self.shell is not None
        scratch = dict(self.shell.user_ns)
        source = self.shell.transform_cell(cell)
        # Tracebacks name the cell being run: IPython counts it before running it.
        number = max(self.shell.execution_count - 1, 0)
        filename = self.shell.compile.cache(source, number, raw_code=cell)
        code = self.shell.compile(source, filename, "exec")
        exec(code, scratch)
        given = _core.bound_names(scratch, self.shell.user_ns)
        parameters = {name: scratch[name] for name in given}
        if init_globals is None:
            return parameters
        return {**init_globals, **parameters}

    def _merge(self, result: RunResult, opts: Options) -> None:
        assert self.shell is not None
        _core.merge_into(
            self.shell.user_ns,
            result,
            skip=self._is_ipython_name,
            only=opts.only,
            exclude=opts.exclude,
        )

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

    def _parse(self, line: str) -> Options:
        ns, args = _parse_words(line)
        alter_sys = self.alter_sys if ns.alter_sys is None else ns.alter_sys
        if args and not alter_sys:
            raise UsageError("module arguments need sys.argv, which --no-alter-sys leaves alone")
        only, exclude = _patterns(ns.only), _patterns(ns.exclude)
        return Options(
            module=ns.module,
            args=list(args),
            run_name="__main__" if ns.main else (ns.run_name or self.run_name),
            isolated=self.isolated if ns.isolated is None else ns.isolated,
            merge=bool(only) or (self.merge if ns.merge is None else ns.merge),
            only=only,
            exclude=exclude,
            result=ns.result,
            alter_sys=alter_sys,
            time=self.show_time if ns.time is None else ns.time,
            which=ns.which,
            reload=self.reload if ns.reload is None else ns.reload,
        )

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
    parser = RunModMagics.runmod.parser
    options = [(s, a.nargs) for a in parser._actions for s in a.option_strings]
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


RunModMagics.runmod.parser.allow_abbrev = False  # `--mer` must not silently mean `--merge`


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


__all__ = ["ModuleExit", "RunModMagics", "complete", "load", "unload"]
