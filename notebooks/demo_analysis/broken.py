"""A module that fails partway through: `%runmod demo_analysis.broken --merge`.

The names bound before the error (`values`, `total`) are not lost: they are in
`ipy_runmod.last_result()` and, with `--merge`, in the notebook too.
"""

# ruff: noqa: F821 -- `data` comes from the notebook


def check_size(values: list[float], at_least: int) -> None:
    """Fail unless there are enough values."""
    if len(values) < at_least:
        raise ValueError(f"need at least {at_least} values, got {len(values)}")


values = sorted(float(x) for x in data)
total = sum(values)
check_size(values, at_least=100)  # fails here with the demo's data
normalised = [x / total for x in values]
