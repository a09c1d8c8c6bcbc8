"""Deferred MLflow tracking through the `qflow` command: the run's process never imports
MLflow and a background process records the run; a sync killed midway is resumed by `qflow
sync` with no duplicate; `qflow sync` says when nothing waits and names a run it cannot sync."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import QFLOW, run_qflow
from tests.e2e.test_trackers import WORKFLOW


def qflow(*args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess:
    return run_qflow(*args, cwd=cwd, code=code, timeout=180)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    qflow("init", "-p", "lab", cwd=tmp_path)
    root = tmp_path / "lab"  # MLflow is the default tracker
    folder = root / "workflows" / "arrays"
    folder.mkdir()
    (folder / "workflow.py").write_text(WORKFLOW)
    (folder / "config.yaml").write_text("defaults:\n  - project\n  - _self_\ninputs: {}\n"
                                        "parameters:\n  epochs: 3\n")
    return root


def run_id_of(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.split("run_id: ")[1].split()[0]


def mlflow_runs(project: Path, run_id: str, view: str = "ACTIVE_ONLY") -> list[Any]:
    from mlflow import MlflowClient
    from mlflow.entities import ViewType

    client = MlflowClient(f"sqlite:///{project / '.qflow/tracker/mlflow/mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return client.search_runs(experiments, filter_string=f"tags.`qflow.run_id` = '{run_id}'",
                              run_view_type=getattr(ViewType, view))


def wait_for(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_the_run_never_imports_mlflow_and_a_background_sync_records_it(project):
    proc = subprocess.run([sys.executable, "-X", "importtime", QFLOW, "run", "-w", "arrays"],
                          cwd=project, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}
    assert "qflow.trackers.sync" in imported and "numpy" in imported  # the log is complete
    assert not {m for m in imported if m.split(".")[0] in ("mlflow", "sqlalchemy", "alembic")}
    run_id = run_id_of(proc)
    assert (f"mlflow: experiment 'lab/arrays', run {run_id} (syncing in the background; "
            "`qflow sync` waits for it)") in proc.stderr
    assert "MLflow: mlflow ui --backend-store-uri sqlite:///" in proc.stderr

    marker = project / ".qflow/tracker/sync" / f"{run_id}.json"
    wait_for(lambda: not marker.exists(), "the background sync")
    assert f"synced {run_id} to mlflow" in (project / ".qflow/tracker/sync/sync.log").read_text()
    (mlrun,) = mlflow_runs(project, run_id)
    assert mlrun.info.status == "FINISHED" and mlrun.data.params["Train.epochs"] == "3"
    assert mlrun.data.metrics["train_loss"] == pytest.approx(1 / 3)
    assert mlrun.data.tags["qflow.step.Train.status"] == "ran"
    assert qflow("sync", cwd=project).stdout == "Nothing to sync: every run is in its tracker.\n"


STALLED_SYNC = '''
import pathlib, sys, time
from qflow.config.paths import Paths
from qflow.trackers.mlflow import MlflowTracker
from qflow.trackers.sync import sync


def stall(self, status, error):  # the MLflow run is open: a kill now leaves it half done
    pathlib.Path(sys.argv[2]).touch()
    time.sleep(600)


MlflowTracker.end_run = stall
sync(Paths.discover(sys.argv[1]))
'''


def test_a_killed_sync_is_resumed_by_qflow_sync_without_duplicates(project, tmp_path):
    proc = qflow("run", "-w", "arrays", "tracker.sync=manual", "parameters.epochs=5", cwd=project)
    run_id = run_id_of(proc)
    assert f"run {run_id} (not recorded yet: `qflow sync` records it)" in proc.stderr
    marker = project / ".qflow/tracker/sync" / f"{run_id}.json"
    assert marker.exists() and not (project / ".qflow/tracker/sync/sync.log").exists()

    script, stalled = tmp_path / "stalled_sync.py", tmp_path / "stalled"
    script.write_text(STALLED_SYNC)
    sync = subprocess.Popen([sys.executable, str(script), str(project), str(stalled)],
                            start_new_session=True, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: stalled.exists() or sync.poll() is not None, "the sync to stall")
        assert sync.poll() is None, sync.stderr.read()
        busy = qflow("sync", "--no-wait", cwd=project)
        assert busy.stdout.startswith("A sync is in progress in another process")
    finally:
        os.killpg(sync.pid, signal.SIGKILL)
        sync.wait(timeout=30)
        sync.stderr.close()
    (partial,) = mlflow_runs(project, run_id)
    assert partial.info.status == "RUNNING" and marker.exists()

    assert qflow("sync", cwd=project).stdout == "Synced 1 run to mlflow.\n"
    assert not marker.exists()
    (whole,) = mlflow_runs(project, run_id)
    assert whole.info.status == "FINISHED" and whole.info.run_id != partial.info.run_id
    assert whole.data.params["epochs"] == "5" and whole.data.metrics["Train.rows"] == 5
    assert [r.info.run_id for r in mlflow_runs(project, run_id, "DELETED_ONLY")] == \
        [partial.info.run_id]


def test_qflow_sync_names_a_run_it_cannot_sync_and_keeps_it(project):
    assert qflow("sync", cwd=project).stdout == "Nothing to sync: every run is in its tracker.\n"
    broken = ("tracker.sync=manual", "tracker.tracking_uri=bogus://nowhere")
    run_id = run_id_of(qflow("run", "-w", "arrays", *broken, cwd=project))
    failed = qflow("sync", cwd=project, code=1)
    assert f"Run {run_id} could not be synced: mlflow: " in failed.stderr
    assert "bogus://nowhere" in failed.stderr and "Hint: fix the cause" in failed.stderr
    assert (project / ".qflow/tracker/sync" / f"{run_id}.json").exists()
    again = qflow("run", "-w", "arrays", *broken, cwd=project)
    assert "1 earlier run could not be synced: `qflow sync` says why" in again.stderr
    named = qflow("sync", run_id, cwd=project, code=1)
    assert f"Run {run_id} could not be synced" in named.stderr
    assert run_id_of(again) not in named.stderr  # only the run named
