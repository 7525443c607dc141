"""The packages the pickling and cluster tests run: `site` puts them where both can find them."""

from __future__ import annotations

import pickle
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ipy_runmod import RunResult

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
