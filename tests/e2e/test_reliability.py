"""Reliability as a user meets it: many processes on one store, a disk that fills up, SIGTERM.

Every test drives real processes (`qflow run`, `python workflow.py`) on a real project, then
checks the store is consistent: each artifact a run names matches its checksums, nothing
half-written sits under a final name, ``tmp/`` is empty, and the next run reuses what finished.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import QFLOW, finished_steps, run_python, run_qflow

WORKFLOW = '''
import os
import time
from pathlib import Path

import numpy as np
import qflow


def barrier(name):
    """Wait until every test process reaches this point, so they all publish the same key."""
    folder = os.environ.get("BARRIER")
    if not folder:
        return
    Path(folder, f"{name}-{os.getpid()}").touch()
    deadline = time.monotonic() + 30
    while len(list(Path(folder).glob(f"{name}-*"))) < int(os.environ["PARTIES"]):
        if time.monotonic() > deadline:
            raise RuntimeError(f"barrier {name}: not every process arrived")
        time.sleep(0.02)


@qflow.step
class Make:
    def apply(self, n: int) -> np.ndarray:
        barrier("make")
        return np.arange(n, dtype=np.float64)


@qflow.step
class Labels:
    def apply(self, n: int) -> list:
        barrier("labels")
        return [i % 3 for i in range(n)]


@qflow.step
class Total:
    delay: float = 0.0

    def apply(self, values: np.ndarray, labels: list) -> float:
        time.sleep(self.delay)
        return float(values.sum()) + sum(labels)


@qflow.workflow
class Train:
    delay: float = 0.0

    def run(self, n: int = 100_000) -> float:
        return Total(delay=self.delay).apply(Make().apply(n), Labels().apply(n))


if __name__ == "__main__":
    qflow.launch(Train)
'''
RESULT = float(sum(range(100_000)) + sum(i % 3 for i in range(100_000)))

BIG = '''
import numpy as np
import qflow


@qflow.step
class Small:
    def apply(self, n: int) -> list:
        return list(range(n))


@qflow.step
class BigArray:
    def apply(self, data: list) -> np.ndarray:
        return np.ones(1_000_000)  # 8 MB, over the 2 MB limit


@qflow.step
class BigBytes:
    def apply(self, data: list) -> bytes:
        return b"x" * 8_000_000


@qflow.workflow
class Flow:
    def run(self, n: int = 10) -> object:
        return STEP().apply(Small().apply(n))


if __name__ == "__main__":
    qflow.launch(Flow)
'''


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with the workflow ``train`` (made once; each test copies it)."""
    root = tmp_path_factory.mktemp("template")
    run_qflow("init", "-p", "demo", cwd=root, timeout=60)
    run_qflow("new", "-w", "train", cwd=root / "demo", timeout=60)
    (root / "demo/workflows/train/workflow.py").write_text(WORKFLOW)
    config = root / "demo/workflows/train/config.yaml"
    config.write_text(config.read_text().replace("factor: 2.0", "delay: 0.0"))
    return root / "demo"


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template project: no store, no runs yet."""
    subprocess.run(["cp", "-r", str(template), str(tmp_path / "demo")], check=True)
    return tmp_path / "demo"


def records(project: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((project / ".qflow/runs").glob("*/record.json"))]


def check_store(store_root: Path) -> None:
    """Every object verifies, nothing is quarantined, and no temporary file is left."""
    from qflow.store.local import Store

    store = Store(store_root)
    keys = list(store.keys())
    assert keys
    for key in keys:
        store.verify(key, full=True)
    assert list((store_root / "tmp").iterdir()) == []
    assert not (store_root / "quarantine").exists()
    assert not [p for p in store_root.rglob(".tmp-*")]


def test_eight_processes_run_the_same_workflow_on_one_store(project, tmp_path):
    """4 `qflow run` and 4 `python workflow.py` start at once on a fresh project and store; a
    barrier inside two steps makes all 8 compute and publish the same keys at the same time.
    (The file tracker keeps this fast; the embedded MLflow database has its own test below.)"""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {**os.environ, "BARRIER": str(barrier), "PARTIES": "8"}
    commands = [[QFLOW, "run", "-w", "train", "tracker=file"]] * 4 \
        + [[sys.executable, "workflows/train/workflow.py", "tracker=file"]] * 4
    procs = [subprocess.Popen(c, cwd=project, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
             for c in commands]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "Warning" not in err and "Traceback" not in err and "Error" not in err, err
        assert f"result: {RESULT!r}" in (out + err)

    runs = records(project)
    assert len(runs) == 8 and len({r["run_id"] for r in runs}) == 8
    assert {r["status"] for r in runs} == {"succeeded"}
    assert {r["result"] for r in runs} == {RESULT}
    for step in ("Make", "Labels"):  # all 8 computed them: none could finish before the rest
        assert {r["nodes"][step]["status"] for r in runs} == {"ran"}
        assert len({r["nodes"][step]["key"] for r in runs}) == 1
    assert len({r["nodes"]["Total"]["key"] for r in runs}) == 1
    check_store(project / ".qflow/store")
    assert len(list((project / ".qflow/tracker/file").glob("*.jsonl"))) == 8

    rerun = run_qflow("run", "-w", "train", "tracker=file", cwd=project, timeout=60)
    assert "0 ran, 3 cached" in rerun.stderr and f"result: {RESULT!r}" in rerun.stdout


MLFLOW_RUN = """
import sys
from types import SimpleNamespace
from qflow.runtime.events import RunState
from qflow.trackers.mlflow import MlflowTracker

tracker = MlflowTracker(sys.argv[1], project="demo")
run = RunState(run_id=sys.argv[2], workflow="train", parameters={},
               graph=SimpleNamespace(nodes={}), nodes={})
tracker.start_run(run, {})
tracker.end_run("FINISHED", None)
"""


def test_processes_creating_the_embedded_mlflow_database_at_once(tmp_path):
    """The first runs of a fresh project, started together, create MLflow's SQLite database
    and experiment once; none reads a half-migrated schema ("no such column")."""
    folder = tmp_path / "mlflow"
    procs = [subprocess.Popen([sys.executable, "-c", MLFLOW_RUN, str(folder), f"run{i}"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    import sqlite3

    with sqlite3.connect(folder / "mlflow.db") as db:
        assert db.execute("select count(*) from runs where status = 'FINISHED'").fetchone() == (3,)
        assert db.execute("select count(*) from experiments where name = 'demo/train'"
                          ).fetchone() == (1,)


def _limit_file_size(limit: int):  # noqa: ANN202
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so the write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@pytest.mark.parametrize("step", ["BigArray", "BigBytes"])
def test_full_disk_fails_the_step_clearly_and_keeps_the_store_consistent(tmp_path, step):
    (tmp_path / "flow.py").write_text(BIG.replace("STEP", step))
    proc = subprocess.run([sys.executable, "flow.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, preexec_fn=_limit_file_size(2_000_000))
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"Step '{step}'" in proc.stderr and "its output cannot be saved" in proc.stderr
    assert "hit the file-size limit (ulimit -f is 2000000 bytes)" in proc.stderr
    assert "Hint: Raise the limit (`ulimit -f unlimited`)" in proc.stderr
    [failed] = records(tmp_path)
    assert failed["status"] == "failed" and failed["failed_step"] == step
    assert "file-size limit" in failed["nodes"][step]["error"]
    store = tmp_path / ".qflow/store"
    check_store(store)  # Small's object only, nothing partial, tmp/ empty
    big_key = failed["nodes"][step]["key"]
    assert not list((store / "objects").glob(f"*/{big_key}*"))

    rerun = run_python(["flow.py"], tmp_path, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    fixed = records(tmp_path)[-1]
    assert fixed["nodes"]["Small"]["status"] == "cached"
    assert fixed["nodes"][step]["status"] == "ran" and fixed["nodes"][step]["key"] == big_key
    check_store(store)


@pytest.mark.parametrize("front", ["qflow run", "python workflow.py"])
def test_sigterm_stops_the_run_like_ctrl_c(project, front):
    command = [QFLOW, "run", "-w", "train"] if front == "qflow run" \
        else [sys.executable, "workflows/train/workflow.py"]
    proc = subprocess.Popen([*command, "parameters.delay=60", "tracker=file"], cwd=project,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # Total is running once Make and Labels are recorded
        steps = finished_steps(project / ".qflow/runs").values()
        if sum(node["status"] == "ran" for node in steps) == 2:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    else:
        pytest.fail("Make and Labels did not finish")
    time.sleep(0.3)  # into Total's sleep
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    assert "Terminated." in err and "Traceback" not in err
    [killed] = records(project)
    assert killed["status"] == "killed" and killed["error"] == "terminated by SIGTERM"
    assert killed["ended"] is not None
    tracked = (project / f".qflow/tracker/file/{killed['run_id']}.jsonl").read_text()
    assert '"status": "KILLED"' in tracked
    assert list((project / ".qflow/store/tmp").iterdir()) == []

    rerun = run_qflow("run", "-w", "train", "tracker=file", cwd=project, timeout=60)
    last = records(project)[-1]
    assert last["status"] == "succeeded" and last["result"] == RESULT
    assert [last["nodes"][s]["status"] for s in ("Make", "Labels", "Total")] == \
        ["cached", "cached", "ran"], rerun.stderr
