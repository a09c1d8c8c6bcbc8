"""Live views of runs in real kernels (nbclient): ``qflow.run(...)`` in a notebook shows the
graph widget and bars, ends as a static picture of the final states, prints its summary as
ordinary output, and the notebook keeps the picture (nbconvert's HTML shows it)."""

from __future__ import annotations

import re
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import QFLOW, REPO, new_project

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WORKFLOW = '''\
import time

import qflow


@qflow.step
class Load:
    def apply(self, n: int, pause: float) -> list:
        bar = qflow.ProgressBar("items", total=n)
        for _ in range(n):
            time.sleep(pause)
            bar.update(1)
        return list(range(n))


@qflow.step
class Total:
    def apply(self, xs: list) -> int:
        return sum(xs)


@qflow.workflow
class Example:
    def run(self, n: int = 5, pause: float = 0.0) -> int:  # inputs: qflow.run(..., inputs=)
        return Total().apply(Load().apply(n, pause))
'''


class Recording(NotebookClient):
    """An nbclient that keeps the kernel's messages of each cell (display updates included)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.messages: list[tuple[int, dict[str, Any]]] = []

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        self.messages.append((cell_index, msg))
        return super().process_message(msg, cell, cell_index)

    def of(self, index: int, kind: str) -> list[dict[str, Any]]:
        return [m["content"] for i, m in self.messages if i == index and m["msg_type"] == kind]


def execute(folder: Path, *sources: str, errors: bool = False) -> tuple[Any, Recording]:
    """Run a notebook of ``sources`` in a fresh kernel in ``folder``; return it and the client."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    client = Recording(nb, kernel_name="python3", timeout=60, allow_errors=errors,
                       resources={"metadata": {"path": str(folder)}})
    client.execute()
    return nb, client


def node_classes(html: str) -> dict[str, str]:
    """``{node id: its qflow status class}`` of the graph's SVG nodes in ``html``."""
    found = {}
    for tag in re.findall(r"<g\s[^>]*>", html):  # nbconvert may reorder the attributes
        node = re.search(r'\bid="qflow-node-([^"]+)"', tag)
        status = re.search(r'\bclass="node qflow-node qflow-(\w+)"', tag)
        if node and status:
            found[node.group(1)] = status.group(1)
    return found


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "example.py").write_text(WORKFLOW)
    return tmp_path


def test_a_run_shows_a_live_view_that_ends_as_a_picture_of_its_final_states(folder: Path) -> None:
    nb, client = execute(folder, "%load_ext qflow",
                         "import qflow\nfrom example import Example\nqflow.run(Example())",
                         "qflow.run(Example())")
    for index, expected in ((1, "ran"), (2, "cached")):
        # shown live: the widget and, in the same display data, its picture (all pending)
        shown = client.of(index, "display_data")
        assert len(shown) == 1 and WIDGET_VIEW in shown[0]["data"], shown
        assert node_classes(shown[0]["data"]["text/html"]) == {
            "n": "pending", "pause": "pending", "Load": "pending", "Total": "pending"}
        # at the end the output is replaced by the picture of the final states alone
        outputs = nb.cells[index].outputs
        pictures = [o for o in outputs if o.output_type == "display_data"]
        assert len(pictures) == 1, outputs
        data = pictures[0].data
        assert WIDGET_VIEW not in data
        assert node_classes(data["text/html"]) == {"n": "input", "pause": "input",
                                                  "Load": expected, "Total": expected}
        assert "succeeded" in data["text/plain"] and "RunState(" not in data["text/plain"]
        # the summary is ordinary output; nothing went to stderr (a red box in Jupyter)
        stdout = "".join(o.text for o in outputs if o.output_type == "stream"
                         and o.name == "stdout")
        assert "succeeded in" in stdout and "result: 10" in stdout, stdout
        assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"]
        result = [o for o in outputs if o.output_type == "execute_result"]
        assert result and result[0].data["text/plain"].startswith("<RunState ")

    # the bars of the first run: the picture ends at 5/5
    picture = next(o for o in nb.cells[1].outputs if o.output_type == "display_data")
    assert "<progress value='5' max='5'>" in picture.data["text/html"]
    assert "Load: items" in picture.data["text/html"]

    # every output that holds a widget view also holds a picture of it
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if WIDGET_VIEW in output.get("data", {}):
                assert {"text/html", "image/svg+xml"} & set(output["data"]), output

    # nbconvert's HTML of the executed notebook shows the final graph
    from nbconvert import HTMLExporter

    page, _ = HTMLExporter().from_notebook_node(nb)
    assert node_classes(page) == {"n": "input", "pause": "input", "Load": "cached",
                                  "Total": "cached"}
    assert "Error displaying widget" not in page and "VBox(" not in page


def test_progress_of_a_long_loop_is_throttled_and_ends_at_its_last_value(folder: Path) -> None:
    """10,000 updates over about a second reach the browser as a few dozen, the last one
    included."""
    nb, client = execute(folder, "%load_ext qflow",
                         "import qflow\nfrom example import Example\n"
                         "qflow.run(Example(), inputs={'n': 10_000, 'pause': 0.0001})")
    updates = [m for m in client.of(1, "comm_msg") if m["data"].get("method") == "update"]
    seconds = float(re.search(r"succeeded in ([\d.]+) s",
                              nb.cells[1].outputs[0].data["text/plain"]).group(1))
    timing = nb.cells[1].metadata["execution"]  # the view lives as long as the cell
    cell = (datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
            - datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00")))
    assert cell.total_seconds() >= seconds > 0.5  # 10,000 updates take a while
    # at most ten redraws a second, each a few widget messages (graph, bar, its count)
    assert len(updates) <= 3 * (10 * cell.total_seconds() + 5), (len(updates), cell)
    values = [m["data"]["state"]["value"] for m in updates
              if isinstance(m["data"]["state"].get("value"), float)]
    assert values and values[-1] == 10_000.0
    picture = nb.cells[1].outputs[0].data["text/html"]
    assert "<progress value='10000' max='10000'>" in picture and "10000/10000" in picture


def test_a_failed_run_ends_as_a_picture_with_the_failed_step(folder: Path) -> None:
    (folder / "broken.py").write_text(WORKFLOW.replace("return sum(xs)", "return 1 / 0"))
    nb, _ = execute(folder, "%load_ext qflow",
                    "import qflow\nfrom broken import Example\nqflow.run(Example())",
                    errors=True)
    outputs = nb.cells[1].outputs
    picture = next(o for o in outputs if o.output_type == "display_data")
    assert WIDGET_VIEW not in picture.data
    assert node_classes(picture.data["text/html"]) == {"n": "input", "pause": "input",
                                                      "Load": "ran", "Total": "failed"}
    assert "failed" in picture.data["text/plain"]
    assert [o.ename for o in outputs if o.output_type == "error"] == ["StepError"]


def test_a_run_on_a_dask_cluster_shows_live_in_the_notebook(folder: Path,
                                                             dask_cluster: str) -> None:
    """Steps defined in the notebook compute on the workers; their events reach the view."""
    cell = SLOW + (f"\nfrom qflow.launchers.dask import DaskLauncher\n\n"
                   f"with DaskLauncher(scheduler_address={dask_cluster!r}) as launcher:\n"
                   f"    launcher.launch(Slowly(), {{'n': 10}})\n")
    nb, client = execute(folder, "%load_ext qflow", cell)
    shown = client.of(1, "display_data")
    assert len(shown) == 1 and WIDGET_VIEW in shown[0]["data"]
    progress = [m["data"]["state"]["value"] for m in client.of(1, "comm_msg")
                if isinstance(m["data"].get("state", {}).get("value"), float)]
    assert len(progress) > 3 and progress[-1] == 10.0, progress  # the bar moved, then ended
    picture = next(o for o in nb.cells[1].outputs if o.output_type == "display_data")
    assert WIDGET_VIEW not in picture.data
    assert node_classes(picture.data["text/html"]) == {"n": "input", "Slow": "ran",
                                                      "Double": "ran"}


def test_a_notebook_session_keeps_its_graph_and_bars_as_pictures(tmp_path: Path) -> None:
    """The example notebook: ``%qflow graph`` is a picture redrawn in place as the step cells
    run (nbclient applies the display updates to the graph cell, as JupyterLab does); the fit
    cell's bar is a widget while it runs, then a picture at 15/15. No output of the executed
    notebook holds a widget view."""
    nb = nbformat.read(REPO / "notebooks" / "digits.ipynb", as_version=4)
    client = Recording(nb, kernel_name="python3", timeout=120,
                       resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    sources = [c.source for c in nb.cells]
    graph = next(i for i, src in enumerate(sources) if src.startswith("%qflow graph"))
    fit = next(i for i, src in enumerate(sources) if src.startswith("%%qflow_step fit"))
    steps = ["load", "split", "scale", "fit", "evaluate"]

    [picture] = [o for o in nb.cells[graph].outputs if o.output_type == "display_data"]
    assert node_classes(picture.data["text/html"]) == dict.fromkeys(steps, "ran")
    bars = [m["data"] for m in client.of(fit, "display_data") if WIDGET_VIEW in m["data"]]
    assert len(bars) == 1 and "fit: epoch" in bars[0]["text/html"]  # live, with its picture
    shown = [o for o in nb.cells[fit].outputs if "qflow-bars" in o.get("data", {}).get(
        "text/html", "")]
    assert len(shown) == 1 and "<progress value='15' max='15'>" in shown[0].data["text/html"]
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert WIDGET_VIEW not in output.get("data", {}), (cell.source[:40], output)

    from nbconvert import HTMLExporter

    page, _ = HTMLExporter().from_notebook_node(nb)
    assert node_classes(page) == dict.fromkeys(steps, "ran")


# -- %qflow watch: a run started elsewhere --------------------------------------------------------
SLOW = '''\
import time

import qflow


@qflow.step
class Slow:
    def apply(self, n: int) -> int:
        bar = qflow.ProgressBar("ticks", total=n)
        for _ in range(n):
            time.sleep(0.1)
            bar.update(1)
        return n


@qflow.step
class Double:
    def apply(self, x: int) -> int:
        return 2 * x


@qflow.workflow
class Slowly:
    def run(self, n: int = 30) -> int:
        return Double().apply(Slow().apply(n))
'''


def start_run(root: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """``qflow run -w slow ARGS`` in the background; its process and run id once it started."""
    runs = root / ".qflow" / "runs"
    before = set(runs.iterdir()) if runs.is_dir() else set()
    proc = subprocess.Popen([QFLOW, "run", "-w", "slow", *args], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 30
    while True:
        new = set(runs.iterdir()) - before if runs.is_dir() else set()
        if new:
            return proc, new.pop().name
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.05)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return new_project(tmp_path, "watched", "slow", SLOW)


def test_watch_follows_a_run_of_another_process_to_its_end(project: Path) -> None:
    proc, run_id = start_run(project)
    try:
        nb, client = execute(project, "%load_ext qflow", f"%qflow watch {run_id}")
    finally:
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    # shown live while the run went on: the widget, Slow not finished yet
    shown = client.of(1, "display_data")
    assert len(shown) == 1 and WIDGET_VIEW in shown[0]["data"], shown
    assert node_classes(shown[0]["data"]["text/html"])["Slow"] in ("pending", "running")
    progress = [m for m in client.of(1, "comm_msg")
                if isinstance(m["data"].get("state", {}).get("value"), float)]
    assert len(progress) > 3  # the bar moved while the cell ran
    # and ends as the picture of the final states, the console's lines below it
    outputs = nb.cells[1].outputs
    picture = next(o for o in outputs if o.output_type == "display_data")
    assert WIDGET_VIEW not in picture.data
    assert node_classes(picture.data["text/html"]) == {"n": "input", "Slow": "ran",
                                                      "Double": "ran"}
    assert "<progress value='30' max='30'>" in picture.data["text/html"]
    stdout = "".join(o.text for o in outputs if o.output_type == "stream")
    assert f"Run {run_id} succeeded" in stdout and "result: 60" in stdout, stdout


def test_watch_a_finished_run_shows_its_picture_at_once_and_an_unknown_run_is_an_error(
        project: Path) -> None:
    proc, run_id = start_run(project, "inputs.n=2")
    assert proc.wait(60) == 0
    nb, client = execute(project, "%load_ext qflow", f"%qflow watch {run_id}",
                         "%qflow watch 20200101-000000-000-abcdef", errors=True)
    assert not client.of(1, "comm_open")  # no widget for a run that has ended
    outputs = nb.cells[1].outputs
    assert outputs[0].output_type == "display_data"
    assert node_classes(outputs[0].data["text/html"]) == {"n": "input", "Slow": "ran",
                                                         "Double": "ran"}
    assert f"Run {run_id} succeeded" in "".join(o.text for o in outputs[1:])
    error = nb.cells[2].outputs[0]  # IPython prints a UsageError, without a traceback
    assert error.output_type == "stream" and error.name == "stderr"
    assert error.text.startswith("UsageError: No run '20200101-000000-000-abcdef' in "
                                 f"{project / '.qflow' / 'runs'}")
