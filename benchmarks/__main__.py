"""Run wearflow's benchmarks: ``python -m benchmarks [--quick] [NAME ...]``.

Prints the machine facts, then one line per figure as it is measured. A
benchmark that fails prints an ``ERROR`` line and the others still run; the
exit code is then 1. Benchmarks run one after another (never in parallel), so
that each one has the machine's cores to itself.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Sequence

from benchmarks._common import fmt_s, machine_facts

# In run order; each is a module ``benchmarks.<name>`` with ``run(quick) -> Iterator[Figure]``.
BENCHMARKS = ("overhead", "throughput", "streaming_read", "stream_task", "scaling", "planning",
              "state", "reports", "dashboard", "headline")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})")
    parser.add_argument("--quick", action="store_true",
                        help="reduced sizes: a smoke test of the benchmarks, not figures to quote")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {list(BENCHMARKS)}")
    names = [n for n in BENCHMARKS if n in args.names] if args.names else list(BENCHMARKS)

    for fact in machine_facts():
        print(fact.line(), flush=True)
    if args.quick:
        print("mode: --quick (reduced sizes; not comparable with the full figures)", flush=True)
    failed = 0
    started = time.perf_counter()
    for name in names:
        began = time.perf_counter()
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            for figure in module.run(args.quick):
                print(figure.line(), flush=True)
        except Exception as exc:  # report and go on with the next benchmark
            failed += 1
            where = traceback.extract_tb(exc.__traceback__)[-1]
            print(f"{name}: ERROR {type(exc).__name__}: {exc} "
                  f"({where.filename}:{where.lineno})", flush=True)
        print(f"# {name} took {fmt_s(time.perf_counter() - began)}", file=sys.stderr, flush=True)
    print(f"# all benchmarks took {fmt_s(time.perf_counter() - started)}", file=sys.stderr,
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
