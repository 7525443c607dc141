"""A parameter sweep to run on a cluster: `%px %runmod sweep_demo.step` (notebooks/parallel.ipynb).

`sweep_demo.step` reads a list of growth rates `rates` from the namespace it is run in
and binds `results`: for each rate, the long-run behaviour of the logistic map
x -> r * x * (1 - x). `sweep_demo.orbits` holds the code and the `Orbit` class, in a
module of its own so that results pickle (by reference to `sweep_demo.orbits.Orbit`)
and can travel from the engines back to the notebook.
"""
