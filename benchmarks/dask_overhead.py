"""QFlow's per-step cost on a Dask LocalCluster against raw ``client.submit`` chains.

Both compute a chain of N tiny tasks (each adds one to its input) on the same LocalCluster
of 2 single-thread worker processes. Raw Dask submits the chain as futures that depend on
each other; QFlow runs a workflow of N steps with the dask launcher: keys, cache decisions,
tasks shipped to workers, every artifact saved in the store on disk, run record and file
tracker. Also shown: the fan-out speed-up, 4 CPU-bound steps of ~1 s each, against the local
launcher. Prints the figures and the ratios. Run: `python benchmarks/dask_overhead.py [N]`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import qflow
from qflow.config.paths import Paths
from qflow.launchers.dask import DaskLauncher
from qflow.launchers.local import LocalLauncher

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000


def inc(x: int) -> int:
    return x + 1


@qflow.step
class Inc:
    i: int = 0

    def apply(self, x: int) -> int:
        return x + 1


@qflow.workflow
class Chain:
    n: int = N

    def run(self, x: int = 0) -> int:
        for i in range(self.n):
            x = Inc(i=i).apply(x)
        return x


@qflow.step
class Burn:
    index: int = 0
    seconds: float = 1.0

    def apply(self, x: int) -> int:
        end = time.process_time() + self.seconds
        value = self.index
        while time.process_time() < end:
            for _ in range(10_000):
                value = (value * 1103515245 + 12345) % 2_147_483_648
        return self.index


@qflow.step
class Gather:
    def apply(self, parts: list) -> int:
        return sum(parts)


@qflow.workflow
class FanOut:
    seconds: float = 1.0

    def run(self, x: int = 0) -> int:
        return Gather().apply([Burn(index=i, seconds=self.seconds).apply(x) for i in range(4)])


def raw_chain(client: Any) -> float:
    start = time.perf_counter()
    future = client.submit(inc, 0, pure=False)
    for _ in range(N - 1):
        future = client.submit(inc, future, pure=False)
    assert future.result() == N
    return time.perf_counter() - start


def qflow_run(launcher: Any, workflow: Any) -> float:
    start = time.perf_counter()
    launcher.launch(workflow)
    return time.perf_counter() - start


def main() -> None:
    from distributed import Client, LocalCluster

    base = Path(tempfile.mkdtemp(prefix=".bench-", dir=Path(__file__).parent))
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            raw_chain(client)  # warm up the workers
            raw = min(raw_chain(client) for _ in range(3))
            runs = []
            for attempt in range(3):
                launcher = DaskLauncher(Paths(base / f"chain{attempt}"), console=False,
                                        scheduler_address=cluster.scheduler_address)
                with launcher:
                    runs.append(qflow_run(launcher, Chain()))
                    cached = qflow_run(launcher, Chain())
            ours = min(runs)
            print(f"chain of {N} tiny tasks on a LocalCluster (2 workers), best of 3:")
            print(f"  raw client.submit chain   {raw / N * 1e3:7.3f} ms/task")
            print(f"  QFlow dask launcher       {ours / N * 1e3:7.3f} ms/step   "
                  f"ratio {ours / raw:.2f}x")
            print(f"  QFlow cached rerun        {cached / N * 1e3:7.3f} ms/step   (nothing submitted)")
            dask = DaskLauncher(Paths(base / "fan-dask"), console=False,
                                scheduler_address=cluster.scheduler_address)
            with dask:
                qflow_run(dask, FanOut(seconds=0.05))  # ship the code once
                parallel = qflow_run(dask, FanOut(seconds=1.0))
        local = qflow_run(LocalLauncher(Paths(base / "fan-local"), console=False),
                          FanOut(seconds=1.0))
        print("4 independent CPU-bound steps of ~1 s:")
        print(f"  local launcher {local:.2f} s, dask launcher {parallel:.2f} s: "
              f"{local / parallel:.2f}x faster")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
