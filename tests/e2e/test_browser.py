"""The example notebook in a real JupyterLab (headless Chromium driven by Playwright).

Runs ``notebooks/digits.ipynb`` cell by cell, as a user would, and checks what the browser
shows: the graph of ``%qflow graph`` with a node per step and its state, and the progress bar
of the ``fit`` step (a widget while the step runs, then a picture at 15/15). Re-running the
``fit`` cell then loads it from the cache, and the graph already on screen turns its node to
``cached``. A second test runs a workflow with ``qflow.run(...)`` in a cell (the live view),
follows a ``qflow run`` of another process with ``%qflow watch``, and reopens the saved
notebook after shutting its kernel down.

Screenshots land in ``test-artifacts/`` at the repository root: ``jupyterlab-qflow.png`` after
the first run, ``jupyterlab-qflow-rerun.png`` after the re-run of ``fit``,
``jupyterlab-reopened.png`` for the reopened notebook, and ``jupyterlab-failure.png`` when a
test fails.
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
        self.finish(index, self.start(index))

    def start(self, index: int) -> str:
        """Start running cell ``index`` (not waiting for it); the name to :meth:`finish` it."""
        self.runs += 1
        run = f"r{self.runs}"
        self.page.evaluate(RUN, [index, run])
        return run

    def finish(self, index: int, run: str) -> None:
        """Wait until the cell started as ``run`` has finished and the kernel is idle."""
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

    for i in order:  # (fit takes half a second: too short to catch its bar as a widget)
        nb.run(i)

    # (1) the graph: an SVG node per step, all ran on a first run
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
    # a picture, not a widget: a saved notebook shows it as it last was
    assert nb.cells.nth(graph_cell).locator(".jupyter-widgets").count() == 0

    # (2) the fit step's progress bar: once the step finished, a picture of its last value
    fit = nb.cells.nth(index["fit"])
    assert fit.locator(".jp-OutputArea .jupyter-widgets").count() == 0
    bar = fit.locator(".jp-OutputArea .qflow-bars .qflow-bar")
    assert bar.count() == 1, fit.locator(".jp-OutputArea").inner_html()
    progress = bar.locator("progress")
    assert progress.get_attribute("value") == progress.get_attribute("max") == "15"
    assert bar.get_attribute("data-state") == "success"
    row = " ".join((bar.text_content() or "").split())
    assert row == "fit: epoch 15/15", row
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


# -- the live view of runs, the pictures saved notebooks keep, %qflow watch ----------------------
LIVE_JS = (  # the status class of node NODE in the output of cell CELL, and where it is drawn
    "([cell, node]) => { const out = document.querySelectorAll('.jp-NotebookPanel .jp-Cell')[cell]"
    "  .querySelector('.jp-OutputArea'); const g = out && out.querySelector('#qflow-node-' + node);"
    "  if (!g) return null;"
    "  const state = Array.from(g.classList).find((c) => c.startsWith('qflow-') && c !== 'qflow-node');"
    "  return {state: state && state.slice(6), widget: !!g.closest('.qflow-live'),"
    "          bars: out.querySelectorAll('.qflow-live .widget-hprogress').length}; }")


def _follow(page: Any, cell: int, node: str, run: str, timeout: float = 60) -> list[tuple]:
    """``(state, drawn in the widget, widget bars)`` of ``node`` in cell ``cell``'s output, each
    time it changes, until the cell started as ``run`` has finished."""
    import time

    seen: list[tuple] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = page.evaluate(LIVE_JS, [cell, node])
        if now and (not seen or seen[-1] != (now["state"], now["widget"], now["bars"] > 0)):
            seen.append((now["state"], now["widget"], now["bars"] > 0))
        if page.evaluate(FINISHED, run):
            now = page.evaluate(LIVE_JS, [cell, node])
            if now:
                seen.append((now["state"], now["widget"], now["bars"] > 0))
            return seen
        time.sleep(0.05)
    raise AssertionError(f"cell {cell} did not finish in {timeout} s; seen {seen}")


def _write_notebook(path: Path, sources: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in sources]
    nbformat.write(nb, path)


def test_a_run_is_live_then_keeps_its_picture_and_watch_follows_another(jupyter_lab,
                                                                        lab_page) -> None:
    """``qflow.run(...)`` shows the graph widget with live states (``running`` then ``ran``)
    and widget bars; ``%qflow watch`` shows a ``qflow run`` of another process progressing;
    saved, the kernel shut down and reopened, the notebook shows both final graphs and no
    "model not found" (screenshot ``jupyterlab-reopened.png``)."""
    from tests.conftest import new_project
    from tests.e2e.test_live_view import SLOW, start_run

    project = new_project(jupyter_lab["root"], f"live{uuid.uuid4().hex[:6]}", "slow", SLOW)
    name = f"{project.name}/live.ipynb"
    _write_notebook(project / "live.ipynb", [
        "%load_ext qflow",
        SLOW + "\nqflow.run(Slowly(), inputs={'n': 15})",
        "# %qflow watch RUN_ID (set by the test)"])
    page = lab_page
    url = (f"{jupyter_lab['base']}/lab/workspaces/{{}}/tree/{name}"
           f"?token={jupyter_lab['token']}")
    page.goto(url.format(uuid.uuid4().hex[:8]))
    page.wait_for_function(IDLE, timeout=60_000)
    nb = Notebook(page)
    nb.run(0)

    # (1) qflow.run in a cell: the widget with live states, then the picture of the end
    seen = _follow(page, 1, "Slow", nb.start(1))
    nb.finish(1, f"r{nb.runs}")
    assert ("pending", True, False) in seen or seen[0][:2] == ("running", True), seen
    assert ("running", True, True) in seen, seen  # live in the widget, with a widget bar
    assert seen[-1] == ("ran", False, False), seen  # at the end: the static picture
    out = nb.cells.nth(1).locator(".jp-OutputArea")
    assert out.locator(".qflow-run progress").get_attribute("value") == "15"
    assert "succeeded in" in (out.text_content() or "")

    # (2) %qflow watch on a `qflow run` in another process, as it progresses
    proc, run_id = start_run(project, "inputs.n=30")
    try:
        page.evaluate("([i, text]) => window.jupyterapp.shell.currentWidget.content"
                      ".widgets[i].model.sharedModel.setSource(text)",
                      [2, f"%qflow watch {run_id}"])
        watched = _follow(page, 2, "Slow", nb.start(2))
        nb.finish(2, f"r{nb.runs}")
    finally:
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    assert ("running", True, True) in watched, watched
    assert watched[-1] == ("ran", False, False), watched
    assert f"Run {run_id} succeeded" in nb.output_text(2)

    # (3) saved, kernel shut down, reopened: the final pictures, never "model not found"
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_function("() => !window.jupyterapp.shell.currentWidget.context.model.dirty",
                           timeout=30_000)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.shutdown()")
    page.wait_for_function(
        "() => !window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=30_000)
    saved = json.loads((project / "live.ipynb").read_text())
    for cell in saved["cells"]:
        for output in cell.get("outputs", []):
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {})
    page.goto(url.format(uuid.uuid4().hex[:8]))
    reopened = Notebook(page)
    for cell in (1, 2):
        graph = reopened.cells.nth(cell).locator(".qflow-run .qflow-graph svg")
        graph.wait_for(state="visible", timeout=30_000)
        box = graph.bounding_box()
        assert box is not None and box["width"] > 100, box
        assert {s: _state(c) for s, c in reopened.nodes(cell).items()} == {
            "n": "input", "Slow": "ran", "Double": "ran"}
    page.wait_for_timeout(1000)  # a widget renderer would have drawn its error by now
    body = page.locator(".jp-NotebookPanel:visible").text_content() or ""
    assert "Error displaying widget" not in body and "model not found" not in body
    assert "Loading widget" not in body
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "jupyterlab-reopened.png"), full_page=True)


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
    of the notebook's steps as a picture (what `%qflow graph` leaves in the executed notebook),
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
        for expected in ("load [cached]", "fit [ran]", "evaluate [ran]"):
            assert expected in labels, labels
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
