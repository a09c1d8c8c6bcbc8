"""Cached rerun of 10 steps that each produce a 100 MB array, against their first run.

The rerun must neither read nor hash the 1 GB of artifacts: keys chain upstream keys, so a
cached step costs a ``stat``. The script prints both times and the bytes the rerun read
(``rchar`` from /proc/self/io, Linux). Run: `make bench` or `python benchmarks/large_arrays.py`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import qflow

STEPS = 10
SIZE = 100 * 1024 * 1024 // 8  # float64 elements in 100 MB


@qflow.step
class Start:
    def apply(self, seed: int) -> np.ndarray:
        return np.full(SIZE, float(seed))


@qflow.step
class Grow:
    i: int = 0

    def apply(self, array: np.ndarray) -> np.ndarray:
        return array + 1.0


@qflow.step
class Summary:
    def apply(self, array: np.ndarray) -> float:
        return float(array[:10].mean())


@qflow.workflow
class Arrays:
    def run(self, seed: int = 0) -> float:
        array = Start().apply(seed)
        for i in range(STEPS - 1):
            array = Grow(i=i).apply(array)
        return Summary().apply(array)


def bytes_read() -> int:
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix=".bench-", dir=Path(__file__).parent))
    try:
        start = time.perf_counter()
        first = qflow.run(Arrays(), root=root, console=False)
        first_s = time.perf_counter() - start
        read_before = bytes_read()
        start = time.perf_counter()
        again = qflow.run(Arrays(), root=root, console=False)
        cached_s = time.perf_counter() - start
        read = bytes_read() - read_before
        assert again.result == first.result == 9.0
        assert again.counts() == {"cached": STEPS + 1}
        stored = sum(p.stat().st_size for p in (root / ".qflow/store").rglob("*") if p.is_file())
        print(f"{STEPS} steps x 100 MB arrays ({stored / 1e9:.2f} GB stored)")
        print(f"  first run       {first_s:8.3f} s")
        print(f"  cached rerun    {cached_s:8.3f} s   ({first_s / cached_s:,.0f}x faster)")
        print(f"  bytes read by the rerun: {read / 1024:,.0f} KiB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
