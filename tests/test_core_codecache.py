"""The in-memory code cache: unchanged files reuse their code, every change is picked up.

Also the C-speed path of `bound_names` (last section), which must give exactly the names
the plain loop gives. Nothing here is timed: `benchmarks/run.py` measures speed.
"""

from __future__ import annotations

import gc
import importlib
import importlib.util
import os
import py_compile
import runpy
import sys
import weakref
import zipfile
from collections.abc import Callable, Iterator
from importlib.machinery import ModuleSpec, SourceFileLoader, SourcelessFileLoader
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.interactiveshell import InteractiveShell

from ipy_runmod import _codecache, _core, _watch, run

pytestmark = pytest.mark.core

MakePackage = Callable[..., str]  # the `make_package` fixture of conftest.py

#: A whole second and a bit, so that one more nanosecond stays within the same second.
SECOND = 1_700_000_000 * 10**9 + 500


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    _codecache.clear()
    yield
    _codecache.clear()


def module_file(make_package: MakePackage, name: str, module: str = "m") -> Path:
    return Path(make_package.root, name, f"{module}.py")  # type: ignore[attr-defined]


def code_of(mod_name: str) -> CodeType:
    return _core.find_module(mod_name).code


def set_mtime_ns(path: Path, ns: int) -> None:
    os.utime(path, ns=(ns, ns))


def write_pyc(path: Path) -> None:
    """A timestamp .pyc for `path`, as an import (or compileall) would leave it."""
    py_compile.compile(
        str(path), doraise=True, invalidation_mode=py_compile.PycInvalidationMode.TIMESTAMP
    )


# --- unchanged files -------------------------------------------------------------------


def test_an_unchanged_file_reuses_its_code_object(make_package: MakePackage) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = [1]\n"})
    first = run(f"{name}.m")
    assert code_of(f"{name}.m") is code_of(f"{name}.m")
    second = run(f"{name}.m")
    # Same code, but a fresh run: new namespace, new objects.
    assert second["x"] == [1] and second["x"] is not first["x"]
    assert second.globals is not first.globals


def test_a_valid_pyc_is_used_first_then_only_the_source(
    make_package: MakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    compiled: list[str] = []
    stock = SourceFileLoader.source_to_code

    def counting(self: Any, data: Any, path: Any, *, _optimize: int = -1) -> CodeType:
        compiled.append(path)
        return stock(self, data, path, _optimize=_optimize)

    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    path = module_file(make_package, name)
    write_pyc(path)
    __import__(name)
    monkeypatch.setattr(SourceFileLoader, "source_to_code", counting)
    assert run(f"{name}.m")["x"] == 1
    assert compiled == []  # first sight: the .pyc, as runpy would
    path.write_text("x = 22\n")
    assert run(f"{name}.m")["x"] == 22
    assert run(f"{name}.m")["x"] == 22
    assert compiled == [str(path)]  # changed: compiled from the source, once


# --- changes are picked up --------------------------------------------------------------


def test_an_edit_is_picked_up(make_package: MakePackage) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    assert run(f"{name}.m")["x"] == 1
    module_file(make_package, name).write_text("x = 'edited'\n")
    assert run(f"{name}.m")["x"] == "edited"


def test_a_same_size_edit_one_nanosecond_later_is_picked_up(make_package: MakePackage) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    path = module_file(make_package, name)
    set_mtime_ns(path, SECOND)
    write_pyc(path)
    assert run(f"{name}.m")["x"] == 1

    path.write_text("x = 2\n")  # same size
    set_mtime_ns(path, SECOND + 1)  # same whole second
    # What runpy gets: the .pyc still looks valid to importlib (whole seconds, size).
    assert runpy.run_module(f"{name}.m")["x"] == 1
    assert run(f"{name}.m")["x"] == 2
    assert run(f"{name}.m")["x"] == 2  # and the new code is what is cached now


def test_a_file_replaced_by_another_inode_is_picked_up(make_package: MakePackage) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    path = module_file(make_package, name)
    assert run(f"{name}.m")["x"] == 1
    before = path.stat()

    new = path.with_name("m.py.new")
    new.write_text("x = 2\n")
    set_mtime_ns(new, before.st_mtime_ns)
    os.replace(new, path)  # as editors and `git checkout` save files
    after = path.stat()
    assert after.st_ino != before.st_ino
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    assert run(f"{name}.m")["x"] == 2


def test_a_module_turned_into_a_package_is_picked_up(make_package: MakePackage) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = 'module'\n"})
    assert run(f"{name}.m")["x"] == "module"

    module_file(make_package, name).unlink()
    package = Path(make_package.root, name, "m")  # type: ignore[attr-defined]
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text("x = 'package'\n")
    # The import system notices a changed directory by its mtime; this call is only
    # needed on file systems with coarse timestamps, for runpy exactly as for us.
    importlib.invalidate_caches()
    # The first run stays registered as the module, as an import would; runpy would take
    # its spec (a file now gone) from there, so runpy is shown the package without it.
    kept = sys.modules.pop(f"{name}.m")
    assert runpy.run_module(f"{name}.m")["x"] == "package"
    sys.modules[f"{name}.m"] = kept
    gone = weakref.ref(kept)
    del kept
    result = run(f"{name}.m")
    assert result["x"] == "package"
    assert result.run_name == f"{name}.m.__main__"
    gc.collect()
    assert gone() is None  # the module's run is no longer kept for the module it was


def test_a_deleted_file_does_not_run_from_the_cache(make_package: MakePackage) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    assert run(f"{name}.m")["x"] == 1
    module_file(make_package, name).unlink()
    importlib.invalidate_caches()
    with pytest.raises(_core.NotRunnable, match="No module named"):
        run(f"{name}.m")


def test_a_syntax_error_after_an_edit_raises_then_a_fix_runs(make_package: MakePackage) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    path = module_file(make_package, name)
    assert run(f"{name}.m")["x"] == 1
    path.write_text("x = (\n")
    with pytest.raises(SyntaxError):
        run(f"{name}.m")
    with pytest.raises(SyntaxError):  # still: the old code is never run instead
        run(f"{name}.m")
    path.write_text("x = 3\n")
    assert run(f"{name}.m")["x"] == 3


def test_a_module_file_gone_between_finding_and_reading_raises_as_runpy(
    make_package: MakePackage,
) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    spec = importlib.util.find_spec(f"{name}.m")
    assert spec is not None
    assert _codecache.get_code(f"{name}.m", spec) is not None
    module_file(make_package, name).unlink()
    _watch.poll()  # as every caller does before asking for code
    with pytest.raises(OSError):
        _codecache.get_code(f"{name}.m", spec)
    assert not _codecache._cache


def test_an_edit_is_picked_up_through_the_magic(
    ip: InteractiveShell, make_package: MakePackage
) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    path = module_file(make_package, name)
    ip.run_line_magic("runmod", f"{name}.m --merge")
    assert ip.user_ns["x"] == 1
    mtime = path.stat().st_mtime_ns
    path.write_text("x = 2\n")
    set_mtime_ns(path, mtime + 1)
    ip.run_line_magic("runmod", f"{name}.m --merge")
    assert ip.user_ns["x"] == 2


# --- what is not cached ----------------------------------------------------------------


def test_a_sourceless_module_runs_from_its_loader_each_time(make_package: MakePackage) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = 'compiled'\n"})
    source = module_file(make_package, name)
    legacy = source.with_suffix(".pyc")  # a .pyc beside the (then removed) source
    py_compile.compile(str(source), cfile=str(legacy), doraise=True)
    source.unlink()
    importlib.invalidate_caches()
    assert run(f"{name}.m")["x"] == "compiled"
    assert isinstance(_core.find_module(f"{name}.m").spec.loader, SourcelessFileLoader)
    assert code_of(f"{name}.m") is not code_of(f"{name}.m")
    assert not _codecache._cache

    source.write_text("x = 'recompiled'\n")
    py_compile.compile(str(source), cfile=str(legacy), doraise=True)
    source.unlink()
    assert run(f"{name}.m")["x"] == "recompiled"


@pytest.fixture
def zipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A package in a zip file on sys.path; its name."""
    name = f"rmzip{os.getpid()}_{id(tmp_path)}"
    archive = tmp_path / "modules.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr(f"{name}/__init__.py", "")
        z.writestr(f"{name}/m.py", "x = 'zipped'\n")
    monkeypatch.syspath_prepend(str(archive))
    yield name
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]


def test_a_zipped_module_runs_from_its_loader_each_time(zipped: str) -> None:
    assert run(f"{zipped}.m")["x"] == "zipped"
    assert run(f"{zipped}.m")["x"] == "zipped"
    assert code_of(f"{zipped}.m") is not code_of(f"{zipped}.m")
    assert not _codecache._cache


class HookLoader(SourceFileLoader):
    """An import hook that rewrites the source, as instrumenting hooks do."""

    def source_to_code(  # type: ignore[override]
        self, data: bytes, path: str, *, _optimize: int = -1
    ) -> CodeType:
        return super().source_to_code(data + b"\nhooked = True\n", path)


class HookFinder:
    def __init__(self, name: str, path: Path) -> None:
        self.name, self.path = name, str(path)

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(
            fullname, self.path, loader=HookLoader(fullname, self.path)
        )


def test_a_hook_loaded_module_runs_from_its_loader_each_time(
    make_package: MakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    path = module_file(make_package, name)
    hooked = f"{name}_hooked"
    monkeypatch.setattr(sys, "meta_path", [HookFinder(hooked, path), *sys.meta_path])
    result = run(hooked)
    assert (result["x"], result["hooked"]) == (1, True)
    assert code_of(hooked) is not code_of(hooked)
    assert not _codecache._cache


def test_a_source_loader_subclass_that_changes_nothing_is_cached(
    make_package: MakePackage,
) -> None:
    class Plain(SourceFileLoader):
        pass

    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    path = str(module_file(make_package, name))
    mod = f"{name}.m"
    spec = importlib.util.spec_from_file_location(mod, path, loader=Plain(mod, path))
    assert spec is not None
    assert _codecache.get_code(mod, spec) is _codecache.get_code(mod, spec)
    _codecache.clear()
    hooked = importlib.util.spec_from_file_location(mod, path, loader=HookLoader(mod, path))
    assert hooked is not None
    assert _codecache.get_code(mod, hooked) is not _codecache.get_code(mod, hooked)
    assert not _codecache._cache


def test_a_module_without_a_file_runs(make_package: MakePackage) -> None:
    # A frozen module's loader has no file: its get_code is called, as runpy does.
    spec = importlib.util.find_spec("__hello__")
    assert spec is not None and spec.origin == "frozen"
    assert _codecache.get_code("__hello__", spec) is not None
    assert not _codecache._cache


# --- bounds and lifetimes ---------------------------------------------------------------


def test_the_cache_is_bounded_least_recently_run_first_out(
    make_package: MakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_codecache, "MAX_ENTRIES", 3)
    name = make_package({"__init__.py": "", **{f"m{i}.py": f"x = {i}\n" for i in range(5)}})
    for i in range(3):
        run(f"{name}.m{i}")
    run(f"{name}.m0")  # most recent now
    run(f"{name}.m3")
    run(f"{name}.m4")
    cached = {Path(path).stem for path in _codecache._cache}
    assert cached == {"m0", "m3", "m4"}
    assert all(run(f"{name}.m{i}")["x"] == i for i in range(5))
    assert len(_codecache._cache) == 3


def test_no_run_is_kept_alive_by_the_cache(make_package: MakePackage) -> None:
    name = make_package(
        {
            "__init__.py": "",
            "m.py": """
                import sys

                class Thing:
                    pass

                thing = Thing()
                me = sys.modules[__name__]

                def get():
                    return thing
            """,
            "other.py": "y = 1\n",
        }
    )
    result = run(f"{name}.m")
    refs = [weakref.ref(result[key]) for key in ("thing", "me", "get", "Thing")]
    assert isinstance(result["me"], ModuleType)
    del result
    run(f"{name}.m")  # the module registered under its name is another run's now
    run(f"{name}.other")  # and the latest result another run's
    gc.collect()
    assert [ref() for ref in refs] == [None] * len(refs)
    assert any(Path(path).name == "m.py" for path in _codecache._cache)  # still cached


# --- bound_names: the C-speed path gives exactly the plain loop's names -----------------

_MISSING = object()


def plain_bound_names(run_globals: dict[Any, Any], given: dict[Any, Any]) -> tuple[Any, ...]:
    """The definition: not a dunder (nor a non-name), and new or bound to another object."""
    return tuple(
        name
        for name, value in run_globals.items()
        if isinstance(name, str)
        and not (name.startswith("__") and name.endswith("__"))
        and given.get(name, _MISSING) is not value
    )


@pytest.fixture(params=["plain", "in order"])
def bound_names_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test below runs with the plain loop and with the C-speed path forced."""
    if request.param == "in order":
        monkeypatch.setattr(_core, "_IN_ORDER_MIN_GIVEN", 0)
    else:
        monkeypatch.setattr(_core, "_IN_ORDER_MIN_GIVEN", 10**12)
    return str(request.param)


def a_run_namespace(given: dict[Any, Any], module_dict: bool = True) -> dict[Any, Any]:
    """A namespace filled from `given` as a run fills it."""
    namespace = ModuleType("m").__dict__ if module_dict else {}
    namespace.update(given)
    namespace.update(__name__="m", __file__="m.py", __cached__=None, __builtins__={})
    return namespace


def big_given(n: int = 3000) -> dict[Any, Any]:
    names = {f"v{i}": [i] for i in range(n)}
    return {"__name__": "__main__", "__builtins__": __builtins__, **names}


@pytest.mark.usefixtures("bound_names_path")
class TestBoundNames:
    def test_new_and_rebound_names_in_namespace_order(self) -> None:
        given = big_given()
        ns = a_run_namespace(given)
        ns["v7"] = [7]  # equal, but another object: bound
        ns["v8"] = given["v8"]  # the same object again: not bound
        ns["new"] = 1
        ns["__all__"] = ["new"]  # a dunder: never
        assert _core.bound_names(ns, given) == ("v7", "new")

    def test_a_given_name_deleted_and_bound_again(self) -> None:
        given = big_given()
        ns = a_run_namespace(given)
        value = ns.pop("v3")
        ns["v3"] = value  # same object, but now at the end: still not bound
        del ns["v5"]
        ns["v5"] = [5]  # another object: bound
        del ns["v9"]  # deleted: not bound (and never deleted from the notebook)
        assert _core.bound_names(ns, given) == ("v5",)
        assert _core.bound_names(ns, given) == plain_bound_names(ns, given)

    def test_a_shift_with_identical_values_is_not_mistaken(self) -> None:
        # Deleting a name shifts the following ones; with equal values at every
        # position, only the keys tell that the names moved.
        given: dict[Any, Any] = {f"n{i}": None for i in range(100)}
        given["n50"] = given["n51"] = marker = object()
        ns = a_run_namespace(given, module_dict=False)
        del ns["n0"]
        ns["n50"] = None  # rebound
        ns["n0"] = None  # same object as given
        ns["n99"] = marker  # rebound
        assert _core.bound_names(ns, given) == ("n50", "n99")

    def test_names_that_are_not_names(self) -> None:
        given = big_given()
        ns = a_run_namespace(given)
        ns[1] = "a key that is not a str"
        ns["a\0b"] = "a name with a NUL"
        ns["__"] = ns["___"] = ns["_x_"] = ns["__x"] = ns["x__"] = 0
        assert _core.bound_names(ns, given) == ("a\0b", "_x_", "__x", "x__")

    def test_given_dunders_after_other_names(self) -> None:
        given: dict[Any, Any] = {"a": 1, "__spec__": None, **big_given()}
        ns = a_run_namespace(given)
        ns["b"] = 2
        assert _core.bound_names(ns, given) == ("b",)

    def test_a_run_through_the_core_merges_the_right_names(self, make_package: Any) -> None:
        name = make_package(
            {"__init__.py": "", "m.py": "v1 = [1]\nv2 = v2\ndel v3\nnew = 0\n__all__ = []\n"}
        )
        given = big_given()
        result = run(f"{name}.m", given)
        assert result.bound == ("v1", "new")
        assert result.bound == plain_bound_names(result.globals, given)


_names = st.one_of(
    st.sampled_from(["a", "b", "x", "__all__", "__", "___", "_x", "__x", "x__", "a\0b"]),
    st.from_regex(r"\A[a-z_]{1,6}\Z"),
    st.integers(0, 3),
)
_values = st.sampled_from([None, 0, 1, "s"])
_operations = st.lists(
    st.tuples(st.sampled_from(["set", "rebind", "del", "del+set"]), _names, _values),
    max_size=30,
)


@settings(max_examples=300, deadline=None)
@given(
    given_names=st.lists(_names, max_size=150),
    operations=_operations,
    module_dict=st.booleans(),
    fast=st.booleans(),
)
def test_bound_names_is_the_definition(
    given_names: list[Any], operations: list[tuple[str, Any, Any]], module_dict: bool, fast: bool
) -> None:
    given_ns = {name: object() if i % 3 else None for i, name in enumerate(given_names)}
    ns = a_run_namespace(given_ns, module_dict)
    for op, name, value in operations:
        if op == "set":
            ns[name] = value
        elif op == "rebind" and name in ns:
            ns[name] = object()
        elif op.startswith("del") and name in ns:
            old = ns.pop(name)
            if op == "del+set":
                ns[name] = old
    saved = _core._IN_ORDER_MIN_GIVEN
    _core._IN_ORDER_MIN_GIVEN = 0 if fast else saved
    try:
        assert _core.bound_names(ns, given_ns) == plain_bound_names(ns, given_ns)
    finally:
        _core._IN_ORDER_MIN_GIVEN = saved
