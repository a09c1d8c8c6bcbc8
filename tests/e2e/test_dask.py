"""The Dask launcher on a real cluster: `dask scheduler` and two `dask worker`s on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import free_port, new_project, run_qflow

WORKFLOW = '''
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Generator

import qflow

from lab.helpers import burn  # a project module: workers never saw it

LOG = Path(__file__).parent / "log"


def note(event: str, name: str) -> None:
    with open(LOG, "a") as f:
        f.write(f"{event} {name} {os.getpid()} {time.time()}\\n")


@qflow.step
class Part:
    index: int = 0
    seconds: float = 1.0

    def apply(self, seed: int) -> Generator[qflow.RuntimeInfo, None, int]:
        note("start", f"Part{self.index}")
        bar = qflow.ProgressBar(name="work", total=2)
        yield bar.update(1)
        value = burn(self.seconds, seed + self.index)
        yield bar.update(1)
        yield qflow.Metric(name="value", value=float(value))
        note("end", f"Part{self.index}")
        return value


@qflow.step
class Total:
    def apply(self, parts: list) -> int:
        return sum(parts)


@qflow.workflow
class Fan:
    seconds: float = 1.0

    def run(self, seed: int = 1) -> Generator[qflow.RuntimeInfo, None, int]:
        parts = []
        for i in range(4):
            parts.append((yield from Part(index=i, seconds=self.seconds).apply(seed)))
        return Total().apply(parts)


if __name__ == "__main__":
    qflow.launch(Fan)
'''

HELPERS = '''
import time


def burn(seconds: float, seed: int) -> int:
    """CPU-bound work for about ``seconds``."""
    end = time.process_time() + seconds
    value = seed
    while time.process_time() < end:
        for _ in range(10_000):
            value = (value * 1103515245 + 12345) % 2_147_483_648
    return seed * 1000
'''


def make_project(base: Path) -> Path:
    root = new_project(base, "lab", "fan", WORKFLOW)
    run_qflow("configure", "-c", "launcher=dask", "--set", "n_workers=2", cwd=root)
    (root / "src/lab/helpers.py").write_text(HELPERS)
    return root


def log(root: Path) -> list[list[str]]:
    path = root / "workflows/fan/log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def statuses(root: Path, run_id: str) -> dict[str, str]:
    record = json.loads((root / ".qflow/runs" / run_id / "record.json").read_text())
    return {n: r["status"] for n, r in record["nodes"].items() if r["kind"] == "step"}


def run_id_of(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.split("run_id: ")[1].split()[0]


def test_steps_run_on_the_cluster_in_parallel_and_a_rerun_submits_nothing(tmp_path, dask_cluster):
    root = make_project(tmp_path)
    local = run_qflow("run", "-w", "fan", "launcher=local", cwd=root)
    expected = local.stdout.split("result: ")[1].strip()
    (root / "workflows/fan/log").unlink()
    first = run_qflow("run", "-w", "fan", "launcher=dask", f"launcher.scheduler_address={dask_cluster}",
                      "parameters.seconds=1.01", cwd=root)
    assert first.stdout.split("result: ")[1].strip() == expected
    events = log(root)
    assert len({pid for _, _, pid, _ in events}) == 2, events  # both workers took steps
    assert str(os.getpid()) not in {pid for _, _, pid, _ in events}
    spans = {}
    for event, name, _, stamp in events:
        spans.setdefault(name, {})[event] = float(stamp)
    overlapping = [(a, b) for a in spans for b in spans if a < b
                   and spans[a]["start"] < spans[b]["end"] and spans[b]["start"] < spans[a]["end"]]
    assert overlapping, spans  # independent steps computed at the same time
    assert set(statuses(root, run_id_of(first)).values()) == {"ran"}
    again = run_qflow("run", "-w", "fan", "launcher=dask", f"launcher.scheduler_address={dask_cluster}",
                      "parameters.seconds=1.01", cwd=root)
    assert len(log(root)) == len(events)  # no step computed again
    assert set(statuses(root, run_id_of(again)).values()) == {"cached"}
    assert again.stdout.split("result: ")[1].strip() == expected


def _load(root: Path):
    from qflow.config.paths import Paths
    from qflow.project.workflows import load_workflow_class

    return load_workflow_class(root / "workflows/fan/workflow.py"), Paths(root)


def test_progress_streams_to_the_driver_while_the_step_runs(tmp_path, dask_cluster):
    from qflow.launchers.dask import DaskLauncher
    from qflow.runtime.events import Observer

    root = make_project(tmp_path)
    cls, paths = _load(root)
    seen: list[tuple[str, str, float]] = []

    class Watch(Observer):
        def node_info(self, *, node, info, **_):
            seen.append((node.id, type(info).__name__, time.monotonic()))

        def node_finished(self, *, node, **_):
            seen.append((node.id, "finished", time.monotonic()))

    launcher = DaskLauncher(paths, scheduler_address=dask_cluster, console=False, tracker=None,
                            observers=[Watch()])
    try:
        run = launcher.launch(cls(seconds=1.5))
    finally:
        launcher.close()
    assert run.status == "succeeded"
    first = next(t for n, kind, t in seen if n == "Part" and kind == "Progress")
    finished = next(t for n, kind, t in seen if n == "Part" and kind == "finished")
    assert finished - first > 1.0  # the first update arrived while the step still ran
    assert run.nodes["Part"].metrics == [{"name": "value", "value": 1000.0, "step": None}]


def test_a_worker_killed_mid_step_still_gives_a_completed_run(tmp_path, dask_cluster):
    from qflow.launchers.dask import DaskLauncher

    root = make_project(tmp_path)
    cls, paths = _load(root)
    killed: list[int] = []

    def kill_first_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            starts = [e for e in log(root) if e[0] == "start"]
            if starts:
                pid = int(starts[0][2])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_first_worker)
    killer.start()
    launcher = DaskLauncher(paths, scheduler_address=dask_cluster, console=False, tracker=None)
    try:
        run = launcher.launch(cls(seconds=2.0))
    finally:
        launcher.close()
        killer.join()
    assert killed and run.status == "succeeded" and run.result == 10000
    assert {r.status for r in run.nodes.values() if r.kind == "step"} == {"ran"}
    ends = {e[1] for e in log(root) if e[0] == "end"}
    assert ends == {"Part0", "Part1", "Part2", "Part3"}
    with pytest.raises(Exception):  # noqa: B017  the killed worker's process is gone
        os.kill(killed[0], 0)


def test_an_unreachable_scheduler_is_one_clear_error_exit_2(tmp_path):
    root = make_project(tmp_path)
    address = f"tcp://127.0.0.1:{free_port()}"
    started = time.monotonic()
    proc = run_qflow("run", "-w", "fan", "launcher=dask", f"launcher.scheduler_address={address}",
                     "launcher.connect_timeout=2", cwd=root, code=2)
    assert time.monotonic() - started < 30
    assert f"Cannot reach the Dask scheduler at {address}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_configure_dask_writes_a_config_that_runs_on_a_local_cluster(tmp_path):
    root = make_project(tmp_path)
    text = (root / "configs/launcher/dask.yaml").read_text()
    assert "name: dask" in text and "n_workers: 2" in text
    proc = run_qflow("run", "-w", "fan", "parameters.seconds=0.2", cwd=root)
    assert proc.stdout.split("result: ")[1].strip() == "10000"
    assert set(statuses(root, run_id_of(proc)).values()) == {"ran"}
    assert {e[2] for e in log(root)} - {str(os.getpid())}
