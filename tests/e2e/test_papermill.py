"""Notebooks as workflows: `qflow export`, and headless runs with the papermill launcher."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import QFLOW, REPO, run_qflow


def qflow(*args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess:
    return run_qflow(*args, cwd=cwd, code=code)


def statuses(proc: subprocess.CompletedProcess) -> dict[str, str]:
    out = {}
    for line in proc.stderr.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("ran", "cached", "failed"):
            out[words[1]] = words[0]
    return out


def run_id(proc: subprocess.CompletedProcess) -> str:
    return proc.stdout.split("run_id: ")[1].split()[0]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("papermill")
    qflow("init", "-p", "lab", cwd=base)
    root = base / "lab"
    qflow("configure", "-c", "tracker=file", cwd=root)
    qflow("export", str(REPO / "notebooks/digits.ipynb"), "-w", "digits", cwd=root)
    qflow("export", str(REPO / "notebooks/digits.ipynb"), "-w", "digits_py", "--to", "py", cwd=root)
    return root


def test_export_writes_a_clean_notebook_and_its_parameters(project):
    folder = project / "workflows/digits"
    nb = nbformat.read(folder / "workflow.ipynb", as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
    config = (folder / "config.yaml").read_text()
    assert "alpha: 0.0001" in config and "epochs: 15" in config and "test_size: 0.25" in config
    assert not (folder / "workflow.py").exists()
    assert (project / "workflows/digits_py/workflow.py").exists()


def test_headless_runs_share_the_cache_and_keep_the_executed_notebook(project):
    first = qflow("run", "-w", "digits", cwd=project)
    assert statuses(first) == dict.fromkeys(["load", "split", "scale", "fit", "evaluate"], "ran")
    accuracy = float(first.stdout.split("result: ")[1])
    assert 0.9 < accuracy <= 1.0
    again = qflow("run", "-w", "digits", cwd=project)
    assert set(statuses(again).values()) == {"cached"}
    changed = qflow("run", "-w", "digits", "parameters.epochs=5", cwd=project)
    assert statuses(changed) == {"load": "cached", "split": "cached", "scale": "cached",
                                 "fit": "ran", "evaluate": "ran"}
    rid = run_id(changed)
    executed = nbformat.read(project / ".qflow/runs" / rid / "notebook.ipynb", as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert injected and "epochs = 5" in injected[0].source
    fit = next(c for c in executed.cells if c.source.startswith("%%qflow_step fit"))
    assert "trained for 5 epochs" in "".join(o.get("text", "") for o in fit.outputs)
    record = json.loads((project / ".qflow/runs" / rid / "record.json").read_text())
    assert record["status"] == "succeeded" and record["parameters"]["epochs"] == 5
    assert (project / ".qflow/tracker/file" / rid / "notebook.ipynb").exists()  # tracker artifact
    runs = json.loads(qflow("ps", "-w", "digits", "--json", cwd=project).stdout)
    assert [r["run_id"] for r in runs][0] == rid
    qflow("visualise", "-w", "digits", "--run-id", rid, "-f", "dot", "-o", "g.dot", cwd=project)
    assert 'qflow-ran"' in (project / "g.dot").read_text()


def test_interactive_and_headless_runs_share_steps(project):
    folder = project / "workflows/digits"
    nb = nbformat.read(folder / "workflow.ipynb", as_version=4)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params.source = params.source.replace("epochs = 15", "epochs = 7")
    NotebookClient(nb, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": str(folder)}}).execute()  # "interactively"
    headless = qflow("run", "-w", "digits", "parameters.epochs=7", cwd=project)
    assert set(statuses(headless).values()) == {"cached"}


def test_the_python_export_computes_the_same_result(project):
    notebook = qflow("run", "-w", "digits", cwd=project)
    python = qflow("run", "-w", "digits_py", cwd=project)
    assert python.stdout.split("result: ")[1] == notebook.stdout.split("result: ")[1]


def test_a_failing_cell_names_its_step_and_keeps_what_finished(project, tmp_path):
    nb = nbformat.read(REPO / "notebooks/digits.ipynb", as_version=4)
    index, fit = next((i, c) for i, c in enumerate(nb.cells)
                      if c.source.startswith("%%qflow_step fit"))
    fit.source += "\n1 / 0"
    path = tmp_path / "broken.ipynb"
    nbformat.write(nb, path)
    proc = qflow("run", "--notebook", str(path), cwd=project, code=1)
    # the cell as the user counts it (papermill's index counts its injected cell), the line
    where = f"step 'fit' (cell {index + 1} of {len(nb.cells)}, line {len(fit.source.splitlines())})"
    assert f"{where}: ZeroDivisionError: division by zero" in proc.stderr
    executed = proc.stderr.split("executed notebook: ")[1].split()[0]
    assert Path(executed).exists()
    rerun = qflow("run", "--notebook", str(path), cwd=project, code=1)
    assert statuses(rerun)["scale"] == "cached"


def test_plain_notebooks_run_as_one_node(project, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("x = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("y = x * 10\nprint(y)")]
    nbformat.write(nb, tmp_path / "plain.ipynb")
    proc = qflow("run", "--notebook", str(tmp_path / "plain.ipynb"), "-p", "x=3", cwd=tmp_path)
    assert statuses(proc) == {"notebook": "ran"}
    executed = nbformat.read(tmp_path / ".qflow/runs" / run_id(proc) / "notebook.ipynb",
                             as_version=4)
    assert "30" in executed.cells[-1].outputs[0]["text"]


@pytest.mark.parametrize(("case", "message"), [
    ("invalid", "is not a valid notebook"),
    ("parameter", "has no parameter 'alpah'"),
    ("kernel", "No Jupyter kernel named 'no-such-kernel'"),
])
def test_notebook_mistakes_are_clear_errors(project, tmp_path, case, message):
    path = tmp_path / "nb.ipynb"
    if case == "invalid":
        path.write_text('{"cells": [ this is not json')
    else:
        nb = nbformat.read(REPO / "notebooks/digits.ipynb", as_version=4)
        if case == "kernel":
            nb.metadata["kernelspec"]["name"] = "no-such-kernel"
        nbformat.write(nb, path)
    args = ["-p", "alpah=1"] if case == "parameter" else []
    proc = qflow("run", "--notebook", str(path), *args, cwd=project, code=2)
    assert message in proc.stderr and "Traceback" not in proc.stderr
    bad = qflow("run", "-w", "digits", "parameters.alpah=1", cwd=project, code=2)
    assert "unknown key 'parameters.alpah'" in bad.stderr


def test_interrupt_stops_the_kernel_and_marks_the_run_killed(project, tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import time\nfor _ in range(300):\n    time.sleep(0.1)")]
    nbformat.write(nb, tmp_path / "slow.ipynb")
    proc = subprocess.Popen([QFLOW, "run", "--notebook", "slow.ipynb"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    [record] = [json.loads(p.read_text()) for p in (tmp_path / ".qflow/runs").glob("*/record.json")]
    assert record["status"] == "killed"


def test_new_notebook_workflow_runs(project):
    qflow("new", "-w", "nbnew", "--notebook", cwd=project)
    proc = qflow("run", "-w", "nbnew", "parameters.factor=3", cwd=project)
    assert "result: [3.0, 6.0, 9.0]" in proc.stdout
    shutil.rmtree(project / "workflows/nbnew")
