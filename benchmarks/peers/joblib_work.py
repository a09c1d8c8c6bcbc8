"""joblib's side of the peer benchmark: each step a function cached by ``joblib.Memory``.

Usage: ``python joblib_work.py WORKLOAD DIR N MB``; prints ``{"seconds": ...}`` last. Before
the clock starts, the same workload runs once at a tiny size in a scratch folder. A cached
call hashes its arguments to find its result; for the arrays the memory maps results
(``mmap_mode="r"``), as joblib's docs advise for large numpy arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from joblib import Memory
from sample import run


def inc(x: int, i: int) -> int:
    return x + 1


def start_array(seed: int, mb: int) -> np.ndarray:
    return np.full(mb * 1024 * 1024 // 8, float(seed))


def grow(array: np.ndarray, i: int) -> np.ndarray:
    return array + 1.0


def steps(folder: Path, n: int, mb: int) -> None:
    cached = Memory(folder, verbose=0).cache(inc)
    x = 0
    for i in range(n):
        x = cached(x, i)
    assert x == n


def arrays(folder: Path, n: int, mb: int) -> None:
    memory = Memory(folder, verbose=0, mmap_mode="r")
    first, then = memory.cache(start_array), memory.cache(grow)
    array = first(0, mb)
    for i in range(n - 1):
        array = then(array, i)
    assert array[0] == n - 1


WORKLOADS = {"steps_first": steps, "steps_rerun": steps, "arrays_first": arrays,
             "arrays_rerun": arrays}


if __name__ == "__main__":
    run(WORKLOADS)
