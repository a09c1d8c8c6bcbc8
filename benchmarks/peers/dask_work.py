"""Dask's side of the peer benchmark: a chain of no-op ``dask.delayed`` calls, computed with
Dask's default scheduler for delayed values (threads), as its docs show.

Usage: ``python dask_work.py chain DIR N MB``; prints ``{"seconds": ...}`` last (a 2-call
chain runs first, so that Dask's own imports are loaded).
"""

from __future__ import annotations

import json
import sys
import time

import dask


def inc(x: int) -> int:
    return x + 1


def chain(n: int) -> None:
    x = 0
    for _ in range(n):
        x = dask.delayed(inc)(x)
    assert x.compute() == n


def main() -> None:
    name, n = sys.argv[1], int(sys.argv[3])
    if name != "chain":
        raise SystemExit(f"unknown workload {name!r}")
    chain(2)
    start = time.perf_counter()
    chain(n)
    print(json.dumps({"seconds": time.perf_counter() - start}))


if __name__ == "__main__":
    main()
