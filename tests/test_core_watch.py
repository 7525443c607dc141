"""Changes the kernel reports spare a run its `stat`s; every change is still picked up.

On Linux, a directory whose files were checked is watched (inotify): while nothing in it
changes, its modules are not looked at again (README, "Performance"). These tests make
the changes a watch could miss, and compare each run with runpy's, which finds and reads
everything afresh.
"""

from __future__ import annotations

import os
import runpy
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from ipy_runmod import Request, _watch, execute, run

pytestmark = [
    pytest.mark.core,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's"),
]

MakePackage = Callable[..., str]  # the `make_package` fixture of conftest.py


def by_runpy(mod_name: str) -> object:
    """`x` as runpy, finding and reading everything afresh, gets it."""
    kept = sys.modules.pop(mod_name, None)  # a run under its own name stays registered
    try:
        return runpy.run_module(mod_name)["x"]
    finally:
        if kept is not None:
            sys.modules[mod_name] = kept


def test_a_local_directory_is_watched(tmp_path: Path) -> None:
    assert _watch.mark(str(tmp_path)) is not None  # else every test here tests only stat


def test_an_edit_in_a_watched_directory_is_picked_up(make_package: MakePackage) -> None:
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    assert run(f"{name}.m")["x"] == 1
    assert run(f"{name}.m")["x"] == 1  # now from memory, its directory quiet
    path = Path(make_package.root, name, "m.py")  # type: ignore[attr-defined]
    stat = path.stat()
    path.write_text("x = 2\n")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the same size and time
    assert run(f"{name}.m")["x"] == 2 == by_runpy(f"{name}.m")


def test_a_project_moved_away_and_put_back_new_runs_the_new_code(
    make_package: MakePackage,
) -> None:
    """Only an ancestor is moved: the watched directory itself reports nothing."""
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    root = Path(make_package.root)  # type: ignore[attr-defined]
    assert run(f"{name}.m")["x"] == 1
    assert run(f"{name}.m")["x"] == 1
    root.rename(root.with_name("site.old"))
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text("")
    (root / name / "m.py").write_text("x = 2\n")
    assert run(f"{name}.m")["x"] == 2 == by_runpy(f"{name}.m")


def test_a_path_through_a_link_is_not_trusted_to_a_watch(tmp_path: Path) -> None:
    """Re-pointing the link changes what the path is, with no event in any directory."""
    for version in (1, 2):
        (tmp_path / f"v{version}" / "rmlinked").mkdir(parents=True)
        (tmp_path / f"v{version}" / "rmlinked" / "__init__.py").write_text("")
        (tmp_path / f"v{version}" / "rmlinked" / "m.py").write_text(f"x = {version}\n")
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "v1")
    sys.path.insert(0, str(current))
    try:
        assert run("rmlinked.m")["x"] == 1
        assert run("rmlinked.m")["x"] == 1
        current.unlink()
        current.symlink_to(tmp_path / "v2")
        assert run("rmlinked.m")["x"] == 2 == by_runpy("rmlinked.m")
    finally:
        sys.path.remove(str(current))
        for mod in [m for m in sys.modules if m.partition(".")[0] == "rmlinked"]:
            del sys.modules[mod]


def test_an_overflowing_queue_still_lets_every_change_be_seen(make_package: MakePackage) -> None:
    """Events beyond the kernel's queue are dropped: the one that matters may be among them."""
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    busy = make_package({"__init__.py": "", "m.py": "", "a": "", "b": ""})
    root = Path(make_package.root)  # type: ignore[attr-defined]
    assert run(f"{name}.m")["x"] == 1
    run(f"{busy}.m")  # its directory is watched too, and fills the queue
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    noise = [str(root / busy / "a"), str(root / busy / "b")]  # alternate: never merged
    for i in range(limit + 1):
        os.utime(noise[i % 2], ns=(i, i))
    (root / name / "m.py").write_text("x = 2\n")  # its event is lost
    assert run(f"{name}.m")["x"] == 2


def test_a_forked_child_leaves_the_parent_its_events(make_package: MakePackage) -> None:
    """A child shares the parent's queue: what it reads, the parent would never see."""
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    path = Path(make_package.root, name, "m.py")  # type: ignore[attr-defined]
    assert run(f"{name}.m")["x"] == 1
    pid = os.fork()
    if pid == 0:  # the child: sees the edit it makes, then ends at once
        code = 1
        # A lock another thread held at the fork would never be released here: ended
        # then by the alarm, the test fails rather than hangs.
        signal.alarm(60)
        try:
            path.write_text("x = 2\n")
            code = 0 if run(f"{name}.m")["x"] == 2 else 1
        finally:
            os._exit(code)
    assert os.waitpid(pid, 0)[1] == 0
    assert run(f"{name}.m")["x"] == 2


def test_a_helper_no_watch_vouches_for_is_checked_once_all_else_is_quiet(
    ip: InteractiveShell, make_package: MakePackage, tmp_path: Path
) -> None:
    """A helper imported through a link, after runs that found every watched directory
    quiet, and then edited: no event comes, yet the next run imports it afresh."""
    name = make_package(
        {"__init__.py": "", "other.py": "", "m.py": "from rmlinkhelp import h\nx = h.y\n"}
    )
    (tmp_path / "v1" / "rmlinkhelp").mkdir(parents=True)
    (tmp_path / "v1" / "rmlinkhelp" / "__init__.py").write_text("")
    helper = tmp_path / "v1" / "rmlinkhelp" / "h.py"
    helper.write_text("y = 1\n")
    (tmp_path / "link").symlink_to(tmp_path / "v1")
    sys.path.insert(0, str(tmp_path / "link"))
    try:
        for _ in range(2):  # everything watched and found quiet
            ip.run_line_magic("runmod", f"{name}.other")
        assert ip.run_cell("import rmlinkhelp.h").success  # noted after the cell
        helper.write_text("y = 2\n")
        # As python -m, which imports the helper as it is now.
        assert ip.run_line_magic("runmod", f"{name}.m -o")["x"] == 2
    finally:
        sys.path.remove(str(tmp_path / "link"))
        for mod in [m for m in sys.modules if m.partition(".")[0] == "rmlinkhelp"]:
            del sys.modules[mod]


def test_an_edit_taken_in_by_another_threads_check_is_not_lost(
    make_package: MakePackage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs in two threads: while one checks the helper's directory, the helper is saved
    and the other run's check takes in the event. The run checking may not see the edit;
    the next one must."""
    name = make_package({"__init__.py": "", "helper.py": "VALUE = 1\n"})
    name_m = make_package(
        {"__init__.py": "", "m.py": f"from {name} import helper\nx = helper.VALUE\n"}
    )
    helper_dir = str(Path(make_package.root, name))  # type: ignore[attr-defined]

    def run_m() -> object:
        return execute(Request(f"{name_m}.m", reload=True)).globals["x"]

    assert run_m() == 1
    assert run_m() == 1  # found quiet
    other = make_package({"__init__.py": "", "m.py": ""})
    run(f"{other}.m")  # a new directory watched: the next check looks at each one
    checking = _watch.quiet_since

    def while_checked(directory: str, epoch: int | None) -> bool:
        quiet = checking(directory, epoch)
        if directory == helper_dir and Path(helper_dir, "helper.py").read_text() == "VALUE = 1\n":
            Path(helper_dir, "helper.py").write_text("VALUE = 2\n")
            _watch.poll()  # as another thread's run, finding its module, does
        return quiet

    monkeypatch.setattr(_watch, "quiet_since", while_checked)
    run_m()
    monkeypatch.undo()
    assert run_m() == 2  # as python -m, which imports the helper as it is now


def test_a_module_file_that_is_a_link_is_read_afresh_once_edited(
    make_package: MakePackage, tmp_path: Path
) -> None:
    """An edit of the link's target reaches no watch of the link's directory."""
    target = tmp_path / "elsewhere" / "m.py"
    target.parent.mkdir()
    target.write_text("x = 1\n")
    name = make_package({"__init__.py": ""})
    Path(make_package.root, name, "m.py").symlink_to(target)  # type: ignore[attr-defined]
    assert run(f"{name}.m")["x"] == 1
    assert run(f"{name}.m")["x"] == 1  # now from memory
    target.write_text("x = 22\n")
    assert run(f"{name}.m")["x"] == 22 == by_runpy(f"{name}.m")


def test_a_helper_file_that_is_a_link_is_imported_afresh_once_edited(
    make_package: MakePackage, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere" / "helper.py"
    target.parent.mkdir()
    target.write_text("VALUE = 1\n")
    name = make_package({"__init__.py": "", "m.py": "from . import helper\nx = helper.VALUE\n"})
    Path(make_package.root, name, "helper.py").symlink_to(target)  # type: ignore[attr-defined]

    def run_m() -> object:
        return execute(Request(f"{name}.m", reload=True)).globals["x"]

    assert run_m() == 1
    assert run_m() == 1  # its directory found quiet
    target.write_text("VALUE = 22\n")
    assert run_m() == 22  # as python -m, which imports the helper as it is now


def test_a_module_file_with_another_hard_link_is_read_afresh_once_edited_through_it(
    make_package: MakePackage, tmp_path: Path
) -> None:
    """Written in place through its other name: no event in the module's directory."""
    name = make_package({"__init__.py": "", "m.py": "x = 1\n"})
    other = tmp_path / "other_name.py"
    other.hardlink_to(Path(make_package.root, name, "m.py"))  # type: ignore[attr-defined]
    assert run(f"{name}.m")["x"] == 1
    assert run(f"{name}.m")["x"] == 1  # now from memory
    with open(other, "r+") as f:  # the same inode, as an editor saving in place
        f.write("x = 2\n")
    assert run(f"{name}.m")["x"] == 2 == by_runpy(f"{name}.m")
