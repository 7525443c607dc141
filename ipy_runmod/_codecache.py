"""Code objects for the modules we run."""

from __future__ import annotations

from importlib.machinery import ModuleSpec
from types import CodeType


def get_code(mod_name: str, spec: ModuleSpec) -> CodeType | None:
    """The module's code, as its loader gives it (runpy's `loader.get_code`)."""
    code: CodeType | None = spec.loader.get_code(mod_name)  # type: ignore[union-attr]
    return code
