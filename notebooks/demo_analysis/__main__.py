"""`%runmod demo_analysis` (or `python -m demo_analysis`) runs this: a one-line report."""

# ruff: noqa: F821 -- `data` comes from the notebook

from . import _util

mean = _util.mean(data)
stdev = _util.stdev(data)
print(f"{__name__}: {len(data)} values, mean {mean:.2f}, stdev {stdev:.2f}")
