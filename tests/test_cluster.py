"""%runmod on ipyparallel engines, and the pickled form of RunResult that brings results back.

The pickling tests need no cluster. The cluster tests share one local cluster of two
engines, started once for this module and always stopped, with a check that none of
its processes outlives it. `%px` is driven through the real IPython shell of the `ip`
fixture, as a user would type it.
"""

from __future__ import annotations

import copy
import logging
import pickle
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell

import ipy_runmod
from ipy_runmod import RunResult
from ipy_runmod._result import UnpicklableError, exit_code_of

pytestmark = pytest.mark.cluster

PKG = f"rmpar_{uuid.uuid4().hex[:8]}"  # importable on the engines and in this process
REMOTE_PKG = f"rmremote_{uuid.uuid4().hex[:8]}"  # importable on the engines only

PACKAGE = {
    "__init__.py": "",
    "model.py": """
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class Point:
            x: float
            y: float
    """,
    "step.py": """
        import math
        from .model import Point

        done = []
        for r in rates:
            if r < 0:
                raise ValueError(f"negative rate {r}")
            done.append(r)
        results = [Point(r, math.sqrt(r) * scale) for r in rates]

        def helper():
            return 1

        class Local:
            pass

        local = Local()
        square = lambda v: v * v
        pair = (1, "two")
    """,
    "fails.py": """
        before = 1
        raise ValueError("bad input on purpose")
    """,
    "own_error.py": """
        class StepError(Exception):
            pass

        raise StepError("own error")
    """,
    "exits.py": """
        import sys
        sys.exit(code)
    """,
    "_log.py": "runs = []\n",
    "counted.py": """
        from . import _log
        _log.runs.append(__name__)

        def f():
            pass

        class C:
            pass

        value = [C()]
    """,
    "fragile.py": """
        def refuse():
            raise RuntimeError("cannot be rebuilt here")

        class Fragile:
            def __reduce__(self):
                return (refuse, ())
    """,
    "holds_fragile.py": """
        from .fragile import Fragile
        thing = Fragile()
        kept = 1
    """,
    "remote_only.py": f"""
        from {REMOTE_PKG} import Token
        token = Token()
        kept = 2
    """,
}

REMOTE_PACKAGE = {"__init__.py": "class Token:\n    pass\n"}

#: What `PKG.step` binds, and which of those cannot travel in a pickled RunResult.
STEP_BOUND = {"math", "Point", "done", "r", "results", "helper", "Local", "local", "square", "pair"}
STEP_DROPPED = {"math", "helper", "Local", "local", "square"}


def _write(root: Path, name: str, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


@dataclass
class Site:
    """Where the test packages are: `root` for PKG, `remote_root` for REMOTE_PKG."""

    root: Path
    remote_root: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """PKG on this process's sys.path (so results unpickle here); REMOTE_PKG written only."""
    root = tmp_path_factory.mktemp("parallel_site")
    remote_root = tmp_path_factory.mktemp("engine_only_site")
    _write(root, PKG, PACKAGE)
    _write(remote_root, REMOTE_PKG, REMOTE_PACKAGE)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        yield Site(root, remote_root)
    for mod in [m for m in sys.modules if m == PKG or m.startswith(PKG + ".")]:
        del sys.modules[mod]


def round_trip(result: RunResult) -> RunResult:
    back = pickle.loads(pickle.dumps(result))
    assert type(back) is RunResult
    return back


# --- the pickled form, no cluster needed ---------------------------------------------


METADATA = ("module", "run_name", "file", "argv", "bound", "merged", "elapsed", "cpu_time")


def test_round_trip_keeps_metadata_and_the_bound_names_that_pickle(site: Site) -> None:
    res = ipy_runmod.run(f"{PKG}.step", {"rates": [1.0, 4.0], "scale": 2.0}, args=["-v"])
    ipy_runmod.merge_into({}, res, only=["results"])
    back = round_trip(res)
    for attr in (*METADATA, "exit_code", "ok", "exception"):
        assert getattr(back, attr) == getattr(res, attr), attr
    assert back.argv == [str(site.root / PKG / "step.py"), "-v"]
    assert back.merged == ("results",)
    assert set(res.bound) == STEP_BOUND
    assert back.spec.name == f"{PKG}.step" and back.spec.origin == res.file
    assert type(back.spec.loader) is type(res.spec.loader)
    # a read-only mapping over the bound names whose values pickle, in the module's order
    assert list(back) == [name for name in res.bound if name not in STEP_DROPPED]
    assert len(back) == len(STEP_BOUND - STEP_DROPPED)
    assert back["results"] == res["results"] and back["pair"] == (1, "two")
    assert back["Point"] is res["Point"]  # a class from another module: pickled by reference
    assert "__name__" not in back and "rates" not in back and "helper" not in back
    with pytest.raises(TypeError):
        back["x"] = 1  # type: ignore[index]
    assert set(back.dropped) == STEP_DROPPED
    assert back.dropped["math"] == "not picklable: TypeError: cannot pickle 'module' object"
    assert back.dropped["helper"] == (
        f"not picklable: PicklingError: helper was defined by the run of {PKG}.step"
    )
    assert "Local was defined by the run" in back.dropped["local"]  # an instance of it
    assert repr(back) == repr(res)
    html = back._repr_html_()
    assert "<td>results</td>" in html and "<td>helper</td>" not in html
    # the live result is untouched; copies go through the pickled form
    assert "helper" in res and dict(res.dropped) == {}
    assert set(copy.deepcopy(res)) == set(back)


def test_pickled_twice_is_the_same(site: Site) -> None:
    res = ipy_runmod.run(f"{PKG}.step", {"rates": [9.0], "scale": 1.0})
    once = round_trip(res)
    twice = round_trip(once)
    assert dict(twice) == dict(once) and dict(twice.dropped) == dict(once.dropped)
    assert twice.bound == res.bound and repr(twice) == repr(res)


def test_pickling_never_imports_the_run_module_again(site: Site) -> None:
    """Plain pickle would import PKG.counted to look up `f` and `C`, running it again."""
    log = __import__(f"{PKG}._log", fromlist=["runs"])
    log.runs.clear()
    res = ipy_runmod.run(f"{PKG}.counted")
    assert log.runs == [f"{PKG}.counted"]
    back = round_trip(res)
    assert log.runs == [f"{PKG}.counted"]
    assert f"{PKG}.counted" not in sys.modules
    assert set(back.dropped) == {"f", "C", "value", "_log"}


def test_an_exception_that_pickles_comes_back_as_itself(site: Site) -> None:
    res = ipy_runmod.run(f"{PKG}.fails")
    back = round_trip(res)
    assert type(back.exception) is ValueError
    assert back.exception.args == ("bad input on purpose",)
    assert not back.ok and back.exit_code is None and back["before"] == 1
    assert "failed: ValueError" in repr(back)


def test_an_exception_shown_by_the_magic_pickles_without_its_display_hook(
    site: Site, ip: InteractiveShell
) -> None:
    with pytest.raises(ValueError, match="bad input on purpose"):
        ip.run_line_magic("runmod", f"{PKG}.fails")
    res = ipy_runmod.last_result()
    assert res is not None and "_render_traceback_" in vars(res.exception)  # a closure
    back = round_trip(res)
    assert type(back.exception) is ValueError and back.exception.args == ("bad input on purpose",)
    assert not hasattr(back.exception, "_render_traceback_")
    assert "_render_traceback_" in vars(res.exception)  # the live exception keeps it


def test_an_exception_that_does_not_pickle_becomes_a_stand_in(site: Site) -> None:
    res = ipy_runmod.run(f"{PKG}.own_error")
    back = round_trip(res)
    exc = back.exception
    assert isinstance(exc, UnpicklableError)
    assert exc.type_name == f"{PKG}.own_error.StepError"
    assert exc.message == "own error"
    assert str(exc) == f"{PKG}.own_error.StepError: own error"
    assert 'raise StepError("own error")' in exc.traceback
    assert not back.ok and "StepError" in back.dropped
    again = round_trip(back).exception
    assert isinstance(again, UnpicklableError) and again.traceback == exc.traceback


@pytest.mark.parametrize(("code", "ok"), [(0, True), (None, True), (3, False), ("bye", False)])
def test_exit_status_survives(site: Site, code: object, ok: bool) -> None:
    back = round_trip(ipy_runmod.run(f"{PKG}.exits", {"code": code}))
    assert isinstance(back.exception, SystemExit) and back.exception.code == code
    assert back.ok is ok and back.exit_code == exit_code_of(back.exception)


def test_a_value_that_cannot_be_unpickled_is_left_out_on_loading(site: Site) -> None:
    res = ipy_runmod.run(f"{PKG}.holds_fragile")
    data = pickle.dumps(res)  # pickling works: the value only fails where it is loaded
    back = pickle.loads(data)
    assert back["kept"] == 1 and "thing" not in back
    assert back.dropped == {
        "thing": "pickled, but cannot be unpickled here: RuntimeError: cannot be rebuilt here"
    }
    assert round_trip(back).dropped == back.dropped


def test_a_spec_whose_loader_does_not_pickle_keeps_its_name_and_origin() -> None:
    spec = ModuleSpec("odd.mod", threading.Lock(), origin="/somewhere/odd/mod.py")  # type: ignore[arg-type]
    res = RunResult(
        module="odd.mod",
        run_name="odd.mod",
        spec=spec,
        argv=None,
        globals={"a": 1},
        bound=("a",),
        elapsed=0.5,
        cpu_time=0.25,
        exception=None,
    )
    back = round_trip(res)
    assert back.spec.name == "odd.mod" and back.spec.origin == "/somewhere/odd/mod.py"
    assert back.spec.loader is None and back.file == "/somewhere/odd/mod.py"
    assert dict(back) == {"a": 1} and back.ok


def test_an_unknown_pickle_format_is_refused(site: Site) -> None:
    state = ipy_runmod.run(f"{PKG}.fails").__getstate__()
    state["format"] = 99
    with pytest.raises(pickle.UnpicklingError, match="format 99"):
        RunResult.__new__(RunResult).__setstate__(state)


# --- on a real local cluster ------------------------------------------------------------


@dataclass
class Engines:
    rc: Any  # ipyparallel.Client
    ipp: Any  # the ipyparallel module

    @property
    def dview(self) -> Any:
        view = self.rc[:]
        view.block = True
        return view


def _cluster_processes(psutil: Any) -> list[Any]:
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if any("ipyparallel" in word for word in proc.cmdline()):
                found.append(proc)
        except psutil.Error:
            pass  # exited meanwhile
    return found


def _deactivate_px(shell: InteractiveShell) -> None:
    """Take ipyparallel's %px magics off the shared test shell again."""
    manager = shell.magics_manager
    for kind in ("line", "cell"):
        table = manager.magics[kind]
        for name, fn in list(table.items()):
            if type(getattr(fn, "__self__", None)).__name__ == "ParallelMagics":
                del table[name]
    manager.registry.pop("ParallelMagics", None)


@pytest.fixture(scope="module")
def engines(
    tmp_path_factory: pytest.TempPathFactory, site: Site, shell_session: InteractiveShell
) -> Iterator[Engines]:
    """Two engines with ipy_runmod loaded, PKG and REMOTE_PKG importable on them."""
    ipp = pytest.importorskip("ipyparallel")
    psutil = pytest.importorskip("psutil")  # an ipyparallel dependency
    before = {proc.pid for proc in _cluster_processes(psutil)}
    cluster = ipp.Cluster(
        n=2,
        profile_dir=str(tmp_path_factory.mktemp("ipython_profile")),
        log_level=logging.WARNING,
        controller_args=["--ping=200"],  # heartbeat every 0.2 s: engines register in ~1 s
    )
    started: list[Any] = []
    rc = None
    try:
        cluster.start_cluster_sync()
        started = [p for p in _cluster_processes(psutil) if p.pid not in before]
        rc = cluster.connect_client_sync()
        rc.wait_for_engines(2, timeout=60, interactive=False)
        view = rc[:]
        for path in (site.root, site.remote_root):
            view.execute(f"import sys; sys.path.insert(0, {str(path)!r})", block=True)
        view.execute("%load_ext ipy_runmod", block=True)
        yield Engines(rc, ipp)
    finally:
        try:
            _deactivate_px(shell_session)  # creating the client activated %px here
            started += [p for p in _cluster_processes(psutil) if p.pid not in before]
            if rc is not None:
                rc.close()
            cluster.stop_cluster_sync()
        finally:
            # Nannies exit a second or two after their engines; anything still running
            # after that is a leak: kill it, and fail.
            _, alive = psutil.wait_procs(set(started), timeout=20)
            for proc in alive:
                proc.kill()
            assert not alive, f"cluster processes survived stop_cluster_sync(): {alive}"


Px = Callable[[str], Any]


@pytest.fixture
def px(ip: InteractiveShell, engines: Engines) -> Iterator[Px]:
    """`%px LINE` in the test shell, on fresh engine namespaces; errors raise, as in a cell."""
    engines.rc.clear(block=True)
    engines.dview.activate()
    # No live streaming and no progress bar: errors raise CompositeError, output is stable.
    ip.run_line_magic("pxconfig", "--no-stream --progress-after -1")
    yield lambda line: ip.run_line_magic("px", line)
    _deactivate_px(ip)


def errors(info: pytest.ExceptionInfo[Any]) -> list[tuple[int, str, str, str]]:
    """(engine id, exception name, message, traceback) for each engine that failed."""
    return sorted(
        (engine_info["engine_id"], ename, evalue, "\n".join(tb) if isinstance(tb, list) else tb)
        for ename, evalue, tb, engine_info in info.value.elist
    )


def test_px_runmod_with_the_namespace_pushed_and_merged_on_each_engine(
    engines: Engines, px: Px
) -> None:
    dview = engines.dview
    dview.push({"rates": [1.0, 4.0], "scale": 3.0})
    px(f"%runmod {PKG}.step --merge --exclude math")
    Point = __import__(f"{PKG}.model", fromlist=["Point"]).Point
    assert dview.pull("results") == [[Point(1.0, 3.0), Point(4.0, 6.0)]] * 2
    assert dview.pull("done") == [[1.0, 4.0]] * 2
    px("merged_math = 'math' in globals()")
    assert dview.pull("merged_math") == [False, False]


def test_scatter_run_gather(engines: Engines, px: Px) -> None:
    dview = engines.dview
    dview.scatter("rates", [0.0, 1.0, 4.0, 9.0])
    dview.push({"scale": 1.0})
    assert dview.pull("rates") == [[0.0, 1.0], [4.0, 9.0]]
    px(f"%runmod {PKG}.step --merge --only results")
    gathered = dview.gather("results")
    assert [(p.x, p.y) for p in gathered] == [(0.0, 0.0), (1.0, 1.0), (4.0, 2.0), (9.0, 3.0)]
    px("has_done = 'done' in globals()")
    assert dview.pull("has_done") == [False, False]


def test_run_results_come_back_to_the_client(engines: Engines, px: Px, site: Site) -> None:
    dview = engines.dview
    dview.scatter("rates", [1.0, 4.0])
    dview.push({"scale": 2.0})
    px(f"res = %runmod -o {PKG}.step")
    runs = dview.pull("res")
    assert [type(run) for run in runs] == [RunResult, RunResult]
    for run, rate in zip(runs, [1.0, 4.0], strict=True):
        assert (
            run.ok and run.module == f"{PKG}.step" and run.file == str(site.root / PKG / "step.py")
        )
        assert [(p.x, p.y) for p in run["results"]] == [(rate, 2.0 * rate**0.5)]
        assert set(run.bound) == STEP_BOUND and set(run.dropped) == STEP_DROPPED
        assert repr(run).startswith(f"<RunResult {PKG}.step as {PKG}.step: ok")
    # The Python API through apply: the RunResult is the function's return value.
    applied = dview.apply_sync(ipy_runmod.run, f"{PKG}.step", {"rates": [9.0], "scale": 1.0})
    assert [run["done"] for run in applied] == [[9.0], [9.0]]


def test_a_value_importable_only_on_the_engines_is_left_out_on_the_client(
    engines: Engines, px: Px
) -> None:
    """What happens with engines on other hosts, when the notebook's host lacks a package."""
    with pytest.raises(ModuleNotFoundError):
        __import__(REMOTE_PKG)
    px(f"res = %runmod -o {PKG}.remote_only")
    for run in engines.dview.pull("res"):
        assert run["kept"] == 2 and "token" not in run
        assert run.dropped["token"] == (
            "pickled, but cannot be unpickled here: "
            f"ModuleNotFoundError: No module named {REMOTE_PKG!r}"
        )


def test_an_error_on_every_engine_is_a_composite_error_and_the_engines_go_on(
    engines: Engines, px: Px
) -> None:
    with pytest.raises(engines.ipp.error.CompositeError) as info:
        px(f"%runmod {PKG}.fails --merge")
    failed = errors(info)
    assert [(eid, ename, evalue) for eid, ename, evalue, _ in failed] == [
        (0, "ValueError", "bad input on purpose"),
        (1, "ValueError", "bad input on purpose"),
    ]
    for *_, tb in failed:
        assert "fails.py" in tb and "_core.py" not in tb  # from the module's own frame on
    assert "[0:execute]" in str(info.value) and "[1:execute]" in str(info.value)
    dview = engines.dview
    assert dview.pull("before") == [1, 1]  # bound before the failure, merged all the same
    failed_runs = dview.apply_sync(ipy_runmod.last_result)
    assert [type(run.exception) for run in failed_runs] == [ValueError, ValueError]
    assert [run.ok for run in failed_runs] == [False, False]
    # the engines are fine
    px("x = 41 + 1")
    assert dview.pull("x") == [42, 42]
    dview.push({"rates": [4.0], "scale": 1.0})
    px(f"%runmod {PKG}.step --merge --only done")
    assert dview.pull("done") == [[4.0], [4.0]]


def test_a_failure_on_one_engine_leaves_the_others_results_intact(engines: Engines, px: Px) -> None:
    dview = engines.dview
    dview.scatter("rates", [1.0, 4.0, 9.0, -1.0])
    dview.push({"scale": 1.0})
    with pytest.raises(engines.ipp.error.CompositeError) as info:
        px(f"%runmod {PKG}.step --merge --exclude math")
    assert [(eid, ename, evalue) for eid, ename, evalue, _ in errors(info)] == [
        (1, "ValueError", "negative rate -1.0")
    ]
    assert [(p.x, p.y) for p in engines.rc[0].pull("results", block=True)] == [
        (1.0, 1.0),
        (4.0, 2.0),
    ]
    assert engines.rc[1].pull("done", block=True) == [9.0]  # what engine 1 did before failing
    px("has_results = 'results' in globals()")
    assert dview.pull("has_results") == [True, False]
    # a good run on every engine afterwards
    dview.scatter("rates", [1.0, 4.0, 9.0, 16.0])
    px(f"%runmod {PKG}.step --merge --only results")
    assert [p.y for p in dview.gather("results")] == [1.0, 2.0, 3.0, 4.0]


def test_usage_errors_and_exit_statuses_on_engines(engines: Engines, px: Px) -> None:
    with pytest.raises(engines.ipp.error.CompositeError) as info:
        px(f"%runmod {PKG}.stepp")
    assert {(ename, evalue) for _, ename, evalue, _ in errors(info)} == {
        ("UsageError", f"No module named '{PKG}.stepp'; did you mean '{PKG}.step'?")
    }
    engines.dview.push({"code": 3})
    with pytest.raises(engines.ipp.error.CompositeError) as info:
        px(f"%runmod {PKG}.exits")
    assert {(ename, evalue) for _, ename, evalue, _ in errors(info)} == {
        ("ModuleExit", f"{PKG}.exits exited with status 3")
    }
    engines.dview.push({"code": 0})
    px(f"%runmod {PKG}.exits")  # sys.exit(0) is a success, on an engine too
