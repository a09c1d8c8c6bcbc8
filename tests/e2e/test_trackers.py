"""Trackers end to end: MLflow (embedded SQLite, and its server), W&B offline, the file tracker."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qflow import api
from tests.conftest import QFLOW, finished_steps, run_qflow

WORKFLOW = '''
import time
from typing import Generator

import numpy as np
import pandas as pd

import qflow


@qflow.step
class Make:
    n: int = 5

    def apply(self, seed: int) -> tuple[np.ndarray, pd.DataFrame]:
        a = np.random.default_rng(seed).normal(size=self.n)
        return a, pd.DataFrame({"x": a, "y": a * 2})


@qflow.step
class Train:
    epochs: int = 3
    delay: float = 0.0
    fail: bool = False

    def apply(self, a: np.ndarray, frame: pd.DataFrame) -> Generator[qflow.RuntimeInfo, None, float]:
        for epoch in range(self.epochs):
            time.sleep(self.delay)
            yield qflow.Metric(name="loss", value=1.0 / (epoch + 1), step=epoch)
        if self.fail:
            raise ValueError("the loss diverged")
        yield qflow.Metric(name="rows", value=len(frame))
        return float(a.sum())


@qflow.workflow
class Arrays:
    epochs: int = 3
    delay: float = 0.0
    fail: bool = False

    def run(self, seed: int = 0) -> Generator[qflow.RuntimeInfo, None, float]:
        a, frame = Make().apply(seed)
        train = Train(epochs=self.epochs, delay=self.delay, fail=self.fail)
        return (yield from qflow.label_info(train, train_loss="loss").apply(a, frame))


if __name__ == "__main__":
    qflow.launch(Arrays)
'''

NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
              "WANDB_BASE_URL": "http://127.0.0.1:9", "NO_PROXY": ""}


def qflow(*args: str, cwd: Path, code: int = 0, env: dict | None = None,
          ) -> subprocess.CompletedProcess:
    return run_qflow(*args, cwd=cwd, code=code, env=env, timeout=180)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("trackers")
    qflow("init", "-p", "lab", cwd=base)
    root = base / "lab"
    qflow("configure", "-c", "tracker=wandb", cwd=root)  # adds configs/tracker/wandb.yaml
    qflow("configure", "-c", "tracker=mlflow", cwd=root)  # and keeps MLflow the default
    folder = root / "workflows" / "arrays"
    folder.mkdir()
    (folder / "workflow.py").write_text(WORKFLOW)
    (folder / "config.yaml").write_text("defaults:\n  - project\n  - _self_\ninputs: {}\n"
                                        "parameters:\n  epochs: 3\n")
    return root


def run_id_of(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.split("run_id: ")[1].split()[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_embedded_and_served(project):
    proc = qflow("run", "-w", "arrays", "parameters.epochs=4", cwd=project)
    run_id = run_id_of(proc)
    command = proc.stderr.split("MLflow: ")[1].splitlines()[0]
    uri = command.split("--backend-store-uri ")[1].split()[0]
    assert uri == f"sqlite:///{project / '.qflow/tracker/mlflow/mlflow.db'}"
    qflow("sync", cwd=project)  # MLflow records runs in the background: wait for it

    import mlflow

    mlflow.set_tracking_uri(uri)
    frame = mlflow.search_runs(experiment_names=["lab/arrays"])
    row = frame[frame["tags.qflow.run_id"] == run_id].iloc[0]
    assert row["status"] == "FINISHED" and row["params.epochs"] == "4"
    assert row["params.Train.epochs"] == "4" and row["params.Make.n"] == "5"
    assert row["metrics.train_loss"] == pytest.approx(0.25)  # labelled: its label
    assert row["metrics.Train.rows"] == 5  # unlabelled: Step.metric
    assert row["tags.qflow.workflow"] == "arrays" and row["tags.qflow.step.Train.status"] == "ran"
    history = mlflow.MlflowClient(uri).get_metric_history(row["run_id"], "train_loss")
    assert [(m.step, m.value) for m in history] == [(0, 1.0), (1, 0.5), (2, 1 / 3), (3, 0.25)]

    port = free_port()
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))  # the printed command, verbatim
    server = subprocess.Popen([mlflow_cli, *command.split()[1:], "--host", "127.0.0.1",
                               "--port", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2)
                break
            except OSError:
                assert time.time() < deadline and server.poll() is None, server.stderr.read()
                time.sleep(0.5)
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/runs/get?run_id={row['run_id']}") as r:
            served = json.load(r)["run"]
        params = {p["key"]: p["value"] for p in served["data"]["params"]}
        assert params["epochs"] == "4" and served["info"]["status"] == "FINISHED"

        # the same run read through the server, as another machine would
        view = api.inspect_run(tracker="mlflow", run_id=run_id, tracking_uri=base, root=project)
        assert view.status == "succeeded" and view.parameters["epochs"] == 4
        assert view.history["train_loss"][-1] == (3, 0.25)
        assert view.steps["Train"]["status"] == "ran"
        a, frame = view.artifacts["Make"]
        expected = np.random.default_rng(0).normal(size=5)
        np.testing.assert_array_equal(a, expected)
        pd.testing.assert_frame_equal(frame, pd.DataFrame({"x": expected, "y": expected * 2}))
        assert view.result == pytest.approx(float(expected.sum()))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        server.stderr.close()


def test_wandb_offline_touches_no_network(project):
    proc = qflow("run", "-w", "arrays", "tracker=wandb", cwd=project, env=NO_NETWORK)
    run_id = run_id_of(proc)
    assert list((project / ".qflow/tracker/wandb/wandb").glob(f"offline-run-*-{run_id}"))
    view = api.inspect_run(tracker="wandb", run_id=run_id, root=project)
    assert view.status == "succeeded" and view.settings["Train"]["epochs"] == 3
    assert view.history["train_loss"] == [(0, 1.0), (1, 0.5), (2, 1 / 3)]
    assert view.metrics["Train.rows"] == 5
    np.testing.assert_array_equal(view.artifacts["Make"][0], np.random.default_rng(0).normal(size=5))
    assert [r.run_id for r in api.list_runs("arrays", tracker="wandb", root=project)] == [run_id]


@pytest.mark.parametrize("tracker", ["file", "mlflow", "wandb"])
def test_failed_run_is_failed_in_every_tracker(project, tracker):
    proc = qflow("run", "-w", "arrays", f"tracker={tracker}", "parameters.fail=true", cwd=project,
                 code=1, env=NO_NETWORK)
    assert "Step 'Train'" in proc.stderr and "the loss diverged" in proc.stderr
    run_id = proc.stderr.split("Run ")[1].split()[0]
    view = api.inspect_run(tracker=tracker, run_id=run_id, root=project)  # syncs MLflow first
    assert view.status == "failed" and "Train" in view.error and "the loss diverged" in view.error
    assert api.tracker_for(tracker, root=project).read_run(run_id).status == "FAILED"
    assert view.steps["Make"]["status"] in ("ran", "cached")


def test_interrupted_run_is_killed(project):
    run = subprocess.Popen([QFLOW, "run", "-w", "arrays", "tracker=file",
                            "parameters.delay=5", "parameters.epochs=10"], cwd=project,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = project / ".qflow/runs"
    deadline = time.time() + 60
    while time.time() < deadline:
        started = [p for p in runs.glob("*/events.jsonl")
                   if "Make" in finished_steps(p.parent, "events.jsonl")]
        if any("delay" in (p.parent / "record.json").read_text() and
               json.loads((p.parent / "record.json").read_text())["parameters"]["delay"] == 5
               for p in started):
            break
        time.sleep(0.1)
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    run_id = err.split("Run ")[1].split()[0]
    assert api.tracker_for("file", root=project).read_run(run_id).status == "KILLED"
    assert json.loads((runs / run_id / "record.json").read_text())["status"] == "killed"
