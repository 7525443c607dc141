"""%runmod on ipyparallel engines, whose results come back in RunResult's pickled form.

The tests share one local cluster of two engines, started once for this module and
always stopped, with a check that none of its processes outlives it. `%px` is driven
through the real IPython shell of the `ip` fixture, as a user would type it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from pickle_site import PKG, REMOTE_PKG, STEP_BOUND, STEP_DROPPED, Site, site

import ipy_runmod
from ipy_runmod import RunResult

pytestmark = pytest.mark.cluster

__all__ = ["site"]  # the fixture, used by name


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
        assert repr(run).startswith(f"<RunResult {PKG}.step: ok")  # no "m as m"
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
