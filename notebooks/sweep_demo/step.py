"""One step of the sweep: `%runmod sweep_demo.step` with `rates` in the namespace.

Binds `results`, one `Orbit` per rate, in order. A rate outside [0, 4] raises
ValueError; the orbits computed before it are in `results` all the same (and merged
with `--merge`, as after any failed run).
"""

# ruff: noqa: F821 -- `rates` comes from the notebook, or from an engine's namespace

from sweep_demo.orbits import orbit


def describe(rate: float) -> str:
    """A one-line summary (defined here, so it stays behind when a RunResult is pickled)."""
    found = orbit(rate)
    return f"r={rate}: " + (f"period {found.period}" if found.period else "chaotic")


results = []
for rate in rates:
    results.append(orbit(rate))
