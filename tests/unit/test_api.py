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
