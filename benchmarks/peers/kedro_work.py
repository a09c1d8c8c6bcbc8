"""Kedro's side of the peer benchmark: a pipeline of nodes run by ``SequentialRunner``.

Usage: ``python kedro_work.py WORKLOAD DIR N MB``; prints ``{"seconds": ...}`` last. Before
the clock starts, the same workload runs once at a tiny size in a scratch folder, so that
Kedro's own imports are loaded.

- chain: N no-op nodes, intermediate values in Kedro's default ``MemoryDataset``s; the
  pipeline is built and run inside the clock.
- steps / arrays: every node's output is a ``PickleDataset`` in DIR, run with
  ``only_missing_outputs=True`` (Kedro's way to skip nodes whose outputs exist); then the
  last output is loaded. Kedro's per-node log lines are silenced (QFlow's console is off).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from kedro.io import DataCatalog, MemoryDataset
from kedro.pipeline import Pipeline, node
from kedro.runner import SequentialRunner
from kedro_datasets.pickle import PickleDataset
from sample import run


def inc(x: int) -> int:
    return x + 1


def grow(array: np.ndarray) -> np.ndarray:
    return array + 1.0


def chain(folder: Path, n: int, mb: int) -> None:
    pipeline = Pipeline([node(inc, f"s{i - 1}" if i else "x", f"s{i}", name=f"inc{i}")
                         for i in range(n)])
    outputs = SequentialRunner().run(pipeline, DataCatalog({"x": MemoryDataset(0)}))
    value = outputs[f"s{n - 1}"]
    assert (value.load() if hasattr(value, "load") else value) == n


def persisted(folder: Path, n: int, first, then):  # type: ignore[no-untyped-def]
    """Run N nodes whose outputs are pickle files, skipping those that exist; the last one."""
    pipeline = Pipeline([node(then if i else first, f"v{i - 1}" if i else "seed", f"v{i}",
                              name=f"node{i}") for i in range(n)])
    datasets = {f"v{i}": PickleDataset(filepath=str(folder / f"v{i}.pkl")) for i in range(n)}
    catalog = DataCatalog({"seed": MemoryDataset(0), **datasets})
    SequentialRunner().run(pipeline, catalog, only_missing_outputs=True)
    return catalog[f"v{n - 1}"].load()


def steps(folder: Path, n: int, mb: int) -> None:
    assert persisted(folder, n, inc, inc) == n


def arrays(folder: Path, n: int, mb: int) -> None:
    def start(seed: int) -> np.ndarray:
        return np.full(mb * 1024 * 1024 // 8, float(seed))

    assert persisted(folder, n, start, grow)[0] == n - 1


WORKLOADS = {"chain": chain, "steps_first": steps, "steps_rerun": steps,
             "arrays_first": arrays, "arrays_rerun": arrays}


if __name__ == "__main__":
    logging.disable(logging.WARNING)
    run(WORKLOADS)
