"""The demo workflow (scikit-learn digits) run as a user runs it: `python workflow.py`."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO, run_python
from tests.storefiles import overwrite, record

STEPS = ["table", "Split", "Scale", "Fit", "Evaluate"]


def latest_record(folder: Path) -> dict:
    runs = sorted((folder / ".qflow/runs").iterdir())
    return json.loads((runs[-1] / "record.json").read_text())


def statuses(record: dict) -> dict[str, str]:
    return {n: record["nodes"][n]["status"] for n in STEPS}


def ran(record: dict) -> set[str]:
    return {n for n, s in statuses(record).items() if s == "ran"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    shutil.copy(REPO / "examples/digits/workflow.py", tmp_path / "workflow.py")
    return tmp_path


def run(project: Path, *args: str) -> dict:
    proc = run_python(["workflow.py", *args], project)
    assert proc.returncode == 0, proc.stderr
    record = latest_record(project)
    record["stderr"] = proc.stderr
    return record


def edit(project: Path, old: str, new: str) -> None:
    path = project / "workflow.py"
    source = path.read_text()
    assert old in source
    path.write_text(source.replace(old, new))


def test_digits_runs_caches_and_reruns_exactly_what_changed(project):
    first = run(project)
    assert first["status"] == "succeeded" and ran(first) == set(STEPS)
    assert 0.9 < first["result"] <= 1.0
    assert first["metrics"]["accuracy"] == first["result"] and "train_loss" in first["metrics"]
    assert "never computed" in first["stderr"] and "succeeded" in first["stderr"]

    second = run(project)
    assert ran(second) == set() and second["result"] == first["result"]
    assert second["metrics"] == first["metrics"]

    edit(project, 'loss="log_loss", alpha=self.alpha', 'loss="log_loss", alpha=self.alpha * 1')
    third = run(project)
    assert ran(third) == {"Fit", "Evaluate"}
    assert third["nodes"]["Fit"]["reasons"] == ["code of `Fit` changed"]
    assert third["nodes"]["Evaluate"]["reasons"] == ["upstream `Fit` changed"]
    assert "code of `Fit` changed" in third["stderr"]

    edit(project, 'return table.drop(columns="target")', 'return table.drop(columns=["target"])')
    fourth = run(project)  # a helper only Scale calls
    assert ran(fourth) == {"Scale", "Fit", "Evaluate"}
    assert fourth["nodes"]["Scale"]["reasons"] == ["code of `features` changed"]

    fifth = run(project, "epochs=5")
    assert ran(fifth) == {"Fit", "Evaluate"}
    assert fifth["nodes"]["Fit"]["reasons"] == ["setting `epochs` 20 → 5"]
    assert fifth["parameters"]["epochs"] == 5

    sixth = run(project, "parameters.test_size=0.3")  # the Hydra spelling works too
    assert ran(sixth) == {"Split", "Scale", "Fit", "Evaluate"}
    assert sixth["nodes"]["Split"]["reasons"] == ["setting `test_size` 0.25 → 0.3"]


def test_bad_parameters_are_clear_errors(project):
    proc = run_python(["workflow.py", "alpah=1"], project)
    assert proc.returncode == 2
    assert "no parameter 'alpah'" in proc.stderr and "alpha, epochs, test_size" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_python(["workflow.py", "epochs=many"], project)
    assert proc.returncode == 2
    assert "Digits: field 'epochs'" in proc.stderr and "many" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (project / ".qflow/runs").exists()


def test_truncated_artifacts_are_detected_and_recomputed(project):
    first = run(project)
    store = project / ".qflow/store/objects"
    evaluate = first["nodes"]["Evaluate"]["key"]
    data = record(store.parent, evaluate)  # a float: packed
    overwrite(store.parent, evaluate, data[:-3] + bytes(b ^ 1 for b in data[-3:]))
    second = run(project)
    assert ran(second) == {"Evaluate"} and second["result"] == first["result"]
    assert "corrupt" in second["nodes"]["Evaluate"]["reasons"][0]

    scale = first["nodes"]["Scale"]["key"]
    array = store / scale[:2] / scale / "out0" / "array.npy"  # two arrays: a folder
    os.truncate(array, array.stat().st_size // 2)
    third = run(project)  # nothing needs Scale's arrays, so nothing reads them
    assert ran(third) == set()
    fourth = run(project, "epochs=5")  # Fit must run: it loads them, finds the damage
    assert ran(fourth) == {"Scale", "Fit", "Evaluate"}
    assert "corrupt" in fourth["nodes"]["Scale"]["reasons"][0]
    assert len(list((project / ".qflow/store/quarantine").iterdir())) == 2
