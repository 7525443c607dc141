"""`RunResult`: what one run of a module produced."""

from __future__ import annotations

import html
import reprlib
from collections.abc import Iterator, Mapping
from importlib.machinery import ModuleSpec
from typing import Any

_short_repr = reprlib.Repr()
_short_repr.maxstring = 60
_short_repr.maxother = 60


def exit_code_of(exc: SystemExit) -> int:
    """The process exit status `python -m` would end with for this `SystemExit`."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    return 1  # a message or any other object: Python prints it and exits with 1


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _html_row(name: str, value: Any) -> str:
    cells = (name, type(value).__name__, _short_repr.repr(value))
    return "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"


class RunResult(Mapping[str, Any]):
    """The outcome of one run: a read-only mapping over the module's final globals.

    `res["x"]`, `"x" in res`, `list(res)` and `len(res)` look at the module's globals,
    dunders included, exactly as the module left them (also after a failure).
    """

    def __init__(
        self,
        *,
        module: str,
        run_name: str,
        spec: ModuleSpec,
        argv: list[str] | None,
        globals: dict[str, Any],
        bound: tuple[str, ...],
        elapsed: float,
        cpu_time: float,
        exception: BaseException | None,
    ) -> None:
        self.module = module
        self.run_name = run_name
        self.spec = spec
        self.file: str | None = spec.origin
        self.argv = argv
        self.globals = globals
        #: Names the module bound: new, or rebound to another object than it was given.
        self.bound = bound
        self.elapsed = elapsed
        self.cpu_time = cpu_time
        self.exception = exception
        self.exit_code: int | None = (
            exit_code_of(exception) if isinstance(exception, SystemExit) else None
        )
        #: Names copied into the caller's namespace (set by `--merge`).
        self.merged: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the module ran to the end or exited with status 0."""
        return self.exception is None or self.exit_code == 0

    def __getitem__(self, name: str) -> Any:
        return self.globals[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.globals)

    def __len__(self) -> int:
        return len(self.globals)

    def _status(self) -> str:
        if self.exception is None:
            return "ok"
        if self.exit_code is not None:
            return f"exit {self.exit_code}" if self.exit_code else "ok (exit 0)"
        return f"failed: {type(self.exception).__name__}"

    def _header(self) -> str:
        return (
            f"{self.module} as {self.run_name}: {self._status()}, "
            f"{_count(len(self.bound), 'name')} bound, {self.elapsed * 1000:.1f} ms"
        )

    def __repr__(self) -> str:
        return f"<RunResult {self._header()}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            _html_row(name, self.globals[name]) for name in self.bound if name in self.globals
        )
        return (
            f"<div><strong>RunResult</strong> {html.escape(self._header())}"
            "<table><thead><tr><th>name</th><th>type</th><th>value</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>"
        )
