"""Fit a straight line to the notebook's `data`: `%runmod --subprocess isolated_demo.fit`.

`data` is the notebook's variable: with `--subprocess` it reaches this process pickled,
because the module's code names it.
"""

# ruff: noqa: F821 -- `data` comes from the notebook

import os

xs = list(range(len(data)))
n = len(xs)
mean_x, mean_y = sum(xs) / n, sum(data) / n
for step, name in enumerate(["means", "slope", "intercept"], 1):
    print(f"step {step}/3: {name}", flush=True)
slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, data, strict=True)) / sum(
    (x - mean_x) ** 2 for x in xs
)
fit_report = {"slope": round(slope, 3), "intercept": round(mean_y - slope * mean_x, 3)}
pid = os.getpid()
