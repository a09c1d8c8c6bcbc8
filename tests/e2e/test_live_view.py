"""Live views of runs in real kernels (nbclient): ``qflow.run(...)`` in a notebook shows the
graph widget and bars, ends as a static picture of the final states, prints its summary as
ordinary output, and the notebook keeps the picture (nbconvert's HTML shows it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

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


def execute(folder: Path, *sources: str) -> tuple[Any, Recording]:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    client = Recording(nb, kernel_name="python3", timeout=60,
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
    # at most ten redraws a second, each a few widget messages (graph, bar, its count)
    assert len(updates) <= 3 * (10 * seconds + 5), (len(updates), seconds)
    values = [m["data"]["state"]["value"] for m in updates
              if isinstance(m["data"]["state"].get("value"), float)]
    assert values and values[-1] == 10_000.0
    picture = nb.cells[1].outputs[0].data["text/html"]
    assert "<progress value='10000' max='10000'>" in picture and "10000/10000" in picture


def test_a_failed_run_ends_as_a_picture_with_the_failed_step(folder: Path) -> None:
    (folder / "broken.py").write_text(WORKFLOW.replace("return sum(xs)", "return 1 / 0"))
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext qflow"),
                nbformat.v4.new_code_cell("import qflow\nfrom broken import Example\n"
                                          "qflow.run(Example())")]
    NotebookClient(nb, kernel_name="python3", timeout=60, allow_errors=True,
                   resources={"metadata": {"path": str(folder)}}).execute()
    outputs = nb.cells[1].outputs
    picture = next(o for o in outputs if o.output_type == "display_data")
    assert WIDGET_VIEW not in picture.data
    assert node_classes(picture.data["text/html"]) == {"n": "input", "pause": "input",
                                                      "Load": "ran", "Total": "failed"}
    assert "failed" in picture.data["text/plain"]
    assert [o.ename for o in outputs if o.output_type == "error"] == ["StepError"]
