"""A command-line module: `%runmod demo_analysis.cli --main -- --scale 2 --title 'a b'`.

The `if __name__ == "__main__":` block only runs with `--main` (or `-n __main__`), and
argparse reads the arguments given after `--`, exactly as `python -m demo_analysis.cli
--scale 2 --title 'a b'` would. Bad arguments end it with `sys.exit(2)`, via argparse.
"""

import argparse


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse `argv`, or `sys.argv[1:]` when None."""
    parser = argparse.ArgumentParser(
        prog="python -m demo_analysis.cli", description="Print the options it was given."
    )
    parser.add_argument("--scale", type=float, default=1.0, metavar="FLOAT", help="a factor")
    parser.add_argument("--title", default="untitled", metavar="STR", help="a title")
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse()
    print(f"scale={args.scale!r} title={args.title!r}")
