"""The example notebook in a real JupyterLab (headless Chromium driven by Playwright).

Runs ``notebooks/digits.ipynb`` cell by cell, as a user would, and checks what the browser
shows: the live graph widget of ``%qflow graph`` with a node per step and its state, and the
``tqdm`` progress bar of the ``fit`` step at 100%. Re-running the ``fit`` cell then loads it
from the cache, and the graph already on screen turns its node to ``cached``.

Screenshots land in ``test-artifacts/`` at the repository root: ``jupyterlab-qflow.png`` after
the first run, ``jupyterlab-qflow-rerun.png`` after the re-run of ``fit``, and
``jupyterlab-failure.png`` when the test fails.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "digits.ipynb"
ARTIFACTS = REPO / "test-artifacts"
STEPS = ["load", "split", "scale", "fit", "evaluate"]
CELL_TIMEOUT = 120_000  # ms; the first step imports scikit-learn

IDLE = ("() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " const k = w && w.sessionContext && w.sessionContext.session"
        " && w.sessionContext.session.kernel; return !!k && k.status === 'idle'; }")
# Runs cell i without awaiting it (awaiting would hide the live updates); the outcome of the
# command lands in window.__qflowRuns[run] for FINISHED to wait on.
RUN = ("([i, run]) => { const app = window.jupyterapp; const nb = app.shell.currentWidget.content;"
       " window.__qflowRuns = window.__qflowRuns || {}; window.__qflowRuns[run] = 'running';"
       " nb.activeCellIndex = i;"
       " app.commands.execute('notebook:run-cell').then("
       "   (ok) => { window.__qflowRuns[run] = ok === false ? 'failed' : 'ok'; },"
       "   (e) => { window.__qflowRuns[run] = 'error: ' + e; }); }")
FINISHED = (f"(run) => {{ const s = window.__qflowRuns && window.__qflowRuns[run];"
            f" return !!s && s !== 'running' && ({IDLE})(); }}")
GRAPH_NODES = ("(graph) => Array.from(graph.querySelectorAll('g.qflow-node')).map("
               "(g) => ({id: g.id, cls: g.getAttribute('class') || '', text: g.textContent}))")


def _code_cells() -> dict[str, int]:
    """Index (among all cells, as the notebook panel counts them) of each code cell, by what
    it does: ``load_ext``, ``parameters``, each step name, ``graph``, ``status``."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    found: dict[str, int] = {}
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"]).strip()
        first = source.splitlines()[0] if source else ""
        if m := re.match(r"%%qflow_step\s+(\w+)", first):
            found[m.group(1)] = i
        elif first.startswith("%load_ext"):
            found["load_ext"] = i
        elif first.startswith("%qflow "):
            found[first.split()[1]] = i
        else:
            found.setdefault("parameters", i)
    return found


class Notebook:
    """The notebook open in one page, and how to run its cells."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.cells = page.locator(".jp-NotebookPanel:visible .jp-Cell")
        self.runs = 0

    def run(self, index: int) -> None:
        """Run cell ``index`` and wait until it has finished and the kernel is idle."""
        self.runs += 1
        run = f"r{self.runs}"
        self.page.evaluate(RUN, [index, run])
        self.page.wait_for_function(FINISHED, arg=run, timeout=CELL_TIMEOUT)
        outcome = self.page.evaluate("(run) => window.__qflowRuns[run]", run)
        assert outcome == "ok", (f"cell {index} did not run cleanly ({outcome}); its output:\n"
                                 + self.output_text(index))

    def output_text(self, index: int) -> str:
        return self.cells.nth(index).locator(".jp-OutputArea").text_content() or ""

    def nodes(self, index: int) -> dict[str, str]:
        """``{step: class attribute}`` of the graph's SVG nodes in the output of cell ``index``."""
        graph = self.cells.nth(index).locator(".qflow-graph")
        found = graph.first.evaluate(GRAPH_NODES) if graph.count() else []
        return {n["id"].removeprefix("qflow-node-"): n["cls"] for n in found}

    def states(self, index: int) -> dict[str, str]:
        """The ``data-states`` JSON of the graph widget in the output of cell ``index``."""
        return json.loads(self.cells.nth(index).locator(".qflow-graph").first
                          .get_attribute("data-states") or "{}")


def _state(classes: str) -> str:
    states = [c.removeprefix("qflow-") for c in classes.split()
              if c.startswith("qflow-") and c != "qflow-node"]
    return states[0] if len(states) == 1 else f"unclear: {classes!r}"


@pytest.fixture
def lab_page(jupyter_lab: dict[str, Any], browser: Any, request: pytest.FixtureRequest):
    """A fresh page (its own workspace) that saves a screenshot when the test fails."""
    page = browser.new_page(viewport={"width": 1400, "height": 1900})
    failed = request.session.testsfailed
    try:
        yield page
    finally:
        if request.session.testsfailed > failed:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "jupyterlab-failure.png"), full_page=True)
        page.close()


def test_digits_notebook_graph_and_progress_in_jupyterlab(jupyter_lab, lab_page) -> None:
    root: Path = jupyter_lab["root"]
    shutil.copy(NOTEBOOK, root / "digits.ipynb")
    index = _code_cells()
    assert set(STEPS) | {"load_ext", "graph"} <= set(index), index
    order = sorted(index.values())

    page = lab_page
    workspace = uuid.uuid4().hex[:8]  # fresh workspace: no tabs restored from another test
    page.goto(f"{jupyter_lab['base']}/lab/workspaces/{workspace}/tree/digits.ipynb"
              f"?token={jupyter_lab['token']}")
    page.wait_for_function(IDLE, timeout=60_000)
    nb = Notebook(page)

    for i in order:
        nb.run(i)

    # (1) the live graph: an SVG node per step, all ran on a first run
    graph_cell = index["graph"]
    nb.cells.nth(graph_cell).locator(".qflow-graph svg g.qflow-node").first.wait_for(
        timeout=30_000)
    nodes = nb.nodes(graph_cell)
    assert sorted(nodes) == sorted(STEPS), nodes
    assert {s: _state(c) for s, c in nodes.items()} == dict.fromkeys(STEPS, "ran"), nodes
    assert all("node" in c.split() for c in nodes.values()), nodes  # Graphviz's own class
    assert nb.states(graph_cell) == dict.fromkeys(STEPS, "ran")
    for step in STEPS:  # each node is labelled with its step and state
        text = nb.cells.nth(graph_cell).locator(f"#qflow-node-{step}").text_content() or ""
        assert step in text and "ran" in text, (step, text)

    # (2) the fit step's progress bar (tqdm.auto: an ipywidgets progress bar) reached 100%
    fit = nb.cells.nth(index["fit"])
    bar = fit.locator(".jp-OutputArea .widget-hprogress")
    assert bar.count() == 1, fit.locator(".jp-OutputArea").inner_html()
    fill = bar.locator(".progress-bar")
    width = fill.evaluate("(e) => e.style.width")  # ipywidgets: value / max as a width
    assert width == "100%", (width, bar.inner_html())
    # tqdm closes a finished bar with bar_style "success"; unfinished would be "danger"
    assert "progress-bar-success" in (fill.get_attribute("class") or "").split()
    row = bar.locator("xpath=..").text_content() or ""  # tqdm: an HBox of text, bar, text
    row = " ".join(row.split())  # tqdm pads with figure spaces (U+2007)
    # "15.0/15": qflow.ProgressBar counts in floats (see the report); "15/15" is as good
    assert "fit: epoch: 100%" in row and re.search(r"\b15(\.0)?/15\b", row), row
    assert "trained for 15 epochs" in nb.output_text(index["fit"])

    # the whole notebook fits the tall viewport: graph (all done) and the full progress bar
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-qflow.png"), full_page=True)

    # (3) re-running the fit cell loads it from the cache; the graph on screen updates in place
    nb.run(index["fit"])
    assert "loaded from cache" in nb.output_text(index["fit"])
    page.wait_for_function(
        "(cell) => { const g = document.querySelectorAll('.jp-NotebookPanel .jp-Cell')[cell]"
        "  .querySelector('#qflow-node-fit'); return !!g && g.classList.contains('qflow-cached'); }",
        arg=graph_cell, timeout=30_000)
    nodes = nb.nodes(graph_cell)
    expected = {**dict.fromkeys(STEPS, "ran"), "fit": "cached"}
    assert {s: _state(c) for s, c in nodes.items()} == expected, nodes
    assert nb.states(graph_cell) == expected

    # the cache is the temporary folder's, not the repository's
    assert (root / ".qflow" / "store").is_dir()

    page.screenshot(path=str(ARTIFACTS / "jupyterlab-qflow-rerun.png"), full_page=True)


# -- the documentation site: a tutorial page with its graph ---------------------------------------
def _docs_site_or_skip(out: Path) -> Path:
    """Build the documentation site into ``out`` (skipping where the docs toolchain is absent)."""
    import importlib.util
    import subprocess
    import sys

    mkdocs = Path(sys.executable).with_name("mkdocs")
    config = REPO / "mkdocs.yml"
    if not mkdocs.exists():
        pytest.skip(f"{mkdocs} is missing: pip install -e '.[docs]'")
    if importlib.util.find_spec("mkdocs_jupyter") is None:
        pytest.skip("the mkdocs-jupyter plugin is missing: pip install -e '.[docs]'")
    if "mkdocs-jupyter" not in config.read_text():
        pytest.skip("mkdocs.yml does not use the mkdocs-jupyter plugin: no tutorial pages")
    done = subprocess.run([str(mkdocs), "build", "-d", str(out)], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, f"mkdocs build failed:\n{done.stdout[-3000:]}{done.stderr[-5000:]}"
    return out


def test_tutorial_page_shows_the_graph_picture(browser: Any, tmp_path: Path) -> None:
    """The built site's first tutorial, served over HTTP in headless Chromium, shows the graph
    of the notebook's steps as a picture (the widget made static by docs_hooks/tutorials.py),
    and no widget placeholder."""
    import functools
    import http.server
    import threading

    site = _docs_site_or_skip(tmp_path / "site")
    page_file = site / "tutorials" / "notebook-to-pipeline" / "index.html"
    assert page_file.is_file(), sorted(p.name for p in (site / "tutorials").iterdir())

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/tutorials/notebook-to-pipeline/"
        response = page.goto(url)
        assert response is not None and response.ok, url
        graph = page.locator(".qflow-graph svg").first
        graph.wait_for(state="visible", timeout=15_000)
        graph.scroll_into_view_if_needed()
        box = graph.bounding_box()
        assert box is not None and box["width"] > 100 and box["height"] > 30, box
        nodes = graph.locator("g.qflow-node")
        assert nodes.count() == 3
        labels = " ".join(" ".join((nodes.nth(i).text_content() or "").split())
                          for i in range(3))
        for step, state in (("load", "cached"), ("fit", "ran"), ("evaluate", "ran")):
            assert re.search(rf"{step}\W*{state}", labels), labels
        body = page.locator("body").text_content() or ""
        assert "Error displaying widget" not in body and "model not found" not in body
        # the progress bar of the fit step is a static <progress> at its end
        bar = page.locator("progress").first
        assert bar.get_attribute("value") == bar.get_attribute("max")
        ARTIFACTS.mkdir(exist_ok=True)
        page.evaluate("(y) => window.scrollBy(0, y)", -200)  # the heading above the graph too
        page.screenshot(path=str(ARTIFACTS / "tutorial.png"))
    finally:
        page.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
