"""The pickled form of RunResult: what survives the trip, with no cluster needed."""

from __future__ import annotations

import copy
import pickle
import sys
import threading
from importlib.machinery import ModuleSpec

import pytest
import result_html
from IPython.core.interactiveshell import InteractiveShell
from pickle_site import PKG, STEP_BOUND, STEP_DROPPED, Site, round_trip, site

import ipy_runmod
from ipy_runmod import RunResult
from ipy_runmod._result import UnpicklableError, exit_code_of

pytestmark = pytest.mark.core

__all__ = ["site"]  # the fixture, used by name


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
    names = [row[0] for row in result_html.read(html).rows]
    assert "results" in names and "helper" not in names
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
    assert vars(sys.modules[f"{PKG}.counted"]) is res.globals  # the run's, no import
    assert set(back.dropped) == {"f", "C", "value", "_log"}


def test_an_exception_that_pickles_comes_back_as_itself(site: Site) -> None:
    res = ipy_runmod.run(f"{PKG}.fails")
    back = round_trip(res)
    assert type(back.exception) is ValueError
    assert back.exception.args == ("bad input on purpose",)
    assert not back.ok and back.exit_code is None and back["before"] == 1
    assert "failed: ValueError" in repr(back)


@pytest.mark.shell
def test_an_exception_shown_by_the_magic_is_left_as_raised_and_pickles(
    site: Site, ip: InteractiveShell
) -> None:
    with pytest.raises(ValueError, match="bad input on purpose"):
        ip.run_line_magic("runmod", f"{PKG}.fails")
    res = ipy_runmod.last_result()
    assert res is not None and vars(res.exception) == {}  # nothing added for the display
    back = round_trip(res)
    assert type(back.exception) is ValueError and back.exception.args == ("bad input on purpose",)


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
