"""Shared fixtures: throwaway packages, a real IPython shell, and the run invariants."""

from __future__ import annotations

import itertools
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.terminal.interactiveshell import TerminalInteractiveShell

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
    """A real IPython shell with the extension loaded; reset after the test."""
    shell_session.run_line_magic("load_ext", "ipy_runmod")
    yield shell_session
    shell_session.run_line_magic("unload_ext", "ipy_runmod")
    shell_session.run_line_magic("reset", "-f")
    shell_session.config.pop("RunModMagics", None)  # settings a test made in "ipython_config"


class Invariants:
    """What must hold after any %runmod, good or bad (README, "Guarantees")."""

    def __init__(self, namespace: dict[str, Any]) -> None:
        self.namespace = namespace
        self.argv = sys.argv
        self.argv_items = list(sys.argv)
        self.main = sys.modules.get("__main__")
        self.modules = set(sys.modules)
        self.names = dict(namespace)

    def check(
        self, merged: tuple[str, ...] | list[str] = (), run_names: tuple[str, ...] = ()
    ) -> None:
        """Assert sys and the namespace are as before, but for the `merged` names."""
        assert sys.argv is self.argv and sys.argv == self.argv_items
        assert sys.modules.get("__main__") is self.main
        added = set(sys.modules) - self.modules
        for name in run_names:
            assert name not in added, f"{name} left in sys.modules"
        after = {k: v for k, v in self.namespace.items() if k not in merged}
        before = {k: v for k, v in self.names.items() if k not in merged}
        assert after.keys() == before.keys()
        changed = [k for k in before if after[k] is not before[k]]
        assert not changed, f"names changed without a merge: {changed}"


@pytest.fixture
def invariants(ip: InteractiveShell) -> Callable[[], Invariants]:
    return lambda: Invariants(ip.user_ns)
