"""Tracking overhead: a 200-step workflow with a metric per step, per tracker.

Prints the whole run's time with no tracker, the file tracker, MLflow (embedded SQLite) and
W&B (offline), and the overhead each adds per run. The first MLflow run of a project also
creates its database: that one-off cost is printed apart. Run: `make bench` or
`python benchmarks/trackers.py`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Generator
from pathlib import Path

import qflow

STEPS = 200


@qflow.step
class Score:
    i: int = 0

    def apply(self, x: float) -> Generator[qflow.RuntimeInfo, None, float]:
        yield qflow.Metric(name="score", value=x + self.i)
        return x + 1


@qflow.workflow
class Many:
    def run(self, x: float = 0.0) -> Generator[qflow.RuntimeInfo, None, float]:
        for i in range(STEPS):
            x = yield from Score(i=i).apply(x)
        return x


def timed_run(root: Path, tracker: str | None) -> float:
    start = time.perf_counter()
    qflow.run(Many(), root=root, console=False, tracker=tracker, cache=False)
    return time.perf_counter() - start


def main() -> None:
    os.environ.setdefault("WANDB_SILENT", "true")
    root = Path(tempfile.mkdtemp(prefix=".bench-", dir=Path(__file__).parent))
    try:
        timed_run(root, "file")  # warm imports
        first_mlflow = timed_run(root, "mlflow")
        timed_run(root, "wandb")
        results = {name: min(timed_run(root, name) for _ in range(3))
                   for name in (None, "file", "mlflow", "wandb")}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = results[None]
    print(f"{STEPS} steps, one metric each, cache off (best of 3)")
    for name, seconds in results.items():
        extra = "" if name is None else f"   +{(seconds - base) * 1000:7.1f} ms per run"
        print(f"  {name or 'no tracker':12} {seconds * 1000:8.1f} ms{extra}")
    print(f"  first MLflow run of a project (creates the database): {first_mlflow:.2f} s")


if __name__ == "__main__":
    main()
