"""The floor: the same workloads done by hand with the least machinery, timed in a fresh process.

Usage: ``python floor_work.py WORKLOAD DIR N MB``; prints ``{"seconds": ...}`` last.

- chain: a dict of node -> (function, upstream names), walked in order.
- steps / arrays, first run: each value pickled (``np.save`` for arrays) into a file written
  aside and renamed, then one ``syncfs`` — the durability QFlow gives.
- reruns: one ``stat`` per step, then the last value loaded (``np.load(mmap_mode="r")``).
- help: ``python -c pass``, the interpreter's own start.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
from sample import run


def inc(x: int) -> int:
    return x + 1


def syncfs(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        ctypes.CDLL(None, use_errno=True).syncfs(fd)
    finally:
        os.close(fd)


def publish(path: Path, write) -> None:  # type: ignore[no-untyped-def]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        write(f)
    os.rename(tmp, path)


def chain(folder: Path, n: int, mb: int) -> None:
    graph = {f"s{i}": (inc, [f"s{i - 1}" if i else "x"]) for i in range(n)}
    values: dict[str, int] = {"x": 0}
    for name, (fn, upstream) in graph.items():
        values[name] = fn(*[values[u] for u in upstream])
    assert values[f"s{n - 1}"] == n


def steps_first(folder: Path, n: int, mb: int) -> None:
    x = 0
    for i in range(n):
        x = inc(x)
        publish(folder / f"s{i}.pkl", lambda f, x=x: pickle.dump(x, f))
    syncfs(folder)
    assert x == n


def steps_rerun(folder: Path, n: int, mb: int) -> None:
    assert all((folder / f"s{i}.pkl").exists() for i in range(n))
    with open(folder / f"s{n - 1}.pkl", "rb") as f:
        assert pickle.load(f) == n


def arrays_first(folder: Path, n: int, mb: int) -> None:
    array = np.full(mb * 1024 * 1024 // 8, 0.0)
    for i in range(n):
        if i:
            array = array + 1.0
        publish(folder / f"a{i}.npy", lambda f, a=array: np.save(f, a))
    syncfs(folder)
    assert array[0] == n - 1


def arrays_rerun(folder: Path, n: int, mb: int) -> None:
    assert all((folder / f"a{i}.npy").exists() for i in range(n))
    assert np.load(folder / f"a{n - 1}.npy", mmap_mode="r")[0] == n - 1


def help_(folder: Path, n: int, mb: int) -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


WORKLOADS = {"chain": chain, "steps_first": steps_first, "steps_rerun": steps_rerun,
             "arrays_first": arrays_first, "arrays_rerun": arrays_rerun, "help": help_}


if __name__ == "__main__":
    run(WORKLOADS, warm_up=False)
