"""Benchmarks that measure resource use of the pipeline's readers and writers.

Memory benchmarks measure in a child process of their own (a fresh interpreter, so its peak RSS is the
measured work's alone): the parent runs ``child_command(module, *args)``, the module's ``__main__`` hands its
arguments to ``run_measuring_child``, which prints the measurement as one JSON line.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

CHILD_FLAG = "--measure"


def child_command(module: str, *args) -> list[str]:
    """The command line that runs ``module``'s measuring child with ``args`` (each turned into a string)."""
    return [sys.executable, "-m", module, CHILD_FLAG, *(str(a) for a in args)]


def run_measuring_child(argv: list[str], measure: Callable[..., dict], bench_command: str) -> int:
    """A benchmark module's entry point: ``CHILD_FLAG args...`` prints ``measure(*args)`` as JSON, exit 0.

    Anything else is a user running the module by hand: say which ``jointwsss bench`` command runs it, exit 2.
    """
    if argv and argv[0] == CHILD_FLAG:
        print(json.dumps(measure(*argv[1:])))
        return 0
    print(f"run the benchmark with `jointwsss bench {bench_command}`; this module's entry point is its measuring "
          "child process", file=sys.stderr)
    return 2
