"""Run the benchmarks: every ``bench_*.py`` module in this package, or only those named.

python -m bench                 # all of them
python -m bench parse           # bench_parse only (``bench_parse`` works too)
python -m bench --quick         # smaller inputs (same as BENCH_QUICK=1)
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

PREFIX = "bench_"


def discover() -> list[str]:
    """Names of the benchmark modules in this package, sorted."""
    here = str(Path(__file__).resolve().parent)
    return sorted(
        info.name for info in pkgutil.iter_modules([here]) if info.name.startswith(PREFIX)
    )


def main(argv: Sequence[str] | None = None) -> int:
    available = discover()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(available)})"
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller inputs (same as BENCH_QUICK=1)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        os.environ["BENCH_QUICK"] = "1"
    wanted = [n if n.startswith(PREFIX) else PREFIX + n for n in args.names] or available
    unknown = [n for n in wanted if n not in available]
    if unknown:
        parser.error(f"no such benchmark: {', '.join(unknown)} (have: {', '.join(available)})")
    for name in wanted:
        module = importlib.import_module(f"{__package__ or 'bench'}.{name}")
        run = getattr(module, "main", None)
        if not callable(run):
            parser.error(f"{name} has no main()")
        print(f"== {name}", flush=True)
        run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
