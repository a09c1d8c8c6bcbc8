"""The peer benchmark's harness runs: QFlow's side of ``benchmarks/peers/run.py --quick``.

Peers are not installed in the test environment (``make bench-peers`` makes a side
virtualenv for them); this only keeps every QFlow workload and the table from rotting.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "peers" / "run.py"


def test_quick_qflow_side_prints_every_row(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(RUN), "--quick", "--only", "qflow",
                           "--dir", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")][1:]
    labels = ["chain of 50 no-op steps", "10 no-op steps, first run", "same 10 steps, cached",
              "3 × 4 MB arrays, first run", "same arrays, cached rerun",
              "`qflow run` of the cached template", "`qflow --help`"]
    assert len(rows) == len(labels)
    for row, label in zip(rows, labels, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[0].startswith(label)
        assert cells[1].endswith(("µs", "ms", " s")), row  # QFlow's median, not "error"
    assert list(tmp_path.iterdir()) == []  # scratch folders removed
