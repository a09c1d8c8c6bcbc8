"""Headless run of a 5-cell notebook: through QFlow (`qflow run --notebook`'s launcher) vs
bare papermill. Target: QFlow at most 1.2x papermill. Both run with caching off for QFlow's
steps (`--no-cache`), so both do the same work; the cached QFlow rerun is printed too.

Run: `make bench` or `python benchmarks/notebook_overhead.py`.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nbformat

from qflow.config.paths import Paths
from qflow.launchers.papermill import PapermillLauncher

CELLS = [
    "%load_ext qflow",
    "%%qflow_step data\nvalues = list(range(200_000))",
    "%%qflow_step square\nsquares = [v * v for v in values]",
    "%%qflow_step total\ntotal = sum(squares)",
    "%%qflow_step report\nf'total={total}'",
]


def notebook(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("# parameters")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_code_cell(CELLS[0]), params,
                *[nbformat.v4.new_code_cell(c) for c in CELLS[1:]]]
    path = folder / "five.ipynb"
    nbformat.write(nb, path)
    return path


def main(repeat: int = 3) -> None:
    import papermill

    folder = Path(tempfile.mkdtemp(prefix=".bench-", dir=Path(__file__).parent))
    try:
        path = notebook(folder)
        bare, qflow_times, cached = [], [], []
        for _ in range(repeat):
            start = time.perf_counter()
            papermill.execute_notebook(str(path), str(folder / "out.ipynb"), cwd=str(folder),
                                       progress_bar=False)
            bare.append(time.perf_counter() - start)
            launcher = PapermillLauncher(Paths(folder), tracker="file", console=False, cache=False)
            start = time.perf_counter()
            launcher.launch(path, {}, name="five")
            qflow_times.append(time.perf_counter() - start)
        launcher = PapermillLauncher(Paths(folder), tracker="file", console=False)
        launcher.launch(path, {}, name="five")
        for _ in range(repeat):
            start = time.perf_counter()
            launcher.launch(path, {}, name="five")
            cached.append(time.perf_counter() - start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    b, q, c = (statistics.median(x) for x in (bare, qflow_times, cached))
    print(f"5-cell notebook, median of {repeat}")
    print(f"  bare papermill            {b:6.2f} s")
    print(f"  QFlow, steps computed     {q:6.2f} s   ({q / b:.2f}x papermill)")
    print(f"  QFlow, steps from cache   {c:6.2f} s   ({c / b:.2f}x papermill)")


if __name__ == "__main__":
    main()
