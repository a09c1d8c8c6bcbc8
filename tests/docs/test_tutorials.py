"""The tutorials run top to bottom, and what they teach is what happened.

Each notebook of ``notebooks/tutorials/`` is executed as the docs build executes it
(``docs_hooks/tutorials.py``: a fresh ``python3`` kernel in an empty folder, a failing ``!``
command fails its cell), once per test session; the tests then read the outputs and the run
records, studies and stores the tutorial left in its folder.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from docs_hooks.tutorials import SOURCE, execute_notebook, static_widgets

TUTORIALS = ["notebook-to-pipeline", "export-and-run", "tune", "scale-out"]
_EXECUTED: dict[str, tuple[Any, Path]] = {}


def executed(name: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The tutorial ``name`` executed (once per session) and the folder it ran in."""
    if name not in _EXECUTED:
        folder = tmp_path_factory.mktemp(name)
        _EXECUTED[name] = (execute_notebook(SOURCE / f"{name}.ipynb", folder), folder)
    return _EXECUTED[name]


def text(cell: Any) -> str:
    """A code cell's printed and displayed text."""
    parts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            parts.append(output["text"].replace("\r\n", "\n"))  # `!` commands run in a pty
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "\n".join(parts)


def step_runs(nb: Any) -> list[tuple[str, str]]:
    """``(step name, output text)`` of each ``%%qflow_step`` cell, in notebook order."""
    return [(cell.source.split()[1], text(cell)) for cell in nb.cells
            if cell.cell_type == "code" and cell.source.startswith("%%qflow_step ")]


def records(folder: Path, workflow: str) -> list[dict[str, Any]]:
    """The workflow's run records, oldest first."""
    from qflow.runtime.record import list_records

    return list(reversed(list_records(folder / "demo" / ".qflow" / "runs", workflow)))


def counts(record: dict[str, Any]) -> tuple[int, int]:
    found = record.get("counts") or {}
    return found.get("ran", 0), found.get("cached", 0)


def test_every_tutorial_is_tested() -> None:
    assert sorted(p.stem for p in SOURCE.glob("*.ipynb")) == sorted(TUTORIALS)


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_shows_a_graph_picture(name: str, tmp_path_factory) -> None:
    """Every page has a picture of a graph once widgets are made static, as the site has."""
    nb, _ = executed(name, tmp_path_factory)
    static = copy.deepcopy(nb)
    static_widgets(static)
    pictures = [o["data"] for c in static.cells for o in c.get("outputs", [])
                if "image/svg+xml" in o.get("data", {})
                or "<svg" in o.get("data", {}).get("text/html", "")]
    assert pictures, f"{name}: no SVG picture in any output"
    assert all("application/vnd.jupyter.widget-view+json" not in o.get("data", {})
               for c in static.cells for o in c.get("outputs", []))


def test_notebook_to_pipeline_caches_survive_a_restart_and_a_parameter_reruns_dependents(
        tmp_path_factory) -> None:
    nb, folder = executed("notebook-to-pipeline", tmp_path_factory)
    runs = step_runs(nb)
    assert [name for name, _ in runs] == (["load", "fit", "evaluate", "load"]
                                          + ["load", "fit", "evaluate"] * 2)
    loaded = ["loaded from cache" in out for _, out in runs]
    # first run computes; re-running load loads it; after %reset -f everything loads (the
    # evaluate cell's status line then turns "out of date" when epochs=200 changes fit);
    # epochs=200 re-runs fit and evaluate, not load
    assert loaded == [False, False, False, True, True, True, False, True, False, False]
    assert "out of date" in runs[6][1]
    assert "fitted for 50 epochs" in runs[1][1]
    assert runs[5][1].index("replayed below") < runs[5][1].index("fitted for 50 epochs")
    assert "fitted for 200 epochs" in runs[8][1]
    assert "running it took 1." in runs[3][1]  # the one-second load, not run again

    reset = next(c for c in nb.cells if c.source.startswith("%reset -f"))
    assert text(reset).strip() == "False"  # x really was gone before the steps loaded it

    status = next(c for c in nb.cells if c.source.strip() == "%qflow status")
    states = dict(line.split()[:2] for line in text(status).splitlines() if line.strip())
    assert states == {"load": "cached", "fit": "ran", "evaluate": "ran"}

    # the cache is the temporary folder's; the session is recorded as a run
    assert (folder / ".qflow" / "store").is_dir()
    from qflow.runtime.record import list_records

    (record,) = list_records(folder / ".qflow" / "runs")
    assert {n: s["status"] for n, s in record["nodes"].items()} == states
    upstream = {n["id"]: n["upstream"] for n in record["graph"]["nodes"]}
    assert upstream["fit"] == ["load"] and upstream["evaluate"] == ["fit", "load"]


def test_export_and_run_shares_the_cache_between_workflow_and_notebook_runs(
        tmp_path_factory) -> None:
    nb, folder = executed("export-and-run", tmp_path_factory)
    project = folder / "demo"
    assert (project / "workflows" / "explore" / "workflow.ipynb").is_file()
    assert "epochs: 50" in (project / "workflows" / "explore" / "config.yaml").read_text()
    runs = records(folder, "explore")
    # run, run again, parameters.epochs=200, --notebook with -p epochs=200
    assert [counts(r) for r in runs] == [(2, 0), (0, 2), (1, 1), (0, 2)]
    assert [r["parameters"]["epochs"] for r in runs] == [50, 50, 200, 200]
    assert all(r["status"] == "succeeded" for r in runs)
    assert runs[2]["result"] == runs[3]["result"] != runs[0]["result"]
    for record in runs:  # each run keeps its executed notebook
        assert (project / ".qflow" / "runs" / record["run_id"] / "notebook.ipynb").is_file()
    assert re.search(r"cached load\s+cached fit", "".join(
        text(c) for c in nb.cells if "--notebook" in c.source))
    svg = (project / "explore.svg").read_text()
    assert "<svg" in svg and "load" in svg and "fit" in svg


def test_tune_runs_eight_trials_that_share_the_preparation(tmp_path_factory) -> None:
    import optuna

    nb, folder = executed("tune", tmp_path_factory)
    project = folder / "demo"
    study = optuna.load_study(study_name="demo/train",
                              storage=f"sqlite:///{project}/.qflow/tuner/optuna/optuna.db")
    states = [t.state for t in study.trials]
    assert len(states) == 8
    assert set(states) <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert optuna.trial.TrialState.COMPLETE in states

    runs = records(folder, "train")
    trials, rerun = runs[:-1], runs[-1]
    assert len(trials) == 8
    prepared = [r["nodes"]["Prepare"]["status"] for r in trials]
    assert prepared == ["ran"] + ["cached"] * 7  # computed once for the whole study
    # the best trial's run is the one the tutorial reads and draws
    best = study.best_trial
    shown = "".join(text(c) for c in nb.cells if "study.best_trial" in c.source)
    assert best.user_attrs["qflow_run_id"] in shown
    assert f"validation loss {best.value:.5f}" in shown
    # running the best parameters again computes nothing
    assert counts(rerun) == (0, 2)
    assert rerun["parameters"]["epochs"] == best.params["epochs"]
    assert (project / "best.svg").read_text().count("<svg") == 1


def test_scale_out_runs_on_dask_then_all_cached(tmp_path_factory) -> None:
    nb, folder = executed("scale-out", tmp_path_factory)
    project = folder / "demo"
    assert re.search(r"^\s*- launcher: dask\s*$", (project / "configs" / "project.yaml")
                     .read_text(), re.M)
    runs = records(folder, "fan")
    assert [counts(r) for r in runs] == [(5, 0), (0, 5), (5, 0)]
    assert all(r["status"] == "succeeded" for r in runs)
    assert len({r["result"] for r in runs}) == 1
    # the third run used the store at the file:// URL
    shared = project / "shared-store"
    assert runs[2]["store"] in (shared.as_uri(), str(shared))
    assert shared.is_dir() and any(shared.iterdir())
    svg = (project / "fan.svg").read_text()
    assert svg.count("Simulate") >= 4 and "Average" in svg
