"""A tiny package to try `%runmod` on: `%runmod demo_analysis.stats`, `%runmod demo_analysis`.

Its modules read the notebook's variables (`data`, a list of numbers) as if they were
their own globals, because `%runmod` runs them in a namespace pre-filled from the
notebook, as `runpy.run_module(..., init_globals=...)` does.
"""
