"""Wall time of `qflow --help` and `qflow -V` (target: under 0.3 s), and of `import qflow`.

Run: `make bench` or `python benchmarks/cli_startup.py`. Each command runs 7 times in a fresh
process; the median is printed.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

QFLOW = str(Path(sys.executable).with_name("qflow"))


def median_seconds(command: list[str], repeat: int = 7) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    print("Start-up, median of 7 fresh processes")
    for label, command in [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("python -c 'import qflow'", [sys.executable, "-c", "import qflow"]),
        ("qflow --help", [QFLOW, "--help"]),
        ("qflow -V", [QFLOW, "-V"]),
    ]:
        print(f"  {label:28} {median_seconds(command):6.3f} s")


if __name__ == "__main__":
    main()
