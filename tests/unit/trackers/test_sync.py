"""Deferred tracking: a run synced into MLflow from its event log equals the run recorded in its
own process, a failed sync is kept and retried without duplicates, a crashed run is synced as
failed. MLflow on SQLite, runs from the local launcher, the sync in this process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Generator

import numpy as np
import pytest

import qflow
from qflow import api
from qflow.config.paths import Paths
from qflow.errors import StepError
from qflow.launchers.local import LocalLauncher
from qflow.trackers.mlflow import MlflowTracker
from qflow.trackers.sync import CRASHED, drop, markers, sync


@qflow.step
class Make:
    n: int = 20

    def apply(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        x = np.random.default_rng(seed).normal(size=self.n)
        return x, x * 2


@qflow.step
class Fit:
    epochs: int = 3
    fail: bool = False

    def apply(self, x: np.ndarray, y: np.ndarray) -> Generator[qflow.RuntimeInfo, None, dict]:
        for epoch in range(self.epochs):
            yield qflow.Metric(name="loss", value=1.0 / (epoch + 1), step=epoch)
        yield qflow.Metric(name="rows", value=len(x))
        if self.fail:
            raise ValueError("the loss diverged")
        return {"slope": float(np.polyfit(x, y, 1)[0]), "points": [1, 2]}


@qflow.workflow
class Train:
    epochs: int = 3
    fail: bool = False

    def run(self, seed: int = 0) -> Generator[qflow.RuntimeInfo, None, dict]:
        x, y = Make().apply(seed)
        fit = qflow.label_info(Fit(epochs=self.epochs, fail=self.fail), train_loss="loss")
        return (yield from fit.apply(x, y))


def launch(root: Path, mode: str, **parameters: Any) -> qflow.RunState:
    launcher = LocalLauncher(Paths.discover(root), tracker="mlflow", console=False,
                             tracker_settings={"sync": mode, "log_artifacts": ["Make"],
                                               "experiment": "lab"})
    try:
        return launcher.launch(Train(**parameters))
    except StepError:
        return None  # type: ignore[return-value]


def client_of(root: Path) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(f"sqlite:///{root / '.qflow/tracker/mlflow/mlflow.db'}")


def runs_of(root: Path, run_id: str, view: str = "ACTIVE_ONLY") -> list[Any]:
    from mlflow.entities import ViewType

    client = client_of(root)
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return client.search_runs(experiments, filter_string=f"tags.`qflow.run_id` = '{run_id}'",
                              run_view_type=getattr(ViewType, view))


def snapshot(root: Path, run_id: str) -> dict[str, Any]:
    """What MLflow holds of a run, without what differs between two runs (ids, durations)."""
    (mlrun,) = runs_of(root, run_id)
    client = client_of(root)
    tags = {k: v.replace(run_id, "RUN") for k, v in mlrun.data.tags.items()
            if k not in ("qflow.run_id", "mlflow.runName")}
    history = {name: [(m.step, m.value) for m in client.get_metric_history(mlrun.info.run_id, name)]
               for name in mlrun.data.metrics if not name.endswith(".duration_s")}
    local = client.download_artifacts(mlrun.info.run_id, "", str(root / f"down-{run_id}"))
    return {"status": mlrun.info.status, "params": mlrun.data.params, "tags": tags,
            "metrics": sorted(mlrun.data.metrics), "history": history,
            "artifacts": sorted(p.relative_to(local).as_posix() for p in Path(local).rglob("*")),
            "result.json": json.loads(Path(local, "result.json").read_text())
            if Path(local, "result.json").exists() else None}


@pytest.mark.parametrize("fail", [False, True])
def test_a_synced_run_equals_the_run_recorded_in_its_process(tmp_path, fail):
    live = launch(tmp_path / "live", "inline", fail=fail)
    assert not markers(Paths.discover(tmp_path / "live"))  # inline: nothing waits
    deferred = launch(tmp_path / "deferred", "manual", fail=fail)
    paths = Paths.discover(tmp_path / "deferred")
    (marker,) = markers(paths)
    assert marker.finished and marker.mode == "manual" and not marker.error
    assert not (tmp_path / "deferred/.qflow/tracker/mlflow").exists()  # not started in the run

    report = sync(paths)
    assert list(report.synced.values()) == ["mlflow"] and not markers(paths)
    ids = {name: json.loads(next((tmp_path / name / ".qflow/runs").iterdir())
                            .joinpath("record.json").read_text())["run_id"]
           for name in ("live", "deferred")}
    expected = snapshot(tmp_path / "live", ids["live"])
    assert snapshot(tmp_path / "deferred", ids["deferred"]) == expected
    assert expected["status"] == ("FAILED" if fail else "FINISHED")
    assert expected["params"]["Fit.epochs"] == "3" and expected["history"]["train_loss"][-1] \
        == (2, 1 / 3)
    if not fail:
        assert expected["result.json"] == {"slope": pytest.approx(2.0), "points": [1, 2]}
        assert {"Make.0", "Make.1", "graph.svg", "record.json"} <= set(expected["artifacts"])
        assert deferred.result == live.result

    # the run's own times, not the sync's
    record = json.loads((paths.runs / ids["deferred"] / "record.json").read_text())
    (mlrun,) = runs_of(tmp_path / "deferred", ids["deferred"])
    assert mlrun.info.start_time == int(record["started"] * 1000)
    assert abs(mlrun.info.end_time / 1000 - record["ended"]) < 0.5


def test_a_failed_sync_keeps_the_run_and_the_next_leaves_one_copy(tmp_path, monkeypatch):
    state = launch(tmp_path, "manual")
    paths = Paths.discover(tmp_path)

    def broken(self, status, error):
        raise ConnectionError("the server went away")

    monkeypatch.setattr(MlflowTracker, "end_run", broken)
    report = sync(paths)
    assert report.failed == {state.run_id: "mlflow: ConnectionError: the server went away"}
    assert report.summary() == []  # failures are the caller's to print
    (marker,) = markers(paths)
    assert marker.error == report.failed[state.run_id]
    (partial,) = runs_of(tmp_path, state.run_id)
    assert partial.info.status == "RUNNING"  # what an interrupted sync leaves

    monkeypatch.undo()
    assert list(sync(paths).synced) == [state.run_id] and not markers(paths)
    (whole,) = runs_of(tmp_path, state.run_id)
    assert whole.info.status == "FINISHED" and whole.data.params["epochs"] == "3"
    assert [r.info.run_id for r in runs_of(tmp_path, state.run_id, "DELETED_ONLY")] == \
        [partial.info.run_id]
    assert sync(paths).summary() == ["Nothing to sync: every run is in its tracker."]


CRASHING = '''
import os, signal, sys
import qflow
from qflow.config.paths import Paths
from qflow.errors import StepError
from qflow.launchers.local import LocalLauncher


@qflow.step
class Count:
    def apply(self, x: int):
        yield qflow.Metric(name="seen", value=x)
        return x


@qflow.step
class Crash:
    def apply(self, x: int) -> int:
        os.kill(os.getpid(), signal.SIGKILL)


@qflow.workflow
class Doomed:
    def run(self, x: int = 3):
        return Crash().apply((yield from Count().apply(x)))


LocalLauncher(Paths.discover(sys.argv[1]), tracker="mlflow", console=False,
              tracker_settings={"sync": "manual"}).launch(Doomed())
'''


def test_a_run_whose_process_died_is_synced_as_failed(tmp_path):
    script = tmp_path / "doomed.py"
    script.write_text(CRASHING)
    done = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == -signal.SIGKILL, done.stderr
    paths = Paths.discover(tmp_path)
    (marker,) = markers(paths)
    assert not marker.finished and marker.ready  # its process is gone
    assert list(sync(paths).synced) == [marker.run_id]
    view = api.inspect_run(tracker="mlflow", run_id=marker.run_id, root=tmp_path)
    assert view.tracker == "mlflow" and view.error == CRASHED
    (mlrun,) = runs_of(tmp_path, marker.run_id)
    assert mlrun.info.status == "FAILED" and mlrun.data.metrics["Count.seen"] == 3
    assert mlrun.data.tags["qflow.step.Count.status"] == "ran"


def test_a_running_run_is_left_for_later_and_shown_from_its_record(tmp_path):
    from qflow.runtime.events import Observer

    events: list[Any] = []

    class Inspect(Observer):
        def node_finished(self, *, run, node, **_):
            if node.id == "Fit":
                events.append(sync(Paths.discover(tmp_path)))
                events.append(api.inspect_run(tracker="mlflow", run_id=run.run_id,
                                              root=tmp_path))

    launcher = LocalLauncher(Paths.discover(tmp_path), tracker="mlflow", console=False,
                             tracker_settings={"sync": "manual"}, observers=[Inspect()])
    state = launcher.launch(Train())
    report, view = events
    assert report.running == [state.run_id] and report.summary() == [
        f"1 run still running ({state.run_id}): synced when it ends."]
    assert view.status == "running" and view.tracker == "mlflow"
    assert list(sync(Paths.discover(tmp_path)).synced) == [state.run_id]


def test_deleting_the_trackers_data_drops_the_runs_waiting_for_it(tmp_path):
    launch(tmp_path, "manual")
    paths = Paths.discover(tmp_path)
    deleted: list[bool] = []
    assert drop(paths, "wandb") == 0 and len(markers(paths)) == 1  # another tracker's runs
    assert drop(paths, "mlflow", then=lambda: deleted.append(True)) == 1
    assert deleted == [True] and not markers(paths)
