"""The MLflow tracker logs the result and chosen step outputs, read back with MLflow's client.

Runs are recorded as launchers record them by default: after they end, from their event log
(here by ``sync`` in the test's process; ``tests/unit/trackers/test_sync.py`` checks that
this equals recording in the run's process).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import qflow
from qflow.config.paths import Paths
from qflow.launchers.local import LocalLauncher
from qflow.trackers.sync import sync


@qflow.step
class Make:
    n: int = 40

    def apply(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.random.default_rng(seed).normal(size=(self.n, 2))
        return x, (x[:, 0] + x[:, 1] > 0).astype(int)


@qflow.step
class TrainModel:
    def apply(self, x: np.ndarray, y: np.ndarray) -> object:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression().fit(x, y)


@qflow.step
class Score:
    def apply(self, model: object, x: np.ndarray, y: np.ndarray) -> float:
        return float(model.score(x, y))


@qflow.workflow
class Classify:
    def run(self, seed: int = 0) -> float:
        x, y = Make().apply(seed)
        model = qflow.name(TrainModel(), "model").apply(x, y)
        return Score().apply(model, x, y)


def launch(root: Path, **settings):
    paths = Paths.discover(root)
    launcher = LocalLauncher(paths, tracker="mlflow", console=False,
                             tracker_settings={"sync": "manual", **settings})
    state = launcher.launch(Classify())
    assert list(sync(paths).synced) == [state.run_id]
    return state


def uri_of(root: Path) -> str:
    return f"sqlite:///{root / '.qflow/tracker/mlflow/mlflow.db'}"


def client_of(root: Path):
    from mlflow import MlflowClient

    return MlflowClient(uri_of(root))


def test_the_result_and_named_steps_outputs_are_logged_with_mlflow_flavours(tmp_path):
    import mlflow.sklearn
    from mlflow.artifacts import download_artifacts

    state = launch(tmp_path, log_artifacts=["TrainModel", "Make"])
    client = client_of(tmp_path)
    (mlrun,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert mlrun.data.metrics["result"] == state.result > 0.8
    outputs = mlrun.outputs.model_outputs
    assert len(outputs) == 1
    logged = client.get_logged_model(outputs[0].model_id)
    assert logged.name == "model" and logged.source_run_id == mlrun.info.run_id
    model = mlflow.sklearn.load_model(logged.artifact_location)
    x, y = Make().apply(0)  # no proxy: plain Python
    assert model.score(x, y) == state.result
    names = {a.path for a in client.list_artifacts(mlrun.info.run_id)}
    assert {"Make.0", "Make.1", "record.json", "graph.svg"} <= names
    picture = download_artifacts(run_id=mlrun.info.run_id, artifact_path="graph.svg",
                                 dst_path=str(tmp_path / "down"), tracking_uri=uri_of(tmp_path))
    assert 'id="qflow-node-model" class="node qflow-node qflow-ran"' in Path(picture).read_text()
    local = download_artifacts(run_id=mlrun.info.run_id, artifact_path="Make.1",
                               dst_path=str(tmp_path / "down"), tracking_uri=uri_of(tmp_path))
    assert np.array_equal(qflow.load(local), y)


def test_cached_runs_log_too_and_unknown_names_warn(tmp_path):
    launch(tmp_path)
    with pytest.warns(RuntimeWarning, match="log_artifacts names Nope, which is not a step"):
        state = launch(tmp_path, log_artifacts=["model", "Nope"])
    assert state.nodes["model"].status == "cached"
    client = client_of(tmp_path)
    newest = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                order_by=["attributes.start_time DESC"])[0]
    assert len(newest.outputs.model_outputs) == 1
    assert "result" in newest.data.metrics
