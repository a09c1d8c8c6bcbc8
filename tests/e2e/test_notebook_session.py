"""Notebook sessions on the run pipeline, in real kernels (nbclient) inside a real project:
tracked in MLflow, replayed outputs, readable errors, files read, in-place changes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import run_qflow

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project made by ``qflow init`` (MLflow, embedded, is its tracker)."""
    base = tmp_path_factory.mktemp("session")
    run_qflow("init", "-p", "lab", cwd=base)
    return base / "lab"


def notebook(*cells: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in ("%load_ext qflow", *cells)]
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path, *, errors: bool = False) -> nbformat.NotebookNode:
    """Run ``nb`` in a fresh kernel whose working folder is ``cwd``."""
    NotebookClient(nb, kernel_name="python3", timeout=120, allow_errors=errors,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for o in cell.outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type == "error":
            parts.append(ANSI.sub("", "\n".join(o.traceback)))
        else:
            parts.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def records(root: Path) -> list[dict]:
    runs = root / ".qflow" / "runs"
    return [json.loads((d / "record.json").read_text()) for d in sorted(runs.iterdir())
            if (d / "record.json").exists()]


def test_a_session_is_a_tracked_run_with_the_metrics_its_cells_report(project):
    folder = project / "notebooks"
    nb = execute(notebook(
        "alpha = 0.5",
        "%%qflow_step train\nimport time, qflow\nfor epoch in range(3):\n"
        "    qflow.report(qflow.Metric(name='loss', value=alpha / (epoch + 1), step=epoch))\n"
        "time.sleep(0.2)\nweights = [alpha] * 3",
        "%%qflow_step score\nscore = sum(weights)\nscore",
    ), folder)
    assert "train: ran in" in text(nb.cells[2])
    session = [r for r in records(project) if r.get("kind") == "notebook"][-1]
    assert session["status"] == "succeeded" and session["counts"] == {"ran": 2}
    assert session["nodes"]["train"]["metrics"][-1] == {"name": "loss", "value": 0.5 / 3, "step": 2}
    # its duration is the time its steps took (not the kernel's life)
    took = session["nodes"]["train"]["duration"] + session["nodes"]["score"]["duration"]
    assert session["duration"] == pytest.approx(took) and 0.2 < took < 2
    assert [n["upstream"] for n in session["graph"]["nodes"]] == [[], ["train"]]
    events = (project / ".qflow/runs" / session["run_id"] / "events.jsonl").read_text()
    assert "run_finished" in [json.loads(line)["event"] for line in events.splitlines()]

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{project / '.qflow/tracker/mlflow/mlflow.db'}")
    [run] = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`qflow.run_id` = '{session['run_id']}'")
    assert run.info.status == "FINISHED"
    history = client.get_metric_history(run.info.run_id, "train.loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.25), (2, 0.5 / 3)]
    assert run.data.params["train.alpha"] == "0.5"
    assert run.data.tags["qflow.step.score.status"] == "ran"


def test_a_cache_hit_replays_what_the_cell_printed_and_displayed(tmp_path):
    cells = ("%%qflow_step show\nfrom IPython.display import HTML, display\nprint('hello from the step')\n"
             "import sys; print('a warning', file=sys.stderr)\n"
             "display(HTML('<b>bold result</b>'))\nvalue = 41\nvalue + 1",)
    first = execute(notebook(*cells), tmp_path)
    second = execute(notebook(*cells), tmp_path)
    ran, loaded = first.cells[1], second.cells[1]
    assert "show: ran in" in text(ran) and "hello from the step" in text(ran)
    assert "loaded from cache" in text(loaded) and "replayed below" in text(loaded)
    streams = {o.name: o.text for o in loaded.outputs if o.output_type == "stream"}
    assert streams == {"stdout": "hello from the step\n", "stderr": "a warning\n"}
    [shown] = [o for o in loaded.outputs if "text/html" in o.get("data", {})
               and "bold" in o["data"]["text/html"]]
    assert shown.metadata["qflow"] == {"replayed": True}
    assert [o.data["text/plain"] for o in loaded.outputs if o.output_type == "execute_result"] == ["42"]


def test_a_failing_cell_shows_only_its_own_frames_numbered_as_run(tmp_path):
    nb = execute(notebook(
        "def helper(x):\n    return x / 0",
        "%%qflow_step broken\ny = 1\nz = helper(y)",
    ), tmp_path, errors=True)
    [error] = [o for o in nb.cells[2].outputs if o.output_type == "error"]
    shown = ANSI.sub("", "\n".join(error.traceback))
    assert error.ename == "ZeroDivisionError"
    assert "run_cell_magic" not in shown and "y = 1\\n" not in shown  # no cell source as a string
    assert "qflow/" not in shown and "jupyter_ext" not in shown
    count = nb.cells[2].execution_count
    assert f"Cell In[{count}], line 3" in shown and "z = helper(y)" in shown
    assert "return x / 0" in shown  # the user's helper, in the cell that defined it


def test_a_missing_input_names_the_step_cell_that_defines_it(tmp_path):
    path = tmp_path / "order.ipynb"
    nbformat.write(notebook("%%qflow_step use\ntotal = sum(labels)",
                            "%%qflow_step make\nlabels = [3]"), path)
    done = run_qflow("run", "--notebook", str(path), cwd=tmp_path, code=1)
    assert "NameError" in done.stderr
    assert "`labels` is an output of step 'make' (cell 3 of order.ipynb), which has not run in " \
           "this kernel: run it first." in done.stderr
    nb = execute(notebook("%%qflow_step use\ntotal = sum(missing)"), tmp_path, errors=True)
    [error] = [o for o in nb.cells[1].outputs if o.output_type == "error"]
    assert "No step cell run in this session defines `missing`" in error.evalue


def test_a_second_cell_with_a_steps_name_is_refused_headless(tmp_path):
    path = tmp_path / "twice.ipynb"
    nbformat.write(notebook("%%qflow_step load\na = 1", "%%qflow_step load\nb = 2"), path)
    done = run_qflow("run", "--notebook", str(path), cwd=tmp_path, code=1)
    assert "Step 'load' is already the name of another cell (In [2])" in done.stderr
    assert "%%qflow_step NEW_NAME" in done.stderr


def test_imports_and_loop_variables_are_not_outputs(tmp_path):
    nb = execute(notebook(
        "%%qflow_step prepare\nimport json\nfrom math import sqrt\nrows = []\n"
        "for i in range(3):\n    rows.append(sqrt(i))",
        "%%qflow_step use\ntext = json.dumps(rows)",
        "%qflow status",
    ), tmp_path)
    status = text(nb.cells[3])
    prepare = next(line for line in status.splitlines() if line.startswith("prepare"))
    assert prepare.split()[-1] == "rows"  # not json, sqrt or i
    use = next(line for line in status.splitlines() if line.startswith("use"))
    assert use.split()[-1] == "text"
    again = execute(notebook(
        "%%qflow_step prepare\nimport json\nfrom math import sqrt\nrows = []\n"
        "for i in range(3):\n    rows.append(sqrt(i))",
        "json.dumps([sqrt(4)])"), tmp_path)
    assert "loaded from cache" in text(again.cells[1]) and "2.0" in text(again.cells[2])


def test_editing_a_file_a_cell_reads_runs_it_again(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "companies.csv").write_text("id,size\n1,10\n2,20\n")
    cells = ("data_dir = 'data'",
             "%%qflow_step load\nrows = open(f'{data_dir}/companies.csv').read().splitlines()[1:]\n"
             "total = sum(int(r.split(',')[1]) for r in rows)\ntotal",
             "%%qflow_step literal\nsize = len(open('data/companies.csv').read())")
    first = execute(notebook(*cells), tmp_path)
    assert "ran in" in text(first.cells[2]) and "30" in text(first.cells[2])
    assert "loaded from cache" in text(execute(notebook(*cells), tmp_path).cells[2])
    (data / "companies.csv").write_text("id,size\n1,10\n2,20\n3,4000\n")
    edited = execute(notebook(*cells), tmp_path)
    assert "ran in" in text(edited.cells[2]) and "4030" in text(edited.cells[2])
    assert "ran in" in text(edited.cells[3])


def test_rerun_stale_marks_the_stale_cells_own_output(tmp_path):
    nb = execute(notebook(
        "%%qflow_step base\nx = 1",
        "%%qflow_step twice\ny = x * 2\nprint('y is', y)",
        "%%qflow_step base\nx = 5",
        "%qflow rerun-stale",
    ), tmp_path)
    twice = nb.cells[2]
    banner = [o for o in twice.outputs if "qflow-banner" in o.get("data", {}).get("text/html", "")]
    assert banner and "re-run by %qflow rerun-stale" in banner[-1]["data"]["text/plain"]
    assert "y is 10" in text(nb.cells[4]) and "re-ran twice" in text(nb.cells[4])


def test_an_empty_step_line_prints_the_usage(tmp_path):
    nb = execute(notebook("%%qflow_step\nx = 1"), tmp_path)
    assert text(nb.cells[1]).startswith("Usage: %%qflow_step NAME")


def test_load_puts_a_past_sessions_variables_in_a_new_kernel(tmp_path):
    execute(notebook("%%qflow_step make\nimport numpy as np\nx = np.arange(1_000_000.0)",
                     "%%qflow_step double\ny = x * 2\nlabel = 'twice'"), tmp_path)
    [session] = [r for r in records(tmp_path) if r.get("kind") == "notebook"]
    nb = execute(notebook(
        f"%qflow load {session['run_id']}",
        "import numpy as np\n(type(x).__name__, float(y[-1]), label)",
        f"%qflow load {session['run_id']} make",
        "%%qflow_step double\ny = x * 2\nlabel = 'twice'",
    ), tmp_path)
    assert "loaded x, label, y from run" in text(nb.cells[1])
    assert text(nb.cells[2]) == "('memmap', 1999998.0, 'twice')"  # arrays stay memory-mapped
    assert "loaded x from run" in text(nb.cells[3])
    assert "double: loaded from cache" in text(nb.cells[4])  # keyed on the loaded step


def test_resume_continues_a_failed_session_where_it_stopped(tmp_path):
    cells = ["%%qflow_step make\nimport time\ntime.sleep(1)\nx = [1, 2, 3]",
             "%%qflow_step fit\nscale = 10\nmodel = [v * scale for v in x]\nmodel[5]",
             "%%qflow_step evaluate\nscore = sum(model)\nscore"]
    with pytest.raises(Exception, match="IndexError"):
        execute(notebook(*cells), tmp_path)
    [failed] = [r for r in records(tmp_path) if r.get("kind") == "notebook"]
    assert failed["status"] == "failed" and failed["failed_step"] == "fit"
    fixed = cells[1].replace("model[5]", "model[-1]")
    nb = execute(notebook(f"%qflow resume {failed['run_id']}", "%qflow status", fixed,
                          cells[2]), tmp_path)
    assert "did not finish in that run, now stale: fit" in text(nb.cells[1])
    status = {line.split()[0]: line.split()[1] for line in text(nb.cells[2]).splitlines()}
    assert status == {"make": "cached", "fit": "stale"}
    assert "fit: ran in" in text(nb.cells[3]) and "30" in text(nb.cells[3])
    assert "evaluate: ran in" in text(nb.cells[4]) and "60" in text(nb.cells[4])
