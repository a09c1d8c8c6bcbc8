"""`qflow plan` and `qflow diff` as a user runs them, in a real project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import new_project, run_qflow

SOURCE = '''\
import qflow


def scale(values, factor):
    return [v * factor for v in values]


@qflow.step
class Load:
    n: int = 4

    def apply(self, seed: int) -> list:
        return list(range(seed, seed + self.n))


@qflow.step
class Fit:
    alpha: float = 1.0

    def apply(self, values: list):
        yield qflow.Metric(name="loss", value=1.0 / self.alpha)
        return scale(values, self.alpha)


@qflow.step
class Report:
    def apply(self, fitted: list) -> str:
        return f"sum={sum(fitted)}"


@qflow.workflow
class Train:
    alpha: float = 1.0

    def run(self, seed: int = 1):
        fitted = yield from qflow.label_info(Fit(alpha=self.alpha), loss="loss").apply(
            Load().apply(seed))
        return Report().apply(fitted)


if __name__ == "__main__":
    qflow.launch(Train)
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = new_project(tmp_path, "demo", "train", SOURCE)
    run_qflow("run", "-w", "train", cwd=root)
    return root


def newest_record(root: Path) -> dict:
    run_id = json.loads(run_qflow("ps", "-w", "train", "--json", cwd=root).stdout)[0]["run_id"]
    return json.loads((root / ".qflow/runs" / run_id / "record.json").read_text())


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


def test_plan_lists_exactly_what_the_next_run_runs_with_the_same_reasons(project):
    before = tree(project / ".qflow")
    planned = json.loads(run_qflow("plan", "-w", "train", "parameters.alpha=2", "--json",
                                   cwd=project).stdout)
    assert tree(project / ".qflow") == before  # nothing ran, nothing recorded, store only read
    assert planned["run"] == ["Fit", "Report"] and planned["counts"] == {"cached": 1, "run": 2}
    assert planned["parameters"] == {"alpha": 2.0}
    text = run_qflow("plan", "-w", "train", "parameters.alpha=2", cwd=project).stdout
    assert "cached Load" in text and "run    Fit" in text and "setting `alpha` 1.0 → 2.0" in text
    assert "2 to run, 1 cached; estimated time: about" in text

    run_qflow("run", "-w", "train", "parameters.alpha=2", cwd=project)
    record = newest_record(project)
    ran = {nid: node["reasons"] for nid, node in record["nodes"].items() if node["status"] == "ran"}
    plans = {n["id"]: n for n in planned["nodes"]}
    assert ran == {nid: plans[nid]["reasons"] for nid in planned["run"]}
    assert {nid: record["nodes"][nid]["key"] for nid in ran} == \
        {nid: plans[nid]["key"] for nid in planned["run"]}

    again = json.loads(run_qflow("plan", "-w", "train", "alpha=2", "--json", cwd=project).stdout)
    assert again["run"] == [] and again["counts"] == {"cached": 3}
    assert "Nothing to run" in run_qflow("plan", "-w", "train", "alpha=2", cwd=project).stdout


def test_python_workflow_py_plan_is_qflow_plan(project):
    script = subprocess.run([sys.executable, "workflows/train/workflow.py", "plan", "alpha=3",
                             "--json"], cwd=project, capture_output=True, text=True,
                            env={**os.environ})
    assert script.returncode == 0, script.stderr
    assert json.loads(script.stdout) == json.loads(
        run_qflow("plan", "-w", "train", "alpha=3", "--json", cwd=project).stdout)


def test_plan_mistakes_are_clear_errors(project):
    bad = run_qflow("plan", "-w", "nope", cwd=project, code=2)
    assert "has no workflow 'nope'" in bad.stderr
    bad = run_qflow("plan", "-w", "train", "parameters.beta=1", cwd=project, code=2)
    assert "beta" in bad.stderr


def sections_of(text: str) -> dict[str, dict[str, str]]:
    """The rows of `qflow diff`'s table by section and name."""
    out: dict[str, dict[str, str]] = {}
    section = ""
    for line in text.splitlines()[1:]:
        if line.startswith("  "):
            out[section][line.split()[0]] = line
        else:
            section = line.strip()
            out[section] = {}
    return out


def test_diff_shows_what_differs_between_two_runs(project):
    first = newest_record(project)["run_id"]
    workflow = project / "workflows/train/workflow.py"
    workflow.write_text(workflow.read_text().replace("v * factor", "factor * v + 0"))
    run_qflow("run", "-w", "train", "alpha=2", cwd=project)
    second = newest_record(project)["run_id"]

    text = run_qflow("diff", first, second, cwd=project).stdout
    assert f"A {first}" in text and f"B {second}" in text
    shown = sections_of(text)
    assert shown["parameters"]["alpha"].split()[1:3] == ["1.0", "2.0"]
    assert shown["settings"]["Fit.alpha"].split()[1:3] == ["1.0", "2.0"]
    assert "code of `scale` changed" in shown["code"]["Fit"]
    assert set(shown["artifacts"]) == {"Fit", "Report"}  # Load's key, so its artifact, is the same
    data = json.loads(run_qflow("diff", first, second, "--json", cwd=project).stdout)
    sections = data["sections"]
    assert [r["name"] for r in sections["code"]] == ["Fit"]
    assert [r["name"] for r in sections["artifacts"]] == ["Fit", "Report"]
    assert sections["metrics"] == [{"name": "loss", "a": 1.0, "b": 0.5, "same": False}]
    assert sections["libraries"] == []
    every = json.loads(run_qflow("diff", first, second, "--json", "--all", cwd=project).stdout)
    assert [r["name"] for r in every["sections"]["artifacts"]] == ["Load", "Fit", "Report"]
    assert any(r["name"] == "pydantic" and r["same"] for r in every["sections"]["libraries"])

    unknown = run_qflow("diff", first, "20200101-000000-000-000000", cwd=project, code=2)
    assert "No run '20200101-000000-000-000000' in" in unknown.stderr
    assert str(project / ".qflow" / "runs") in unknown.stderr
