"""Shared fixtures: throwaway packages, a real IPython shell, and the run invariants."""

from __future__ import annotations

import itertools
import sys
import textwrap
import traceback
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.terminal.interactiveshell import TerminalInteractiveShell

from ipy_runmod._core import SYS_LOCK, _kept
from ipy_runmod._result import RunResult

_counter = itertools.count()

MakePackage = Callable[..., str]


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakePackage]:
    """Write a package with a unique name under tmp_path and put it on sys.path.

    `make_package({"__init__.py": "", "mod.py": "x = 1"})` returns the package's name.
    Paths may be nested (`"sub/__init__.py"`). Everything the test imported from the
    package is dropped from sys.modules afterwards.
    """
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    names: list[str] = []

    def make(files: dict[str, str], name: str | None = None) -> str:
        name = name or f"rmpkg{next(_counter)}"
        names.append(name)
        for rel, text in files.items():
            path = root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        return name

    make.root = root  # type: ignore[attr-defined]
    yield make
    for name in names:
        for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[mod]


@pytest.fixture(scope="session")
def shell_session() -> InteractiveShell:
    shell = TerminalInteractiveShell.instance(colors="nocolor")
    shell.history_manager.enabled = False
    return shell


@pytest.fixture
def ip(shell_session: InteractiveShell) -> Iterator[InteractiveShell]:
    """A real IPython shell with the extension loaded; its namespace put back after the test.

    The namespaces are restored from a snapshot rather than by `%reset -f`, which
    garbage-collects twice per test: most of the suite's time.
    """
    user_ns, hidden = dict(shell_session.user_ns), dict(shell_session.user_ns_hidden)
    shell_session.run_line_magic("load_ext", "ipy_runmod")
    yield shell_session
    shell_session.run_line_magic("unload_ext", "ipy_runmod")
    _restore(shell_session.user_ns, user_ns)
    _restore(shell_session.user_ns_hidden, hidden)
    # Cell outputs (`Out`, `_`, `__`, `___`) and exceptions are dropped as %reset drops them.
    shell_session.history_manager.reset(new_session=False)
    shell_session.displayhook._ = shell_session.displayhook.__ = ""
    shell_session.displayhook.___ = ""
    shell_session.user_ns.update(_="", __="", ___="")
    shell_session.last_execution_result = None
    shell_session.config.pop("RunModMagics", None)  # settings a test made in "ipython_config"


def _restore(namespace: dict[str, Any], snapshot: dict[str, Any]) -> None:
    """Make `namespace` hold exactly the snapshot's names and objects again, in place."""
    namespace.clear()
    namespace.update(snapshot)


class Invariants:
    """What must hold after any %runmod, good or bad (README, "Guarantees")."""

    def __init__(self, namespace: dict[str, Any], hidden: Iterable[str] = ()) -> None:
        self.namespace = namespace
        #: IPython's hidden names (`shell.user_ns_hidden`): never merged, like dunders.
        self.hidden = frozenset(hidden)
        self.argv = sys.argv
        self.argv_items = list(sys.argv)
        self.main = sys.modules.get("__main__")
        self.entries = dict(sys.modules)
        self.names = dict(namespace)

    def check(
        self,
        merged: tuple[str, ...] | list[str] = (),
        run_names: tuple[str, ...] = (),
        result: RunResult | None = None,
    ) -> None:
        """Assert sys and the namespace are as before, but for the `merged` names.

        Each of `run_names` is in sys.modules as before the run (the very same object, or
        absent), or is the module of a run of that very module under its own name that
        ended well, left registered as an import would leave it (README, "Guarantees");
        with `result`, of that run.
        """
        assert sys.argv is self.argv and sys.argv == self.argv_items
        assert sys.modules.get("__main__") is self.main
        for name in run_names:
            entry = sys.modules.get(name)
            if entry is self.entries.get(name):
                continue
            assert entry is not None and entry is _kept.get(name), f"{name} not restored"
            if result is not None:
                assert _ran_to_the_end(result) and vars(entry) is result.globals, f"{name} kept"
                assert result.run_name == result.spec.name == name, f"{name} kept"
        # The lock that guards sys during a run is never left held by this thread.
        assert not SYS_LOCK._is_owned(), "ipy_runmod._core.SYS_LOCK left held"
        after = {k: v for k, v in self.namespace.items() if k not in merged}
        before = {k: v for k, v in self.names.items() if k not in merged}
        assert after.keys() == before.keys()
        changed = [k for k in before if after[k] is not before[k]]
        assert not changed, f"names changed without a merge: {changed}"
        # The notebook's dunders and IPython's hidden names stay, even if reported merged.
        protected = [k for k in merged if k in self.hidden or _is_dunder(k)]
        assert not protected, f"dunder or hidden names merged: {protected}"
        for name, value in self.names.items():
            if name in self.hidden or _is_dunder(name):
                assert self.namespace.get(name, _GONE) is value, f"{name} changed"


_GONE = object()


def _ran_to_the_end(result: RunResult) -> bool:
    """The module's code finished (or exited with status 0); an interrupt may have come
    after it, while the session was put back (no frame of the module's file in it)."""
    exc = result.exception
    if result.ok:
        return True
    return isinstance(exc, KeyboardInterrupt) and all(
        frame.f_code.co_filename != result.file for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def _is_dunder(name: str) -> bool:
    return name.startswith("__") and name.endswith("__") and len(name) > 4


@pytest.fixture
def invariants(ip: InteractiveShell) -> Callable[[], Invariants]:
    return lambda: Invariants(ip.user_ns, ip.user_ns_hidden)
