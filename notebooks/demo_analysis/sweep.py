"""A parameter sweep target: `%%runmod demo_analysis.sweep` with `alpha = 0.5` and `n = 20`.

`alpha` (the damping rate) and `n` (the number of terms) are not defined here: they come
from the notebook, or from the body of a `%%runmod` cell, which gives them for one run only.
The module computes the damped oscillation `exp(-alpha * k) * cos(k)` for `k` in `range(n)`,
its `total` and its `peak` (the largest absolute term after the first).
"""

# ruff: noqa: F821 -- `alpha` and `n` come from the notebook or the cell

from math import cos, exp

# Rounded: the last digits of exp and cos differ between platforms and Python versions.
terms = [round(exp(-alpha * k) * cos(k), 9) for k in range(n)]
total = round(sum(terms), 9)
peak = max(abs(t) for t in terms[1:])
print(f"alpha={alpha} n={n}: total={total:.4f} peak={peak:.4f}")
