"""QFlow's side of the peer benchmark: one workload per call, timed inside a fresh process.

Usage: ``python qflow_work.py WORKLOAD DIR N MB``; prints ``{"seconds": ...}`` as its last
line. Before the clock starts, the same workload runs once at a tiny size in a scratch
folder, so that what QFlow imports on first use is loaded (start-up has rows of its own).
Runs use ``console=False, tracker=None``: the peers print and track nothing either.

The template workloads time the ``qflow`` command in a project made by ``qflow init``:
``template_prepare`` caches its example workflow (with N=1 also creating its MLflow database),
``template_mlflow`` and ``template_file`` rerun it with each tracker. The clock times the
command, as its user waits for it; MLflow then records the run in a background process,
which ``qflow sync`` waits for after the clock stops, so that it neither slows the next
sample nor outlives the folder.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
from sample import run

import qflow

QFLOW = str(Path(sys.executable).with_name("qflow"))


@qflow.step
class Inc:
    i: int = 0

    def apply(self, x: int) -> int:
        return x + 1


@qflow.step
class Start:
    mb: int = 1

    def apply(self, seed: int) -> np.ndarray:
        return np.full(self.mb * 1024 * 1024 // 8, float(seed))


@qflow.step
class Grow:
    i: int = 0

    def apply(self, array: np.ndarray) -> np.ndarray:
        return array + 1.0


@qflow.workflow
class Chain:
    n: int = 1

    def run(self, x: int = 0) -> int:
        for i in range(self.n):
            x = Inc(i=i).apply(x)
        return x


@qflow.workflow
class Arrays:
    n: int = 1
    mb: int = 1

    def run(self, seed: int = 0) -> np.ndarray:
        array = Start(mb=self.mb).apply(seed)
        for i in range(self.n - 1):
            array = Grow(i=i).apply(array)
        return array


def chain(folder: Path, n: int, mb: int) -> None:
    assert qflow.run(Chain(n=n), root=folder, console=False, tracker=None,
                     cache=False).result == n


def steps(folder: Path, n: int, mb: int) -> None:
    assert qflow.run(Chain(n=n), root=folder, console=False, tracker=None).result == n


def arrays(folder: Path, n: int, mb: int) -> None:
    assert qflow.run(Arrays(n=n, mb=mb), root=folder, console=False,
                     tracker=None).result[0] == n - 1


def command(folder: Path, *args: str) -> None:
    subprocess.run([QFLOW, *args], cwd=folder / "demo", check=True, capture_output=True)


def template_prepare(folder: Path, n: int, mb: int) -> None:
    subprocess.run([QFLOW, "init", "-p", "demo", "--path", str(folder)], check=True,
                   capture_output=True)
    command(folder, "run", "-w", "example", "tracker=file")
    if n:
        command(folder, "run", "-w", "example")
        command(folder, "sync")


def template_mlflow(folder: Path, n: int, mb: int) -> None:
    command(folder, "run", "-w", "example")


def template_file(folder: Path, n: int, mb: int) -> None:
    command(folder, "run", "-w", "example", "tracker=file")


def help_(folder: Path, n: int, mb: int) -> None:
    subprocess.run([QFLOW, "--help"], check=True, capture_output=True)


def synced(folder: Path, n: int, mb: int) -> None:
    command(folder, "sync")


WORKLOADS = {"chain": chain, "steps_first": steps, "steps_rerun": steps, "arrays_first": arrays,
             "arrays_rerun": arrays, "template_prepare": template_prepare,
             "template_mlflow": template_mlflow, "template_file": template_file, "help": help_}
COMMANDS = ("template_prepare", "template_mlflow", "template_file", "help")
AFTER = {"template_mlflow": synced}  # untimed: what the timed work left running


if __name__ == "__main__":
    run(WORKLOADS, warm_up=sys.argv[1] not in COMMANDS, after=AFTER)
