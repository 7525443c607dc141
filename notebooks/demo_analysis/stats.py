"""Summary statistics of the notebook's `data`: `%runmod demo_analysis.stats`.

`data` is not defined here: it is the notebook's variable, seen because `%runmod` runs
this module in a namespace pre-filled with the notebook's. Without one (say, with
`--isolated`) the module fails with a NameError, as it would under `python -m`.
"""

# ruff: noqa: F821 -- `data` comes from the notebook

from . import _util

mean = _util.mean(data)
stdev = _util.stdev(data)
summary = {"n": len(data), "mean": mean, "stdev": stdev, "min": min(data), "max": max(data)}

print(f"n={summary['n']} mean={mean:.3f} stdev={stdev:.3f}")
