"""The logistic map's attractor for one growth rate: what each step of the sweep computes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Orbit:
    """Where the logistic map settles for growth rate `rate`, starting from x = 0.5.

    `period` is the length of the cycle it settles into (1: a fixed point), or None
    when no cycle of length up to 32 shows (chaos); `points` are the cycle's values,
    sorted and rounded to 4 places.
    """

    rate: float
    period: int | None
    points: tuple[float, ...]


def orbit(rate: float, warmup: int = 2000, keep: int = 64, tolerance: float = 1e-6) -> Orbit:
    """Iterate past the transient, then look for the shortest cycle."""
    if not 0 <= rate <= 4:
        raise ValueError(f"growth rate must be in [0, 4], got {rate}")
    x = 0.5
    for _ in range(warmup):
        x = rate * x * (1 - x)
    xs = []
    for _ in range(keep):
        x = rate * x * (1 - x)
        xs.append(x)
    for period in range(1, keep // 2 + 1):
        if all(abs(xs[i + period] - xs[i]) < tolerance for i in range(keep - period)):
            return Orbit(rate, period, tuple(sorted(round(v, 4) for v in xs[:period])))
    return Orbit(rate, None, ())
