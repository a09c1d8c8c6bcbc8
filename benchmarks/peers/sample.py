"""What every ``<tool>_work.py`` does with its workloads: read the command line, warm up,
time one workload and print ``{"seconds": ...}`` as the last line.

Usage of a worker: ``python <tool>_work.py WORKLOAD DIR N MB``. The warm-up runs the same
workload at a tiny size in a scratch folder beside DIR, so that what the tool imports on
first use is loaded before the clock starts (start-up has rows of its own).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

Workload = Callable[[Path, int, int], None]


def run(workloads: dict[str, Workload], *, warm_up: bool = True,
        after: dict[str, Workload] | None = None) -> None:
    """Time the workload the command line names; ``after`` maps a workload to untimed work
    done once the clock has stopped (what the timed work left running)."""
    name, folder, n, mb = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    workload = workloads[name]
    if warm_up:
        with tempfile.TemporaryDirectory(dir=folder.parent) as scratch:
            workload(Path(scratch), 2, 1)
    start = time.perf_counter()
    workload(folder, n, mb)
    seconds = time.perf_counter() - start
    if after and name in after:
        after[name](folder, n, mb)
    print(json.dumps({"seconds": seconds}))
