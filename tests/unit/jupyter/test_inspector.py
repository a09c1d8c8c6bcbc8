"""The run inspector built from real runs (the file tracker and MLflow on SQLite): parameters
once and typed, plotted metrics with axes, artifact previews, the graph with states, and
nothing printed while it is built."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Generator

import numpy as np
import pandas as pd
import pydantic
import pytest

import qflow
from jupyter_ext.inspector import inspector, static_html
from jupyter_ext.plot import line_plot, ticks
from jupyter_ext.preview import preview
from qflow import api
from qflow.runtime.outputs import LazyArtifacts, Slot


class Summary(pydantic.BaseModel):
    best_epoch: int
    note: str = "converged"


@qflow.step
class Make:
    n: int = 6

    def apply(self, seed: int) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
        values = np.arange(self.n, dtype=float) + seed
        image = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
        return values, pd.DataFrame({"x": values, "y": values * 2}), image


@qflow.step
class Train:
    epochs: int = 3
    optimizer: str = "adam"

    def apply(self, values: np.ndarray, frame: pd.DataFrame) -> Generator[qflow.RuntimeInfo, None, object]:
        from sklearn.linear_model import LinearRegression

        for epoch in range(self.epochs):
            yield qflow.Metric(name="loss", value=1.0 / (epoch + 1), step=epoch)
        yield qflow.Metric(name="rows", value=len(frame))
        return LinearRegression().fit(frame[["x"]], frame["y"])


@qflow.step
class Summarise:
    def apply(self, model: object) -> Summary:
        return Summary(best_epoch=2)


@qflow.workflow
class Fit:
    rounds: int = 4

    def run(self, seed: int = 1) -> Generator[qflow.RuntimeInfo, None, Summary]:
        values, frame, _ = Make().apply(seed)
        model = yield from qflow.label_info(Train(epochs=self.rounds), train_loss="loss").apply(
            values, frame)
        return Summarise().apply(model)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """A run of ``Fit`` in each tracker: tracker name -> (project folder, run id)."""
    out = {}
    for tracker in ("file", "mlflow"):
        root = tmp_path_factory.mktemp(tracker)
        state = qflow.run(Fit(rounds=4), root=root, console=False, tracker=tracker)
        out[tracker] = (root, state.run_id)
    return out


def view_of(runs: dict[str, tuple[Path, str]], tracker: str) -> api.RunView:
    root, run_id = runs[tracker]
    return api.inspect_run(tracker=tracker, run_id=run_id, root=root)


def section(page: str, title: str) -> str:
    return page.split(f"<h3>{title}</h3>", 1)[1].split("</section>", 1)[0]


@pytest.mark.parametrize("tracker", ["file", "mlflow"])
def test_parameters_appear_once_and_typed(runs, tracker):
    view = view_of(runs, tracker)
    assert view.parameters == {"rounds": 4}
    assert view.settings == {"Make": {"n": 6}, "Train": {"epochs": 4, "optimizer": "adam"},
                             "Summarise": {}}
    parameters = section(static_html(view), "Parameters")
    assert parameters.count("<td><b>rounds</b></td>") == 1 and "Train.epochs" not in parameters
    assert "<td><b>rounds</b></td><td><code>4</code>" in parameters  # a number, not '4'
    assert "<td>optimizer</td><td><code>&#x27;adam&#x27;</code>" in parameters
    assert re.search(r"<th colspan='2'>Train</th></tr><tr><td>epochs</td><td><code>4</code>",
                     parameters)


def test_metrics_are_plots_with_axes_ticks_and_last_value(runs):
    view = view_of(runs, "mlflow")
    metrics = section(static_html(view), "Metrics")
    [plot] = re.findall(r"<svg class=\"qflow-plot\".*?</svg>", metrics)  # train_loss only
    assert "qflow-x-axis" in plot and "qflow-y-axis" in plot and ">step</text>" in plot
    labels = re.findall(r'class="qflow-tick-label"[^>]*>([^<]+)<', plot)
    assert {"0", "1", "2", "3"} <= set(labels) and "1" in labels and "0.4" in labels
    assert "train_loss = 0.25 (step 3)" in plot
    assert "<td><b>Train.rows</b></td><td>6</td>" in metrics  # one value: a table row
    assert "duration_s" not in metrics  # in the Graph tab's step table


def test_artifacts_are_previewed(runs):
    page = static_html(view_of(runs, "file"))
    artifacts = section(page, "Artifacts")
    assert "DataFrame: 6 rows × 2 columns" in artifacts and "<table" in artifacts
    assert "ndarray: shape (6,), dtype float64, min 1, max 6, mean 3.5" in artifacts
    assert "ndarray: shape (8, 8), dtype uint8" in artifacts
    assert "data:image/png;base64," in artifacts
    assert "LinearRegression (scikit-learn estimator, fitted)" in artifacts
    assert "fit_intercept" in artifacts
    assert "Summary (pydantic model)" in artifacts and "best_epoch" in artifacts
    assert "converged" in artifacts


def test_graph_shows_the_picture_with_states_and_the_steps(runs):
    view = view_of(runs, "mlflow")
    graph = section(static_html(view), "Graph")
    assert '<g id="qflow-node-Train" class="node qflow-node qflow-ran">' in graph
    assert "epochs=4" in graph and "[ran]" in graph
    assert "<td><b>Summarise</b></td>" in graph and "never computed" in graph
    box = inspector(view)
    tabs = box.children[1]
    assert [tabs.get_title(i) for i in range(4)] == ["Parameters", "Metrics", "Artifacts", "Graph"]
    assert 'class="node qflow-node qflow-ran"' in tabs.children[3].value
    assert "qflow-inspector" in box._dom_classes


def test_a_cached_run_shows_cached_states(runs):
    root, _ = runs["file"]
    state = qflow.run(Fit(rounds=4), root=root, console=False, tracker="file")
    view = api.inspect_run(tracker="file", run_id=state.run_id, root=root)
    assert view.statuses["Train"] == "cached"
    assert 'class="node qflow-node qflow-cached"' in section(static_html(view), "Graph")


def test_nothing_is_printed_while_inspecting_an_mlflow_run(runs, capfd, monkeypatch):
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    capfd.readouterr()
    view = view_of(runs, "mlflow")
    inspector(view)
    static_html(view)
    out = capfd.readouterr()
    assert out.out == "" and out.err == ""


def test_an_unreachable_store_is_a_message(runs):
    view = view_of(runs, "file")
    view.artifacts = LazyArtifacts({"Make": Slot("Make", "k")}, "/nowhere/store")
    artifacts = section(static_html(view), "Artifacts")
    assert "Could not load this artifact: ConfigError" in artifacts and "not reachable" in artifacts
    assert "Traceback" not in artifacts


def test_the_header_has_status_duration_and_no_empty_result(runs):
    view = view_of(runs, "file")
    page = static_html(view)
    assert f"Run {view.run_id} of Fit (file): succeeded in " in page
    assert "result: <code>Summary(best_epoch=2, note=&#x27;converged&#x27;)</code>" in page
    view.result = None
    assert "result:" not in static_html(view)


def test_previews_of_other_values():
    long = preview("x" * 5000)
    assert "… (3,002 more characters)" in long and len(long) < 2200
    stack = preview(np.zeros((3, 5, 5), dtype=np.uint8))
    assert "the first of 3 images" in stack and "data:image/png" in stack

    class Picture:
        def _repr_png_(self) -> bytes:
            return b"\x89PNG fake"

    assert "data:image/png;base64,iVBORyBmYWtl" in preview(Picture())
    assert "min nan" not in preview(np.array([np.nan, 1.0]))
    assert "[0]" in preview((1, 2)) and "[1]" in preview((1, 2))


def test_ticks_are_round_numbers():
    assert ticks(0, 3, integer=True) == [0, 1, 2, 3]
    assert ticks(0.25, 1.0) == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert ticks(5, 5) == [4.5, 5.0, 5.5]
    assert line_plot("x", []) == ""


def test_a_notebook_session_shows_its_steps_states_parameters_and_metrics():
    from qflow.trackers.base import RunData
    from tests.unit.test_api import notebook_record

    record = notebook_record()
    view = api.RunView.from_data(RunData(run_id=record["run_id"], status="", record=record),
                                 "record")
    page = static_html(view)
    assert f"Notebook session {record['run_id']} of explore (record): succeeded in 1.50 s" in page
    assert "result:" not in page
    assert "<td><b>lr</b></td><td><code>0.1</code>" in section(page, "Parameters")
    assert "fit.loss = 0.25 (step 1)" in section(page, "Metrics")
    graph = section(page, "Graph")
    assert 'class="node qflow-node qflow-cached"' in graph and "qflow-status qflow-ran" in graph
