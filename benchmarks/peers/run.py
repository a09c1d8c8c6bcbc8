"""QFlow against its peers (Hamilton, Kedro, joblib, Dask) and the floor, in one run.

Every sample is a fresh process running one workload of one tool (``<tool>_work.py``), which
times the workload itself after its imports and prints the seconds; a rerun's sample runs
in a folder a first run prepared, in another process. The table shows each tool's median,
QFlow ÷ the best peer and QFlow ÷ the floor (the same work done by hand; for the template
run, the same run with the file tracker).

Run it with ``make bench-peers`` (a side virtualenv with the peers) or
``python benchmarks/peers/run.py [--quick] [--only qflow,floor] [--repeat N]``. Peers that
are not installed are skipped. The exit code is 1 if any sample failed.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
TOOLS = {"qflow": "QFlow", "hamilton": "Hamilton", "kedro": "Kedro", "joblib": "joblib",
         "dask": "Dask", "floor": "floor"}
PEERS = ("hamilton", "kedro", "joblib", "dask")
MODULES = {"qflow": "qflow", "hamilton": "hamilton", "kedro": "kedro_datasets",
           "joblib": "joblib", "dask": "dask", "floor": "numpy"}
DISTRIBUTIONS = {"hamilton": "sf-hamilton", "kedro": "kedro", "joblib": "joblib",
                 "dask": "dask"}
# no peer may call home from a benchmark
QUIET = {"HAMILTON_TELEMETRY_ENABLED": "false", "KEDRO_DISABLE_TELEMETRY": "true",
         "DO_NOT_TRACK": "1"}


@dataclass(frozen=True)
class Workload:
    """One row of the table.

    ``size``/``quick`` are the (N, MB) given to the workers; ``prepare`` is run once, untimed,
    in a folder the samples then share (a rerun); without it each sample gets a new folder.
    ``floor`` is the (script, workload) of the floor column.
    """

    name: str
    label: str
    tools: tuple[str, ...]
    size: tuple[int, int]
    quick: tuple[int, int]
    per_step: bool = False
    prepare: str | None = None
    floor: tuple[str, str] | None = None

    def floor_job(self) -> tuple[str, str]:
        return self.floor or ("floor", self.name)


WORKLOADS = [
    Workload("chain", "chain of N no-op steps, caching off, build + run, per step",
             ("qflow", "hamilton", "kedro", "dask"), (1000, 0), (50, 0), per_step=True),
    Workload("steps_first", "N no-op steps, first run (QFlow, floor: durable writes)",
             ("qflow", "kedro", "joblib"), (100, 0), (10, 0)),
    Workload("steps_rerun", "same N steps, cached rerun in a new process",
             ("qflow", "kedro", "joblib"), (100, 0), (10, 0), prepare="steps_first"),
    Workload("arrays_first", "N arrays of MB, first run (QFlow, floor: durable writes)",
             ("qflow", "kedro", "joblib"), (10, 100), (3, 4)),
    Workload("arrays_rerun", "same arrays, cached rerun, result loaded",
             ("qflow", "kedro", "joblib"), (10, 100), (3, 4), prepare="arrays_first"),
    Workload("template_mlflow", "`qflow run` of the cached template workflow, MLflow tracker "
             "(floor: `tracker=file`)", ("qflow",), (1, 0), (0, 0),
             prepare="template_prepare", floor=("qflow", "template_file")),
    Workload("help", "`qflow --help`, wall time (floor: `python -c pass`)", ("qflow",),
             (0, 0), (0, 0)),
]


@dataclass
class Row:
    """Medians (seconds) of one workload by column, and failures."""

    workload: Workload
    n: int
    mb: int
    medians: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def sample(script: str, workload: str, folder: Path, n: int, mb: int) -> float:
    """Run ``workload`` of ``<script>_work.py`` in a fresh process; its own timing in seconds.

    What earlier samples left unwritten (a peer that does not sync its files) is written out
    first, untimed, so that no sample pays for the one before it.
    """
    folder.mkdir(parents=True, exist_ok=True)
    os.sync()
    done = subprocess.run(
        [sys.executable, str(HERE / f"{script}_work.py"), workload, str(folder), str(n), str(mb)],
        cwd=folder, capture_output=True, text=True, env={**os.environ, **QUIET}, timeout=900)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{script} {workload} failed: " + " | ".join(tail))
    if workload.endswith("prepare"):
        return 0.0
    last = [line for line in done.stdout.splitlines() if line.startswith("{")][-1]
    return float(json.loads(last)["seconds"])


def measure(workload: Workload, columns: list[str], base: Path, repeat: int, quick: bool) -> Row:
    """Median of ``repeat`` samples for every column; samples of the columns interleaved, in
    an order that rotates from round to round (no column always follows the same one)."""
    n, mb = workload.quick if quick else workload.size
    row = Row(workload, n, mb)
    jobs = {column: (column, workload.name) if column != "floor" else workload.floor_job()
            for column in columns}
    prepared: dict[tuple[str, str], Path] = {}
    if workload.prepare:
        for script in sorted({script for script, _ in jobs.values()}):
            folder = base / f"{workload.name}-{script}"
            try:
                sample(script, workload.prepare, folder, n, mb)
                prepared[(script, workload.prepare)] = folder
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                for column, (s, _) in jobs.items():
                    if s == script:
                        row.errors[column] = str(exc)
    times: dict[str, list[float]] = {c: [] for c in columns if c not in row.errors}
    for round_ in range(repeat):
        order = list(times)
        if not order:
            break
        shift = round_ % len(order)
        for column in order[shift:] + order[:shift]:
            script, name = jobs[column]
            shared = prepared.get((script, workload.prepare or ""))
            folder = shared or base / f"{workload.name}-{column}-{round_}"
            try:
                times[column].append(sample(script, name, folder, n, mb))
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                row.errors[column] = str(exc)
                del times[column]
            finally:
                if shared is None:
                    shutil.rmtree(folder, ignore_errors=True)
    for folder in prepared.values():
        shutil.rmtree(folder, ignore_errors=True)
    row.medians = {column: statistics.median(values) for column, values in times.items()}
    return row


def shown(seconds: float | None, row: Row) -> str:
    """A median in the row's unit: µs per step for the chain, else ms or s."""
    if seconds is None:
        return "—"
    if row.workload.per_step:
        return f"{seconds / row.n * 1e6:,.1f} µs"
    return f"{seconds * 1000:,.1f} ms" if seconds < 10 else f"{seconds:,.2f} s"


def label(row: Row) -> str:
    text = row.workload.label.replace("N arrays of MB", f"{row.n} × {row.mb} MB arrays")
    return text.replace("N ", f"{row.n:,} ")


def table(rows: list[Row], columns: list[str]) -> str:
    """The Markdown table of medians and ratios."""
    head = ["workload", *(TOOLS[c] for c in columns), "QFlow ÷ best peer", "QFlow ÷ floor"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [label(row)]
        for column in columns:
            if column in row.errors:
                cells.append("error")
            else:
                cells.append(shown(row.medians.get(column), row))
        ours = row.medians.get("qflow")
        peers = {c: row.medians[c] for c in PEERS if c in row.medians}
        if ours is not None and peers:
            best = min(peers, key=peers.__getitem__)
            cells.append(f"{ours / peers[best]:.2f}× {TOOLS[best]}")
        else:
            cells.append("—")
        floor = row.medians.get("floor")
        cells.append(f"{ours / floor:.1f}×" if ours is not None and floor else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def versions(columns: list[str]) -> str:
    parts = [f"Python {platform.python_version()}", f"{os.cpu_count()} CPUs"]
    for column in columns:
        dist = DISTRIBUTIONS.get(column) or ("qflow" if column == "qflow" else None)
        if dist:
            try:
                parts.append(f"{TOOLS[column]} {importlib.metadata.version(dist)}")
            except importlib.metadata.PackageNotFoundError:
                pass
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one sample each")
    parser.add_argument("--only", default="", help="comma-separated tools (qflow,hamilton,"
                        "kedro,joblib,dask,floor); default: every installed one")
    parser.add_argument("--workloads", default="", help="comma-separated workload names")
    parser.add_argument("--repeat", type=int, default=None, help="samples per cell (default 5)")
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder")
    args = parser.parse_args(argv)
    wanted = [t for t in args.only.split(",") if t] or list(TOOLS)
    unknown = [t for t in wanted if t not in TOOLS]
    if unknown:
        parser.error(f"unknown tool(s) {unknown}; choose from {list(TOOLS)}")
    columns = [t for t in TOOLS if t in wanted and importlib.util.find_spec(MODULES[t])]
    missing = [t for t in wanted if t not in columns]
    if missing and args.only:
        parser.error(f"not installed: {missing} (make bench-peers installs them)")
    workloads = [w for w in WORKLOADS if not args.workloads or w.name in args.workloads.split(",")]
    repeat = args.repeat or (1 if args.quick else 5)
    base = Path(tempfile.mkdtemp(prefix=".bench-peers-", dir=args.dir or HERE.parent))
    rows = []
    try:
        for workload in workloads:
            cols = [c for c in columns if c in workload.tools or c == "floor"]
            rows.append(measure(workload, cols, base, repeat, args.quick))
            print(f"  measured {workload.name}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(f"Medians of {repeat} fresh processes each ({versions(columns)})"
          + (f"; not installed, skipped: {', '.join(missing)}" if missing else "") + "\n")
    print(table(rows, columns))
    errors = [message for row in rows for message in row.errors.values()]
    for message in errors:
        print(f"\nerror: {message}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
