"""What every ``<tool>_work.py`` does with its workloads: read the command line, warm up,
time one workload and print ``{"seconds": ...}`` as the last line.

Usage of a worker: ``python <tool>_work.py WORKLOAD DIR N MB``. The warm-up runs the same
workload at a tiny size in a scratch folder beside DIR, so that what the tool imports on
first use is loaded before the clock starts (start-up has rows of its own).

A workload of arrays (``MB`` > 0) first touches, then frees, twice the memory its arrays
take, also before the clock starts. On a virtual machine that hands freed memory back to its
host (virtio-balloon free page reporting), a process touching memory that was handed back
waits for the host to supply it again: 1 GB of fresh arrays took 0.24 s or 1.4–3.3 s
depending on how long ago other processes freed theirs, for every tool alike. Touched and
freed just before, the same memory is at hand again, and each sample times the tool.
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
    if mb:
        touch_memory(2 * n * mb)
    start = time.perf_counter()
    workload(folder, n, mb)
    seconds = time.perf_counter() - start
    if after and name in after:
        after[name](folder, n, mb)
    print(json.dumps({"seconds": seconds}))


def touch_memory(mb: int) -> None:
    """Write to ``mb`` MiB of fresh memory, then free it (see the module's docstring)."""
    import numpy as np

    np.ones(mb * 1024 * 1024 // 8)
