"""RunView built from tracker data: typed parameters and settings, notebook session records."""

from __future__ import annotations

from qflow.api import RunView
from qflow.trackers.base import MetricPoint, RunData


def notebook_record() -> dict:
    """A notebook session's run record, as the session writes it."""
    return {
        "run_id": "20261130-120000-000-abcdef", "workflow": "explore", "kind": "notebook",
        "status": "succeeded", "started": 1000.0, "ended": 1067.0, "duration": 1.5,
        "parameters": {"lr": 0.1}, "metrics": {}, "result": None, "error": None,
        "nodes": {
            "load": {"id": "load", "kind": "step", "status": "cached", "key": "k1",
                     "duration": 0.5, "reasons": [], "metrics": []},
            "fit": {"id": "fit", "kind": "step", "status": "ran", "key": "k2", "duration": 1.0,
                    "reasons": [], "metrics": [{"name": "loss", "value": 0.5, "step": 0},
                                               {"name": "loss", "value": 0.25, "step": 1}]},
        },
        "graph": {"name": "explore", "nodes": [
            {"id": "load", "kind": "step", "title": "load", "upstream": []},
            {"id": "fit", "kind": "step", "title": "fit", "upstream": ["load"]}]},
    }


def test_tracker_parameters_without_a_record_are_decoded_and_grouped_by_step():
    data = RunData(run_id="r", status="FINISHED",
                   params={"rounds": "4", "name": "demo", "Train.epochs": "4",
                           "Train.optimizer": "adam", "Train.layers": "[8, 4]"},
                   tags={"qflow.step.Train.status": "ran"})
    view = RunView.from_data(data, "mlflow")
    assert view.parameters == {"rounds": 4, "name": "demo"}
    assert view.settings == {"Train": {"epochs": 4, "optimizer": "adam", "layers": [8, 4]}}


def test_record_parameters_win_and_tracker_copies_are_not_repeated():
    record = {"parameters": {"rounds": 4, "opt": {"lr": 0.1}},
              "graph": {"nodes": [{"id": "Train", "kind": "step", "settings": {"epochs": 4}}]}}
    data = RunData(run_id="r", status="FINISHED", record=record,
                   params={"rounds": "4", "opt.lr": "0.1", "Train.epochs": "4"})
    view = RunView.from_data(data, "mlflow")
    assert view.parameters == {"rounds": 4, "opt": {"lr": 0.1}}
    assert view.settings == {"Train": {"epochs": 4}}


def test_a_notebook_session_record():
    record = notebook_record()
    view = RunView.from_data(RunData(run_id=record["run_id"], status="succeeded", record=record),
                             "record")
    assert view.kind == "notebook" and view.duration == 1.5  # the steps' time, not the session's
    assert view.statuses == {"load": "cached", "fit": "ran"}
    assert view.parameters == {"lr": 0.1}
    assert view.history == {"fit.loss": [(0, 0.5), (1, 0.25)]} and view.metrics == {"fit.loss": 0.25}
    text = repr(view)
    assert "Notebook session 20261130-120000-000-abcdef of explore (record): succeeded in 1.50 s" \
        in text
    assert "result" not in text and "fit ran" in text and "lr=0.1" in text
    assert "result" not in view._repr_html_()


def test_tracker_history_is_kept_and_the_duration_falls_back_to_the_clock():
    data = RunData(run_id="r", status="FINISHED", start_time=10.0, end_time=12.5,
                   history={"loss": [MetricPoint("loss", 1.0, 0, 0), MetricPoint("loss", 0.5, 1, 0)]})
    view = RunView.from_data(data, "mlflow")
    assert view.history == {"loss": [(0, 1.0), (1, 0.5)]} and view.duration == 2.5
    assert view.status == "succeeded" and view.kind == "workflow"


# -- load_run: a past run's outputs, lazily ------------------------------------------------------

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import qflow  # noqa: E402
from qflow import api  # noqa: E402
from qflow.config.paths import Paths  # noqa: E402
from qflow.errors import ConfigError, StepError  # noqa: E402
from qflow.store.local import Store  # noqa: E402


@qflow.step
class Grid:
    def apply(self, n: int) -> np.ndarray:
        return np.arange(n * n, dtype=np.float64).reshape(n, n)


@qflow.step
class Halves:
    def apply(self, grid: np.ndarray) -> tuple[np.ndarray, int]:
        return grid[: len(grid) // 2], len(grid)


@qflow.step
class Boom:
    def apply(self, size: int) -> int:
        raise RuntimeError("boom")


@qflow.workflow
class Arrays:
    fail: bool = False

    def run(self, n: int = 4) -> int:
        top, size = Halves().apply(Grid().apply(n))
        return Boom().apply(size) if self.fail else size


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every ``(key, index)`` the local store loads."""
    seen: list[tuple[str, int]] = []
    original = Store.load

    def load(self, key, index=0):
        seen.append((key, index))
        return original(self, key, index)

    monkeypatch.setattr(Store, "load", load)
    return seen


def test_a_workflow_run_loads_by_step_lazily_and_arrays_stay_mapped(tmp_path, loads):
    state = qflow.run(Arrays(), root=tmp_path, console=False, tracker=None)
    outputs = api.load_run(state.run_id, root=tmp_path)
    assert list(outputs) == ["Grid", "Halves"] and loads == [] and outputs.loaded == set()
    top, size = outputs["Halves"]  # a tuple-output step: its tuple
    assert size == 4 and isinstance(top, np.memmap) and top.shape == (2, 4)
    assert outputs.loaded == {"Halves"}
    assert {key for key, _ in loads} == {state.nodes["Halves"].key}  # Grid was not read
    grid = outputs["Grid"]
    assert isinstance(grid, np.memmap) and grid[3, 3] == 15.0
    assert outputs.slot("Grid").key == state.nodes["Grid"].key
    with pytest.raises(KeyError, match="names: Grid, Halves"):
        outputs["n"]  # an input value is no artifact


def test_a_failed_run_has_its_finished_steps_and_only_what_the_store_still_holds(tmp_path):
    with pytest.raises(StepError):
        qflow.run(Arrays(fail=True), root=tmp_path, console=False, tracker=None)
    run_id = json.loads(next((tmp_path / ".qflow/runs").glob("*/record.json")).read_text())["run_id"]
    outputs = api.load_run(run_id, root=tmp_path)
    assert list(outputs) == ["Grid", "Halves"]
    Store(Paths.discover(tmp_path).store).remove(outputs.slot("Grid").key)
    assert list(api.load_run(run_id, root=tmp_path)) == ["Halves"]
    assert list(api.load_run(run_id, ["Grid"], root=tmp_path)) == []


def test_a_killed_run_has_the_steps_its_node_log_names(tmp_path):
    state = qflow.run(Arrays(), root=tmp_path, console=False, tracker=None)
    path = tmp_path / ".qflow/runs" / state.run_id / "record.json"
    record = json.loads(path.read_text())
    record["status"] = "running"  # as `kill -9` leaves it: nodes pending, nodes.jsonl kept
    for node in record["nodes"].values():
        node.update(status="pending", key=None)
    path.write_text(json.dumps(record))
    assert list(api.load_run(state.run_id, root=tmp_path)) == ["Grid", "Halves"]


def test_unknown_runs_and_steps_are_clear_errors(tmp_path):
    state = qflow.run(Arrays(), root=tmp_path, console=False, tracker=None)
    with pytest.raises(ConfigError, match=r"No run 'nope' in .*\.qflow/runs \(newest: "):
        api.load_run("nope", root=tmp_path)
    with pytest.raises(ConfigError, match=r"has no step 'Fit' \(steps: Grid, Halves\)"):
        api.load_run(state.run_id, ["Fit"], root=tmp_path)


def notebook_run(root: Path) -> str:
    """A notebook session of three step cells, without IPython; returns its run id."""
    from qflow.notebook.session import Session, SessionConfig, project_observers

    paths = Paths.discover(root)
    ns: dict = {"np": np}
    session = Session(ns, paths, observers=lambda s: project_observers(
        s, SessionConfig(paths, tracker=None)))

    def execute(code: str):
        exec(compile(code, "<cell>", "exec"), ns)
        return None, []

    session.step("one", "grid = np.ones((3, 3))\nlabel = 'first'\n", execute)
    session.step("two", "label = 'second'\ntotal = float(grid.sum())\n", execute)
    session.step("three", "import math\nroot = math.sqrt(total)\n", execute)
    session.end()
    return session.run.run_id


def test_a_notebook_run_loads_the_cells_variables_lazily(tmp_path, loads, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_id = notebook_run(tmp_path)
    outputs = api.load_run(run_id, root=tmp_path)
    assert sorted(outputs) == ["grid", "label", "root", "total"]  # no __result__, no module
    assert outputs["label"] == "second"  # the later cell wins
    assert outputs.slot("label").node == "two" and outputs.loaded == {"label"}
    assert loads == [(outputs.slot("label").key, outputs.slot("label").index)]
    assert isinstance(outputs["grid"], np.memmap) and outputs["total"] == 9.0
    assert outputs["root"] == 3.0
    first = api.load_run(run_id, ["one"], root=tmp_path)
    assert dict(first) == {"grid": first["grid"], "label": "first"}
