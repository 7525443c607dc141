"""The core without IPython.

`ipy_runmod.run_module` must be a drop-in for `runpy.run_module`: every case here runs
through both and compares what a user observes. Then the richer `run` / `RunResult` /
`merge_into` API of the README's "Merging back", "The result: `RunResult`" and
"Python API (no IPython needed)".
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import py_compile
import runpy
import subprocess
import sys
import textwrap
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

import pytest
import result_html

import ipy_runmod
from ipy_runmod import (
    InvalidRequest,
    NotRunnable,
    Request,
    RunResult,
    execute,
    last_result,
    merge_into,
    run,
)

pytestmark = pytest.mark.core

MakePackage = Callable[..., str]
RunModule = Callable[..., dict[str, Any]]

RUNNERS: tuple[RunModule, ...] = (runpy.run_module, ipy_runmod.run_module)
each_runner = pytest.mark.parametrize("run_module", RUNNERS, ids=["runpy", "ipy_runmod"])

SPECIAL = ("__name__", "__spec__", "__file__", "__cached__", "__loader__", "__package__", "__doc__")

#: A module that binds a bit of everything and records what it saw of its special globals.
BODY = '''
"""The module's docstring."""
import sys

value = 42
text = "hello"
items = [1, 2, 3]


def double(n):
    return 2 * n


class Thing:
    pass


doubled = double(value)
seen_name = __name__
seen_spec_name = __spec__.name
seen_package = __package__
seen_file = __file__
seen_given = given
'''

#: Records what `sys` looked like while it ran.
SYS_PROBE = """
import sys

argv = list(sys.argv)
registered = sys.modules.get(__name__)
registered_is_us = registered is not None and registered.__dict__ is globals()
"""


# --- helpers ---------------------------------------------------------------------------


def forget(mod_name: str) -> None:
    """Drop `mod_name`'s top-level package and everything in it from sys.modules."""
    top = mod_name.partition(".")[0]
    if top:
        for name in [m for m in sys.modules if m == top or m.startswith(top + ".")]:
            del sys.modules[name]


def run_both(
    mod_name: str, init_globals: dict[str, Any] | None = None, *, fresh: bool = True, **kwargs: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The globals from runpy and from ipy_runmod; `fresh`: each from a clean sys.modules."""
    results = []
    for run_module in RUNNERS:
        if fresh:
            forget(mod_name)
        results.append(run_module(mod_name, init_globals, **kwargs))
    return results[0], results[1]


def raise_both(mod_name: str, **kwargs: Any) -> tuple[BaseException, BaseException]:
    """What runpy and ipy_runmod raise for `mod_name`, each from the same sys.modules."""
    errors = []
    for run_module in RUNNERS:
        forget(mod_name)
        with pytest.raises(BaseException) as info:
            run_module(mod_name, **kwargs)
        errors.append(info.value)
    return errors[0], errors[1]


def is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__")


def comparable(value: Any) -> Any:
    """Modules by name, functions and classes by where they were defined; else the value."""
    if isinstance(value, ModuleType):
        return ("module", value.__name__)
    if isinstance(value, type | FunctionType):
        return (type(value).__name__, value.__module__, value.__qualname__)
    return value


def assert_same_globals(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> None:
    assert actual.keys() == expected.keys()
    for name in SPECIAL:
        assert actual[name] == expected[name], name
    assert actual["__builtins__"] is expected["__builtins__"]
    public = [name for name in expected if not is_dunder(name)]
    assert {n: comparable(actual[n]) for n in public} == {
        n: comparable(expected[n]) for n in public
    }


def assert_same_error(expected: BaseException, actual: BaseException) -> None:
    assert type(actual) is type(expected)
    assert str(actual) == str(expected)
    assert actual.args == expected.args
    if isinstance(expected, ImportError):
        assert isinstance(actual, ImportError)
        assert (actual.name, actual.path) == (expected.name, expected.path)


def write(path: Path, text: str) -> None:
    path.write_text(textwrap.dedent(text))
    importlib.invalidate_caches()


def top_level_module(make_package: MakePackage, text: str) -> str:
    """A plain module (no package) on sys.path, with a unique name; returns the name."""
    name = make_package({})  # reserves the name: cleaned from sys.modules afterwards
    write(make_package.root / f"{name}.py", text)  # type: ignore[attr-defined]
    return name


def sys_state() -> tuple[list[str], list[str], dict[str, ModuleType]]:
    """sys.argv (the object and its items) and sys.modules' items, to compare with later."""
    return sys.argv, list(sys.argv), dict(sys.modules)


def assert_sys_restored(before: tuple[list[str], list[str], dict[str, ModuleType]]) -> None:
    argv, argv_items, modules = before
    assert sys.argv is argv and sys.argv == argv_items
    assert {k: v for k, v in sys.modules.items() if k in modules} == modules


# --- run_module vs runpy.run_module: successful runs ------------------------------------

#: id: (files of the package, target, name of the module whose code runs); "{p}" = package
LAYOUTS: dict[str, tuple[dict[str, str], str, str]] = {
    "submodule": ({"__init__.py": "", "mod.py": BODY}, "{p}.mod", "{p}.mod"),
    "package runs __main__": ({"__init__.py": "", "__main__.py": BODY}, "{p}", "{p}.__main__"),
    "package __main__ by name": (
        {"__init__.py": "", "__main__.py": BODY},
        "{p}.__main__",
        "{p}.__main__",
    ),
    "nested submodule": (
        {
            "__init__.py": "",
            "sub/__init__.py": "",
            "sub/deep/__init__.py": "",
            "sub/deep/m.py": BODY,
        },
        "{p}.sub.deep.m",
        "{p}.sub.deep.m",
    ),
    "nested package": (
        {"__init__.py": "", "sub/__init__.py": "", "sub/__main__.py": BODY},
        "{p}.sub",
        "{p}.sub.__main__",
    ),
    "namespace submodule": ({"mod.py": BODY}, "{p}.mod", "{p}.mod"),
    "namespace __main__": ({"__main__.py": BODY}, "{p}", "{p}.__main__"),
    "namespace nested": ({"sub/mod.py": BODY}, "{p}.sub.mod", "{p}.sub.mod"),
}

#: init_globals that tries to set every special global; the run must override them all.
JUNK = {name: f"junk {name}" for name in SPECIAL}


@pytest.mark.parametrize("alter_sys", [False, True], ids=["plain", "alter_sys"])
@pytest.mark.parametrize("run_name", [None, "__main__", "custom.run_name"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_runs_like_runpy(
    make_package: MakePackage, layout: str, run_name: str | None, alter_sys: bool
) -> None:
    files, target, real = LAYOUTS[layout]
    pkg = make_package(files)
    target, real = target.format(p=pkg), real.format(p=pkg)
    init_globals = {**JUNK, "given": "from init_globals"}

    expected, actual = run_both(target, init_globals, run_name=run_name, alter_sys=alter_sys)

    assert_same_globals(expected, actual)
    # and what both give is what runpy documents
    assert actual["__name__"] == actual["seen_name"] == (run_name or real)
    assert actual["__spec__"].name == actual["seen_spec_name"] == real
    assert actual["__package__"] == actual["seen_package"] == real.rpartition(".")[0]
    assert actual["__file__"] == actual["seen_file"] == actual["__spec__"].origin
    assert actual["__doc__"] == "The module's docstring."
    assert actual["seen_given"] == "from init_globals"
    assert actual["doubled"] == 84 and actual["Thing"].__module__ == (run_name or real)


@each_runner
def test_top_level_module(make_package: MakePackage, run_module: RunModule) -> None:
    name = top_level_module(make_package, BODY)
    globals_ = run_module(name, {"given": 1})
    assert globals_["__spec__"].name == globals_["__name__"] == name
    assert globals_["__package__"] == ""
    assert globals_["__file__"].endswith(f"{name}.py")


def test_top_level_module_same_as_runpy(make_package: MakePackage) -> None:
    name = top_level_module(make_package, BODY)
    for alter_sys in (False, True):
        assert_same_globals(*run_both(name, {"given": 1}, alter_sys=alter_sys))


def test_no_docstring_gives_doc_none(make_package: MakePackage) -> None:
    pkg = make_package({"__init__.py": "", "mod.py": "x = 1\n"})
    expected, actual = run_both(f"{pkg}.mod", dict(JUNK))
    assert_same_globals(expected, actual)
    assert actual["__doc__"] is None and expected["__doc__"] is None


def test_sourceless_pyc(make_package: MakePackage, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    pkg = make_package({"__init__.py": "", "mod.py": BODY})
    source = make_package.root / pkg / "mod.py"  # type: ignore[attr-defined]
    compiled = source.with_suffix(".pyc")
    py_compile.compile(str(source), cfile=str(compiled), doraise=True)
    source.unlink()
    importlib.invalidate_caches()

    expected, actual = run_both(f"{pkg}.mod", {"given": 1})

    assert_same_globals(expected, actual)
    assert isinstance(actual["__loader__"], importlib.machinery.SourcelessFileLoader)
    assert actual["__file__"] == str(compiled)
    assert actual["doubled"] == 84


def test_zip_import(make_package: MakePackage, tmp_path: Path) -> None:
    pkg = make_package({})  # only a unique name, cleaned from sys.modules afterwards
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"{pkg}/__init__.py", "")
        zf.writestr(f"{pkg}/__main__.py", textwrap.dedent(BODY))
        zf.writestr(f"{pkg}/mod.py", textwrap.dedent(BODY))
    sys.path.insert(0, str(archive))
    try:
        for target in (pkg, f"{pkg}.mod"):
            expected, actual = run_both(target, {"given": 1})
            assert_same_globals(expected, actual)
            assert actual["__file__"].startswith(str(archive))
    finally:
        sys.path.remove(str(archive))


RELATIVE = {
    "__init__.py": "",
    "helper.py": "h = 'helper'\n",
    "sub/__init__.py": "x = 'sub.x'\n",
    "sub/leaf.py": "leaf = 'leaf'\n",
    "mod.py": """
        from . import helper
        from .sub import x
        from .sub.leaf import leaf
        got = (helper.h, x, leaf)
    """,
    "__main__.py": """
        from .helper import h
        from .sub import x
        got = (h, x)
    """,
}


@pytest.mark.parametrize("run_name", [None, "__main__"])
def test_relative_imports(make_package: MakePackage, run_name: str | None) -> None:
    pkg = make_package(RELATIVE)
    for target, got in [(f"{pkg}.mod", ("helper", "sub.x", "leaf")), (pkg, ("helper", "sub.x"))]:
        expected, actual = run_both(target, run_name=run_name)
        assert_same_globals(expected, actual)
        assert actual["got"] == expected["got"] == got


@pytest.mark.parametrize("alter_sys", [False, True], ids=["plain", "alter_sys"])
def test_returned_globals_are_live(make_package: MakePackage, alter_sys: bool) -> None:
    """Functions keep working afterwards; without alter_sys the dict IS their globals."""
    pkg = make_package({"__init__.py": "", "mod.py": "base = 10\ndef f():\n    return base + 1\n"})
    for globals_ in run_both(f"{pkg}.mod", alter_sys=alter_sys):
        assert globals_["f"]() == 11
        assert (globals_["f"].__globals__ is globals_) is not alter_sys


# --- sys during a run --------------------------------------------------------------------


@pytest.mark.parametrize("previous", [False, True], ids=["no previous entry", "previous entry"])
@pytest.mark.parametrize("run_name", [None, "__main__", "rm_custom_run_name"])
def test_alter_sys(
    make_package: MakePackage,
    monkeypatch: pytest.MonkeyPatch,
    run_name: str | None,
    previous: bool,
) -> None:
    pkg = make_package({"__init__.py": "", "mod.py": SYS_PROBE})
    target = f"{pkg}.mod"
    key = run_name or target
    monkeypatch.setattr(sys, "argv", ["the-runner", "--flag", "value"])
    entry = None
    if previous:  # the module itself when run under its own name, else any module
        entry = importlib.import_module(target) if key == target else ModuleType("previous")
        monkeypatch.setitem(sys.modules, key, entry)
    elif key in sys.modules:
        monkeypatch.delitem(sys.modules, key)
    before = sys_state()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the module was imported: runpy warns
        results = run_both(target, run_name=run_name, alter_sys=True, fresh=False)
    for globals_ in results:
        file = globals_["__file__"]
        assert globals_["argv"] == [file, "--flag", "value"]
        assert globals_["registered_is_us"] is True
        assert globals_["registered"].__name__ == key
        assert sys.modules.get(key) is entry
        assert (key in sys.modules) is previous
        assert_sys_restored(before)


def test_alter_sys_changes_argv0_in_place_as_runpy(
    make_package: MakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """runpy sets and restores sys.argv[0] in the process's own list: the rest is the module's."""
    pkg = make_package({"__init__.py": "", "mod.py": "import sys\nsys.argv.append('added')\n"})
    seen = []
    for run_module in RUNNERS:
        argv = ["the-runner", "--flag"]
        monkeypatch.setattr(sys, "argv", argv)
        forget(f"{pkg}.mod")
        run_module(f"{pkg}.mod", alter_sys=True)
        seen.append((sys.argv is argv, list(sys.argv)))
    assert seen[1] == seen[0] == (True, ["the-runner", "--flag", "added"])


@pytest.mark.parametrize("run_name", [None, "__main__"])
def test_no_alter_sys_leaves_sys_alone(
    make_package: MakePackage, monkeypatch: pytest.MonkeyPatch, run_name: str | None
) -> None:
    pkg = make_package({"__init__.py": "", "mod.py": SYS_PROBE})
    monkeypatch.setattr(sys, "argv", ["the-runner", "--flag"])
    main = sys.modules.get("__main__")
    before = sys_state()
    for globals_ in run_both(f"{pkg}.mod", run_name=run_name):
        assert globals_["argv"] == ["the-runner", "--flag"]
        assert globals_["registered_is_us"] is False
        assert globals_["registered"] is (main if run_name == "__main__" else None)
        assert_sys_restored(before)


def test_pickle_works_for_classes_defined_in_the_module(make_package: MakePackage) -> None:
    """With alter_sys the module is found in sys.modules, so pickling its classes works."""
    body = """
        import pickle

        class Point:
            def __init__(self, x):
                self.x = x

        restored = pickle.loads(pickle.dumps(Point(3))).x
    """
    pkg = make_package({"__init__.py": "", "mod.py": body})
    for run_name in (None, "__main__"):
        for globals_ in run_both(f"{pkg}.mod", run_name=run_name, alter_sys=True):
            assert globals_["restored"] == 3


def test_argv0_without_a_file_is_what_runpy_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    """An import hook whose spec has no origin: runpy sets sys.argv[0] to None."""

    class Loader(importlib.abc.InspectLoader):
        def get_source(self, fullname: str) -> str:
            return "import sys\nargv0 = sys.argv[0]\n"

    loader = Loader()

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
            if fullname == "rm_hooked_module":
                return importlib.util.spec_from_loader(fullname, loader)
            return None

    monkeypatch.setattr(sys, "meta_path", [Finder(), *sys.meta_path])
    expected, actual = run_both("rm_hooked_module", alter_sys=True)
    assert expected["__file__"] is None and expected["argv0"] is None
    assert_same_globals(expected, actual)
    assert actual["argv0"] == expected["argv0"]


NESTED_OUTER = """
import sys

inner = run_module(inner_name, alter_sys=True)
argv0_after = sys.argv[0]
still_registered = sys.modules[__name__].__dict__ is globals()
"""


@each_runner
def test_nested_runs(make_package: MakePackage, run_module: RunModule) -> None:
    """A module may itself run a module; its own sys state is back when that returns."""
    pkg = make_package({"__init__.py": "", "outer.py": NESTED_OUTER, "inner.py": SYS_PROBE})
    before = sys_state()
    given = {"run_module": run_module, "inner_name": f"{pkg}.inner"}
    outer = run_module(f"{pkg}.outer", given, alter_sys=True)
    assert outer["inner"]["argv"][0] == outer["inner"]["__file__"]
    assert outer["inner"]["registered_is_us"] is True
    assert outer["argv0_after"] == outer["__file__"] and outer["still_registered"] is True
    assert_sys_restored(before)


@pytest.mark.parametrize("where", ["init_globals", "module"])
def test_non_string_keys_in_the_namespace(make_package: MakePackage, where: str) -> None:
    """runpy runs a namespace whatever its keys; a drop-in must too."""
    body = "x = 1\n" + ("globals()[0] = 'zero'\n" if where == "module" else "")
    pkg = make_package({"__init__.py": "", "mod.py": body})
    init_globals = {1: "one"} if where == "init_globals" else None
    expected, actual = run_both(f"{pkg}.mod", init_globals)  # type: ignore[arg-type]
    assert actual == expected


# --- warnings --------------------------------------------------------------------------


def test_already_imported_warns_like_runpy(make_package: MakePackage) -> None:
    pkg = make_package({"__init__.py": "", "mod.py": "x = 1\n"})
    importlib.import_module(f"{pkg}.mod")
    caught = []
    for run_module in RUNNERS:
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            assert run_module(f"{pkg}.mod")["x"] == 1
        caught.append([(w.category, str(w.message)) for w in records])
    expected, actual = caught
    assert actual == expected
    assert [category for category, _ in actual] == [RuntimeWarning]
    assert f"{pkg}.mod' found in sys.modules after import of package '{pkg}'" in actual[0][1]


def test_already_imported_warning_is_runpys_own(make_package: MakePackage) -> None:
    """The drop-in's warning comes from runpy, so a filter written for runpy applies."""
    pkg = make_package({"__init__.py": "", "mod.py": "x = 1\n"})
    importlib.import_module(f"{pkg}.mod")
    filenames = []
    for run_module in RUNNERS:
        with warnings.catch_warnings(record=True) as records:
            warnings.simplefilter("always")
            run_module(f"{pkg}.mod")
        filenames.append([(w.filename, w.lineno) for w in records])
        with warnings.catch_warnings():
            warnings.filterwarnings("error", category=RuntimeWarning, module="runpy")
            with pytest.raises(RuntimeWarning, match=r"found in sys\.modules"):
                run_module(f"{pkg}.mod")
    expected, actual = filenames
    assert actual == expected and len(actual) == 1 and "runpy" in actual[0][0]


def test_no_warning_when_not_imported_or_a_package(make_package: MakePackage) -> None:
    pkg = make_package({"__init__.py": "", "__main__.py": "x = 1\n", "mod.py": "x = 2\n"})
    for run_module in RUNNERS:
        forget(pkg)
        importlib.import_module(pkg)  # the package itself imported: no warning for it
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert run_module(pkg)["x"] == 1
            assert run_module(f"{pkg}.mod")["x"] == 2


# --- errors ----------------------------------------------------------------------------

MISSING = "rm_definitely_missing_module"

#: id: (files of the package, target, type raised, a fragment of the message)
ERRORS: dict[str, tuple[dict[str, str], str, type[BaseException], str]] = {
    "relative name": ({}, ".mod", ImportError, "Relative module names not supported"),
    "relative package name": ({"__init__.py": ""}, ".{p}", ImportError, "Relative module"),
    "empty name": ({}, "", ImportError, "module"),
    "name ending in .py": (
        {"__init__.py": "", "mod.py": ""},
        "{p}.mod.py",
        ImportError,
        "Try using '{p}.mod' instead of '{p}.mod.py' as the module name.",
    ),
    "missing top-level": ({}, "{p}", ImportError, "No module named {p}"),
    "missing submodule": ({"__init__.py": ""}, "{p}.nope", ImportError, "No module named {p}.nope"),
    "missing parent": ({}, "{p}.mod", ImportError, "(ModuleNotFoundError: No module named '{p}')"),
    "missing middle parent": (
        {"__init__.py": ""},
        "{p}.nope.mod",
        ImportError,
        "No module named '{p}.nope'",
    ),
    "package without __main__": (
        {"__init__.py": ""},
        "{p}",
        ImportError,
        "No module named {p}.__main__; '{p}' is a package and cannot be directly executed",
    ),
    "nested package without __main__": (
        {"__init__.py": "", "sub/__init__.py": ""},
        "{p}.sub",
        ImportError,
        "'{p}.sub' is a package and cannot be directly executed",
    ),
    "namespace package": ({"mod.py": ""}, "{p}", ImportError, "cannot be directly executed"),
    "package __main__ that is a package": (
        {"__init__.py": "", "__main__/__init__.py": ""},
        "{p}.__main__",
        ImportError,
        "Cannot use package as __main__ module",
    ),
    "package whose __main__ is a package": (
        {"__init__.py": "", "__main__/__init__.py": ""},
        "{p}",
        ImportError,
        "Cannot use package as __main__ module; '{p}' is a package",
    ),
    "ZeroDivisionError in parent __init__": (
        {"__init__.py": "1 / 0\n", "mod.py": ""},
        "{p}.mod",
        ZeroDivisionError,
        "division by zero",
    ),
    "ZeroDivisionError in package __init__": (
        {"__init__.py": "1 / 0\n", "__main__.py": ""},
        "{p}",
        ZeroDivisionError,
        "division by zero",
    ),
    "ImportError in parent __init__": (
        {"__init__.py": f"import {MISSING}\n", "mod.py": ""},
        "{p}.mod",
        ModuleNotFoundError,
        f"No module named '{MISSING}'",
    ),
    "ImportError in package __init__": (
        {"__init__.py": f"import {MISSING}\n", "__main__.py": ""},
        "{p}",
        ModuleNotFoundError,
        f"No module named '{MISSING}'",
    ),
    "ImportError in nested __init__": (
        {"__init__.py": "", "sub/__init__.py": f"import {MISSING}\n", "sub/mod.py": ""},
        "{p}.sub.mod",
        ModuleNotFoundError,
        f"No module named '{MISSING}'",
    ),
    "missing own submodule in __init__": (
        {"__init__.py": "from . import nope\n", "mod.py": ""},
        "{p}.mod",
        ImportError,
        "cannot import name 'nope'",
    ),
    "SyntaxError in the module": (
        {"__init__.py": "", "mod.py": "x = (\n"},
        "{p}.mod",
        SyntaxError,
        "never closed",
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_errors_like_runpy(make_package: MakePackage, case: str) -> None:
    files, target, error_type, fragment = ERRORS[case]
    pkg = make_package(files)
    expected, actual = raise_both(target.format(p=pkg))
    assert_same_error(expected, actual)
    assert type(actual) is error_type
    assert fragment.format(p=pkg) in str(actual)


@pytest.mark.parametrize("case", [c for c, case in ERRORS.items() if case[2] is ImportError])
def test_run_raises_not_runnable_with_runpys_message(make_package: MakePackage, case: str) -> None:
    files, target, _, _ = ERRORS[case]
    target = target.format(p=make_package(files))
    with pytest.raises(ImportError) as runpy_error:
        runpy.run_module(target)
    forget(target)
    with pytest.raises(NotRunnable) as our_error:
        run(target)
    assert str(our_error.value) == str(runpy_error.value)


@pytest.mark.parametrize(
    "raised",
    [ValueError("bad", 42), SystemExit(3), SystemExit("bye"), KeyboardInterrupt()],
    ids=repr,
)
@pytest.mark.parametrize("alter_sys", [False, True], ids=["plain", "alter_sys"])
def test_module_exception_propagates_unchanged(
    make_package: MakePackage, raised: BaseException, alter_sys: bool
) -> None:
    pkg = make_package(
        {"__init__.py": "", "mod.py": "before = 1\nsink.append(error)\nraise error\n"}
    )
    before = sys_state()
    for run_module in RUNNERS:
        sink: list[BaseException] = []
        error = type(raised)(*raised.args)
        with pytest.raises(type(raised)) as info:
            run_module(f"{pkg}.mod", {"sink": sink, "error": error}, alter_sys=alter_sys)
        assert info.value is error and sink == [error]
        assert_sys_restored(before)


@each_runner
def test_exception_args_are_the_same_objects(
    make_package: MakePackage, run_module: RunModule
) -> None:
    token = object()
    pkg = make_package({"__init__.py": "", "mod.py": "raise LookupError(token, [1, 2])\n"})
    with pytest.raises(LookupError) as info:
        run_module(f"{pkg}.mod", {"token": token})
    assert info.value.args[0] is token and info.value.args[1] == [1, 2]


# --- init_globals and re-reading ---------------------------------------------------------

CHANGES_EVERYTHING = """
__name__ = "renamed"
x = "rebound"
del y
new = 1
items.append("mutating a given object is the module's business")
"""


@pytest.mark.parametrize("fails", [False, True], ids=["succeeds", "fails"])
def test_init_globals_never_mutated(make_package: MakePackage, fails: bool) -> None:
    body = CHANGES_EVERYTHING + ("raise RuntimeError('late')\n" if fails else "")
    pkg = make_package({"__init__.py": "", "mod.py": body})
    runners: list[Callable[[dict[str, Any]], object]] = [
        *(lambda g, f=f: f(f"{pkg}.mod", g) for f in RUNNERS),
        *(lambda g, f=f: f(f"{pkg}.mod", g, alter_sys=True) for f in RUNNERS),
        lambda g: run(f"{pkg}.mod", g),
    ]
    for runner in runners:
        items: list[str] = []
        init_globals = {"__name__": "__main__", "x": "given", "y": "given", "items": items}
        snapshot = dict(init_globals)
        try:
            runner(init_globals)
        except RuntimeError:
            assert fails
        assert init_globals.keys() == snapshot.keys()
        assert all(init_globals[k] is snapshot[k] for k in snapshot)


@each_runner
def test_module_code_is_reread(
    make_package: MakePackage, monkeypatch: pytest.MonkeyPatch, run_module: RunModule
) -> None:
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    pkg = make_package({"__init__.py": "", "mod.py": "value = 1\n"})
    source = make_package.root / pkg / "mod.py"  # type: ignore[attr-defined]
    assert run_module(f"{pkg}.mod")["value"] == 1
    write(source, "value = 'edited, and longer'\n")
    assert run_module(f"{pkg}.mod")["value"] == "edited, and longer"
    importlib.import_module(f"{pkg}.mod")  # even once imported, the file is read again
    write(source, "value = 3\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert run_module(f"{pkg}.mod")["value"] == 3


# --- run(): RunResult ------------------------------------------------------------------


def test_run_returns_a_result(make_package: MakePackage, monkeypatch: pytest.MonkeyPatch) -> None:
    body = SYS_PROBE + "import time\ntime.sleep(0.02)\nx = 1\nkept = kept\ngiven = 'rebound'\n"
    pkg = make_package({"__init__.py": "", "__main__.py": body})
    monkeypatch.setattr(sys, "argv", ["kernel", "-f", "connection.json"])
    before = sys_state()
    kept = object()

    res = run(pkg, {"kept": kept, "given": "given"}, args=["--alpha", "1"], alter_sys=True)

    assert isinstance(res, RunResult)
    assert (res.module, res.run_name, res.spec.name) == (pkg, f"{pkg}.__main__", f"{pkg}.__main__")
    assert res.file == res.spec.origin == res["__file__"]
    assert Path(res.file).name == "__main__.py"
    assert res.argv == res["argv"] == [res.file, "--alpha", "1"]
    assert res["registered_is_us"] is True
    assert_sys_restored(before)
    # Run under its own name, it stays registered as that module, as an import would.
    assert vars(sys.modules[f"{pkg}.__main__"]) is res.globals
    # a read-only mapping over the final globals
    assert res["x"] == 1 and "x" in res and "nope" not in res
    assert list(res) == list(res.globals) and len(res) == len(res.globals)
    assert dict(res) == res.globals and res["kept"] is kept
    with pytest.raises(TypeError):
        res["x"] = 2  # type: ignore[index]
    assert (res.exception, res.exit_code, res.ok, res.merged) == (None, None, True, ())
    assert set(res.bound) == {"sys", "argv", "registered", "registered_is_us", "time", "x", "given"}
    assert res.elapsed >= 0.02 and 0 <= res.cpu_time < res.elapsed
    assert last_result() is res


def test_run_measures_cpu_time(make_package: MakePackage) -> None:
    body = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.02:\n    pass\n"
    pkg = make_package({"__init__.py": "", "mod.py": body})
    res = run(f"{pkg}.mod")
    assert res.cpu_time >= 0.02 and res.elapsed >= 0.02


def test_cpu_time_is_the_module_thread_s(make_package: MakePackage) -> None:
    """README: the CPU time is the module's own thread's, never the process's other threads'."""
    body = """
        import threading, time

        def burn():  # another thread of the process: a kernel has several
            start = time.thread_time()
            while time.thread_time() - start < 0.2:
                pass
            done.set()

        done = threading.Event()
        threading.Thread(target=burn).start()
        done.wait()  # the module's thread waits, using no CPU
    """
    pkg = make_package({"__init__.py": "", "mod.py": body})
    res = run(f"{pkg}.mod")
    assert res.elapsed >= 0.2 and res.cpu_time < 0.1, (res.elapsed, res.cpu_time)


def test_run_without_alter_sys(make_package: MakePackage, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = make_package({"__init__.py": "", "mod.py": SYS_PROBE})
    monkeypatch.setattr(sys, "argv", ["kernel", "-f"])
    before = sys_state()
    with pytest.raises(InvalidRequest, match="alter_sys"):
        run(f"{pkg}.mod", args=["lost"], alter_sys=False)  # nothing runs
    res = run(f"{pkg}.mod", alter_sys=False)
    assert res.argv is None
    assert res["argv"] == ["kernel", "-f"] and res["registered"] is None
    assert_sys_restored(before)


def test_run_name_and_spec(make_package: MakePackage) -> None:
    pkg = make_package({"__init__.py": "", "mod.py": BODY})
    res = run(f"{pkg}.mod", {"given": 0}, run_name="__main__")
    assert res.run_name == res["__name__"] == "__main__"
    assert res.spec.name == res["__spec__"].name == f"{pkg}.mod"


def test_failed_run_keeps_partial_globals(
    make_package: MakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = "import sys\nearly = 1\nargv = list(sys.argv)\nraise ValueError('boom')\nlate = 2\n"
    pkg = make_package({"__init__.py": "", "mod.py": body})
    monkeypatch.setattr(sys, "argv", ["kernel"])
    before = sys_state()
    res = run(f"{pkg}.mod", args=["a"])
    assert isinstance(res.exception, ValueError) and res.exception.args == ("boom",)
    assert res.ok is False and res.exit_code is None
    assert res["early"] == 1 and "late" not in res and res["argv"] == [res.file, "a"]
    assert set(res.bound) == {"sys", "early", "argv"}
    assert_sys_restored(before)
    assert f"{pkg}.mod" not in sys.modules  # a failed run is not left registered
    assert last_result() is res


@pytest.mark.parametrize(
    ("code", "exit_code", "ok"),
    [(0, 0, True), (None, 0, True), (2, 2, False), ("msg", 1, False)],
)
def test_system_exit(make_package: MakePackage, code: object, exit_code: int, ok: bool) -> None:
    pkg = make_package({"__init__.py": "", "mod.py": "bound = 1\nraise SystemExit(code)\n"})
    before = sys_state()
    res = run(f"{pkg}.mod", {"code": code})
    assert isinstance(res.exception, SystemExit) and res.exception.code == code
    assert res.exit_code == exit_code and res.ok is ok
    assert res["bound"] == 1
    assert_sys_restored(before)


def test_keyboard_interrupt_is_reraised(
    make_package: MakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = make_package({"__init__.py": "", "mod.py": "partial = 1\nraise KeyboardInterrupt\n"})
    monkeypatch.setattr(sys, "argv", ["kernel"])
    monkeypatch.setitem(sys.modules, "__main__", ModuleType("__main__"))
    before = sys_state()
    with pytest.raises(KeyboardInterrupt) as info:
        run(f"{pkg}.mod", run_name="__main__", args=["x"])
    assert_sys_restored(before)
    tb = info.value.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    assert tb is not None and tb.tb_frame.f_code.co_filename.endswith("mod.py")
    res = last_result()
    assert res is not None and res.exception is info.value
    assert res["partial"] == 1 and res.ok is False and res.exit_code is None


def test_last_result_is_the_latest(make_package: MakePackage) -> None:
    pkg = make_package(
        {"__init__.py": "", "a.py": "x = 'a'\n", "b.py": "x = 'b'\n", "bad.py": "1 / 0\n"}
    )
    first = run(f"{pkg}.a")
    assert last_result() is first
    second = run(f"{pkg}.b")
    assert last_result() is second and second["x"] == "b"
    failed = run(f"{pkg}.bad")
    assert last_result() is failed and isinstance(failed.exception, ZeroDivisionError)


@pytest.mark.parametrize(
    "statement", ["inner()", "raise SystemExit(2)", "import sys; sys.exit('msg')"]
)
def test_traceback_starts_at_the_module(make_package: MakePackage, statement: str) -> None:
    body = f"def inner():\n    raise ValueError('deep')\n\n{statement}\n"
    pkg = make_package({"__init__.py": "", "mod.py": body})
    res = run(f"{pkg}.mod")
    assert res.exception is not None
    tb = res.exception.__traceback__
    assert tb is not None
    assert tb.tb_frame.f_code.co_filename == res.file
    assert tb.tb_frame.f_code.co_name == "<module>"
    if statement == "inner()":
        assert tb.tb_next is not None and tb.tb_next.tb_frame.f_code.co_name == "inner"


def test_repr_is_one_line(make_package: MakePackage) -> None:
    pkg = make_package({"__init__.py": "", "good.py": "a = 1\nb = 2\n", "bad.py": "c = 1\n1 / 0\n"})
    good = repr(run(f"{pkg}.good", {"untouched": 0}, run_name="__main__"))
    bad = repr(run(f"{pkg}.bad"))
    for text in (good, bad):
        assert "\n" not in text and text.startswith("<RunResult") and text.endswith("s>")
    assert f"{pkg}.good" in good and "__main__" in good and "2 names" in good
    assert "ok" in good.replace(pkg, "") and "failed" not in good
    assert f"{pkg}.bad" in bad and "failed" in bad and "1 name " in bad


def test_repr_html_escapes(make_package: MakePackage) -> None:
    body = "markup = '<b>&</b>'\nodd = type('<T&>', (), {})()\n"
    pkg = make_package({"__init__.py": "", "mod.py": body})
    html = run(f"{pkg}.mod", {"untouched_given": 1}, run_name="<run&>")._repr_html_()
    for raw in ("<b>", "</b>", "<T&>", "<run&>"):
        assert raw not in html
    for escaped in ("&lt;b&gt;&amp;&lt;/b&gt;", "&lt;T&amp;&gt;", "&lt;run&amp;&gt;"):
        assert escaped in html
    shown = result_html.read(html)
    assert shown.rows[0] == ("markup", "str", "'<b>&</b>'")
    assert [row[:2] for row in shown.rows] == [("markup", "str"), ("odd", "<T&>")]
    assert "untouched_given" not in html


# --- the display (README, "The result: `RunResult`") ---------------------------------------

DISPLAY_BODY = """
import os
from math import cos

class Array:  # numpy's and pandas' attributes, without numpy or pandas
    shape = (3, 4)
    dtype = "float64"

class Frame:
    shape = (5, 2)
    columns = ["x", "y"]
    dtypes = ["int64", "float64"]

class Proxy:  # answers every attribute: never taken for an array
    def __getattr__(self, name):
        return (1, 2)
    def __repr__(self):
        return "Proxy()"

class Table:
    def __repr__(self):
        return "   x   y\\n0  0   0\\n1  1   1"

class Broken:
    def __repr__(self):
        raise ValueError("no repr")

def area(width, height=1):
    return width * height

array, frame, proxy, table, broken = Array(), Frame(), Proxy(), Table(), Broken()
stats = {"n": 4, "mean": 2.5, "min": 1, "max": 4, "stdev": 1.29}
names = list(range(1000))
text = "x" * 100
"""


def test_display_summarises_each_value_on_one_line(make_package: MakePackage) -> None:
    pkg = make_package({"__init__.py": "", "mod.py": DISPLAY_BODY})
    res = run(f"{pkg}.mod")
    shown = result_html.read(res._repr_html_())
    rows = {name: (kind, value) for name, kind, value in shown.rows}
    assert rows["array"] == ("Array", "shape (3, 4), float64")
    assert rows["frame"] == ("Frame", "shape (5, 2), columns x: int64, y: float64")
    assert rows["proxy"] == ("Proxy", "Proxy()")
    assert rows["table"] == ("Table", "x   y …")  # the first line, never lines run together
    assert rows["broken"] == ("Broken", "<repr failed: ValueError>")
    # a dict in its own order, every key shown; containers with their length
    assert rows["stats"] == (
        "dict",
        "5 items: {'n': 4, 'mean': 2.5, 'min': 1, 'max': 4, 'stdev': 1.29}",
    )
    assert rows["names"] == ("list", "1,000 items: [0, 1, 2, 3, 4, 5, …]")
    assert rows["text"][1].endswith("(100 chars)")
    assert rows["area"] == ("function", "area(width, height=1)")
    assert rows["Array"] == ("type", f"class {pkg}.mod.Array")
    # what the module imported is listed apart, after its own names
    assert "os" not in rows and "cos" not in rows
    assert shown.imported_summary == "imported: 2 names"
    assert shown.imported == [
        ("os", "module", "os"),
        ("cos", "builtin_function_or_method", "cos(x, /)"),
    ]
    assert all("\n" not in value for _, _, value in shown.rows)
    # the text display says the same, line by line
    text = res._text()
    for name, (kind, value) in rows.items():
        assert any(line.split() == [name, kind, *value.split()] for line in text.splitlines())
    assert text.splitlines()[-1] == "  imported: os, cos"
    assert shown.text == text  # the fallback where styles do not run


def test_display_of_a_numpy_array(make_package: MakePackage) -> None:
    pytest.importorskip("numpy")
    body = "import numpy as np\ngrid = np.zeros((3, 4), dtype=np.int32)\nmean = grid.mean()\n"
    pkg = make_package({"__init__.py": "", "mod.py": body})
    shown = result_html.read(run(f"{pkg}.mod")._repr_html_())
    assert shown.rows == [
        ("grid", "ndarray", "shape (3, 4), int32"),
        ("mean", "float64", "np.float64(0.0)"),
    ]
    assert shown.imported == [("np", "module", "numpy")]


def test_display_cuts_long_tables(make_package: MakePackage) -> None:
    body = "".join(f"v{i} = {i}\n" for i in range(60)) + "from math import *\n"
    pkg = make_package({"__init__.py": "", "mod.py": body})
    res = run(f"{pkg}.mod")
    shown = result_html.read(res._repr_html_())
    own = [row[0] for row in shown.rows]
    assert own == [f"v{i}" for i in range(20)]  # the first rows, in the module's order
    assert shown.more[0] == f"… and {65 - 20} more"  # v20..v59 and math's pi, e, tau, inf, nan
    assert len(shown.imported) == 20 and shown.more[1].startswith("… and ")
    lines = res._text().splitlines()
    assert len(lines) == 1 + 20 + 2 and lines[21] == "  … and 45 more"
    assert lines[22].startswith("  imported: acos, ") and lines[22].endswith("more")


def test_display_header(make_package: MakePackage) -> None:
    pkg = make_package({"__init__.py": "", "ok.py": "x = 1\n", "bad.py": "y = 2\n1 / 0\n"})
    ok = run(f"{pkg}.ok")
    assert result_html.read(ok._repr_html_()).header.startswith(
        f"RunResult {pkg}.ok ok 1 name bound"
    )
    assert f"{pkg}.ok as" not in repr(ok) + ok._text()  # the run name only when it differs
    main = run(f"{pkg}.ok", run_name="__main__")
    assert f"{pkg}.ok as __main__: ok" in repr(main) and f"{pkg}.ok as __main__" in main._text()
    bad = result_html.read(run(f"{pkg}.bad")._repr_html_())
    assert bad.header.startswith(f"RunResult {pkg}.bad failed: ZeroDivisionError 1 name bound")
    assert bad.error == "ZeroDivisionError: division by zero"
    assert bad.rows == [("y", "int", "2")]
    assert run(f"{pkg}.bad")._text().splitlines()[1] == "  ZeroDivisionError: division by zero"


# --- merge_into (README, "Merging back") -------------------------------------------------

MERGE_BODY = '''
"""A docstring: __doc__ is bound, but never merged."""
__all__ = ["new"]
__version__ = "1.0"
new = "new"
rebound = ["rebound"]
same = same
del deleted
_private = 1
__mangled = 2
hidden = "hidden by the shell"
'''


def test_merge_rules(make_package: MakePackage) -> None:
    pkg = make_package({"__init__.py": "", "mod.py": MERGE_BODY})
    same, old, deleted = object(), ["old"], object()
    namespace: dict[str, Any] = {
        "__name__": "__main__",
        "__doc__": "the notebook",
        "same": same,
        "rebound": old,
        "deleted": deleted,
        "hidden": "the shell's",
        "untouched": 0,
    }
    snapshot = dict(namespace)
    res = run(f"{pkg}.mod", namespace)
    assert namespace == snapshot  # running never touches it; only merging does

    merged = merge_into(namespace, res, skip={"hidden", "absent"}.__contains__)

    assert set(merged) == {"new", "rebound", "_private", "__mangled"}
    assert res.merged == merged
    assert namespace["new"] == "new" and namespace["rebound"] == ["rebound"]
    assert namespace["same"] is same and namespace["deleted"] is deleted
    assert namespace["hidden"] == "the shell's" and namespace["untouched"] == 0
    assert namespace["__name__"] == "__main__" and namespace["__doc__"] == "the notebook"
    assert "__all__" not in namespace and "__version__" not in namespace
    assert "__file__" not in namespace and "__spec__" not in namespace


@pytest.mark.parametrize(
    ("only", "exclude", "merged"),
    [
        ((), (), {"alpha", "alpine", "beta", "gamma_1", "gamma_2"}),
        (["beta"], (), {"beta"}),
        (["al*", "gamma_?"], (), {"alpha", "alpine", "gamma_1", "gamma_2"}),
        ((), ["gamma_*", "beta"], {"alpha", "alpine"}),
        (["al*", "gamma_?"], ["*_2", "alpine"], {"alpha", "gamma_1"}),
        (["*"], [], {"alpha", "alpine", "beta", "gamma_1", "gamma_2"}),
        (["__*", "_*"], [], set()),
        (["ALPHA"], [], set()),
    ],
)
def test_merge_only_and_exclude(
    make_package: MakePackage, only: list[str], exclude: list[str], merged: set[str]
) -> None:
    body = "__x__ = 0\nalpha = alpine = beta = gamma_1 = gamma_2 = 1\n"
    pkg = make_package({"__init__.py": "", "mod.py": body})
    namespace: dict[str, Any] = {}
    names = merge_into(namespace, run(f"{pkg}.mod"), only=only, exclude=exclude)
    assert set(names) == merged and namespace.keys() == merged


def test_merge_after_failure(make_package: MakePackage) -> None:
    pkg = make_package({"__init__.py": "", "mod.py": "before = 1\n1 / 0\nafter = 2\n"})
    namespace: dict[str, Any] = {"before": 0}
    res = run(f"{pkg}.mod", namespace)
    assert merge_into(namespace, res) == ("before",)
    assert namespace == {"before": 1}


@pytest.mark.parametrize("size", [10, 60_000], ids=["small", "large"])
def test_bound_is_judged_at_the_end_of_the_run_at_every_size(
    make_package: MakePackage, size: int
) -> None:
    """README, The result: `bound` is judged at the end of the run, whatever the size."""
    body = "rebound = 'by the module'\nnew = 1\ndef later():\n    global kept\n    kept = 2\n"
    pkg = make_package({"__init__.py": "", "mod.py": body})
    given: dict[str, Any] = {f"v{i}": i for i in range(size)}
    given.update(kept=object(), rebound=object())
    res = run(f"{pkg}.mod", given)
    # The notebook goes on: later cells rebind, add and delete names.
    given["kept"] = "rebound in a later cell"
    given["later"] = "bound in a later cell"
    del given["v0"]
    res["later"]()  # the module's own function binds one more of its globals
    assert sorted(res.bound) == ["kept", "later", "new", "rebound"]


def test_importing_ipy_runmod_imports_no_ipython() -> None:
    """README, "Python API (no IPython needed)": the package and its core load without it."""
    code = (
        "import ipy_runmod, ipy_runmod._core, sys\n"
        "print(any(m == 'IPython' or m.startswith('IPython.') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out == "False\n"


def test_what_is_found_follows_the_path_as_it_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module that appears earlier on the path, or goes away, is seen as runpy sees it."""
    early, late = tmp_path / "early", tmp_path / "late"
    early.mkdir()
    late.mkdir()
    monkeypatch.syspath_prepend(str(late))
    monkeypatch.syspath_prepend(str(early))
    name = "rm_moving_module"
    (late / f"{name}.py").write_text("where = 'late'\n")
    steps = []
    for change in (
        lambda: None,
        lambda: (early / f"{name}.py").write_text("where = 'early'\n"),
        lambda: (early / f"{name}.py").unlink(),
        lambda: (late / f"{name}.py").unlink(),
    ):
        change()
        importlib.invalidate_caches()  # what importlib needs, not ipy_runmod
        seen = []
        for run_module in RUNNERS:
            try:
                seen.append(run_module(name)["where"])
            except ImportError as e:
                seen.append(str(e))
        steps.append(seen)
    assert [expected for expected, _ in steps] == [
        "late",
        "early",
        "late",
        f"No module named {name}",
    ]
    assert [actual for _, actual in steps] == [expected for expected, _ in steps]


def test_edits_take_effect_in_runs_from_a_script(make_package: MakePackage) -> None:
    """README, "Edits take effect": with no IPython and no cells, between runs too."""
    lib = make_package({"__init__.py": "", "helper.py": "factor = 1\n"})
    app = make_package({"__init__.py": "", "main.py": f"from {lib}.helper import factor\n"})
    assert execute(Request(f"{app}.main", reload=True))["factor"] == 1
    path = Path(make_package.root, lib, "helper.py")  # type: ignore[attr-defined]
    st = path.stat()
    path.write_text("factor = 2\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    result = execute(Request(f"{app}.main", reload=True))
    assert result["factor"] == 2 and result.reloaded == (f"{lib}.helper",)
