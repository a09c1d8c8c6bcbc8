"""Orchestration overhead per step: a 1,000-step chain and a 1,000-step fan-out.

Prints, per step: plain Python calls; QFlow with the cache off (build + run, nothing
stored); QFlow's first run with the cache on (every artifact written atomically and durably,
run record and file tracker included); and the cached rerun. Run: `make bench` or
`python benchmarks/overhead.py [N]`.

Each is measured twice: with the store on the project's disk (what users get; on a shared
virtual disk file creation alone can cost 0.1-0.5 ms and varies run to run) and on a RAM
file system (/dev/shm, where present), which isolates QFlow's own cost from the disk's.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import qflow

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000


@qflow.step
class Inc:
    i: int = 0

    def apply(self, x: int) -> int:
        return x + 1


@qflow.step
class Total:
    def apply(self, values: list) -> int:
        return sum(values)


@qflow.workflow
class Chain:
    n: int = N

    def run(self, x: int = 0) -> int:
        for i in range(self.n):
            x = Inc(i=i).apply(x)
        return x


@qflow.workflow
class FanOut:
    n: int = N

    def run(self, x: int = 0) -> int:
        return Total().apply([Inc(i=i).apply(x) for i in range(self.n)])


def plain_chain(n: int) -> int:
    apply = Inc.apply.__qflow_original__
    x = 0
    for i in range(n):
        x = apply(Inc(i=i), x)
    return x


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def measure(workflow, root: Path) -> dict[str, float]:
    run = lambda cache: qflow.run(workflow, root=root, console=False, cache=cache)  # noqa: E731
    off, result_off = timed(lambda: run(False))
    first, result_first = timed(lambda: run(True))
    cached, result_cached = timed(lambda: run(True))
    assert result_off.result == result_first.result == result_cached.result
    assert result_cached.counts() == {"cached": N + (workflow.__class__ is FanOut)}
    return {"cache off": off, "first run": first, "cached rerun": cached}


def main() -> None:
    places = {"project disk": Path(__file__).parent}
    if Path("/dev/shm").is_dir():
        places["RAM disk"] = Path("/dev/shm")
    plain, _ = timed(lambda: plain_chain(N))
    print(f"QFlow orchestration overhead, {N} steps, ms per step")
    print(f"  {'plain Python chain':28} {plain / N * 1000:9.4f}")
    print(f"  {'':28} " + " ".join(f"{p:>13}" for p in places))
    rows: dict[str, list[float]] = {}
    for where in places.values():
        for workflow in (Chain(), FanOut()):
            root = Path(tempfile.mkdtemp(prefix=".bench-", dir=where))
            try:
                qflow.run(type(workflow)(n=5), root=root, console=False)  # warm imports
                shutil.rmtree(root / ".qflow")
                for label, seconds in measure(workflow, root).items():
                    rows.setdefault(f"{type(workflow).__name__} {label}", []).append(seconds)
            finally:
                shutil.rmtree(root, ignore_errors=True)
    for name, values in rows.items():
        print(f"  {name:28} " + " ".join(f"{v / N * 1000:13.4f}" for v in values))


if __name__ == "__main__":
    main()
