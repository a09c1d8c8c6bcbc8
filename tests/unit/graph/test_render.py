"""The graph renderer: Graphviz's SVG (real ``dot``), the DOT source, and the plain picture
drawn when ``dot`` is missing."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import qflow
from qflow.graph import render
from qflow.graph.build import build

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing")


class Model:
    """A stand-in model type: edges name the type that travels along them."""


@qflow.step
class Fit:
    alpha: float = 0.5

    def apply(self, data: list) -> Model:
        return Model()


@qflow.step
class Score:
    def apply(self, model: Model, data: list) -> tuple[float, list]:
        return 1.0, data


@qflow.workflow
class Train:
    def run(self, data: list = [1, 2]) -> Any:
        model = Fit(alpha=0.1).apply(data)
        score, rest = Score().apply(model, data)
        return score, rest


STATUSES = {"data": "input", "Fit": "ran", "Score": "failed"}


def described() -> dict[str, Any]:
    return build(Train()).to_dict()


def nodes_of(svg: str) -> dict[str, str]:
    """Node id -> class of every qflow node group in an SVG document."""
    root = ET.fromstring(svg)
    return {g.get("id").removeprefix("qflow-node-"): g.get("class")
            for g in root.iter("{http://www.w3.org/2000/svg}g")
            if "qflow-node" in (g.get("class") or "").split()}


def test_to_dict_carries_edge_labels_and_the_result():
    graph = described()
    score = next(n for n in graph["nodes"] if n["id"] == "Score")
    assert score["upstream"] == ["Fit", "data"]
    assert score["inputs"] == [{"from": "Fit", "label": "model: Model"},
                               {"from": "data", "label": "data: list"}]
    fit = next(n for n in graph["nodes"] if n["id"] == "Fit")
    assert fit["settings"] == {"alpha": 0.1} and graph["nodes"][0]["settings"] == {}
    assert graph["result_inputs"] == [{"from": "Score", "label": "float"},
                                      {"from": "Score", "label": "[1]: list"}]


@needs_dot
def test_svg_nodes_have_ids_classes_colours_and_labels():
    svg = render.svg(described(), STATUSES)
    assert svg.startswith("<svg")
    assert nodes_of(svg) == {"data": "node qflow-node qflow-input",
                             "Fit": "node qflow-node qflow-ran",
                             "Score": "node qflow-node qflow-failed"}
    assert '<g id="qflow-node-Fit" class="node qflow-node qflow-ran">' in svg
    fit = svg[svg.index('id="qflow-node-Fit"'):]
    fit = fit[:fit.index("</g>")]
    assert render.COLOURS["ran"] in fit and "alpha=0.1" in fit and "[ran]" in fit
    assert render.COLOURS["failed"] in svg[svg.index('id="qflow-node-Score"'):]
    for label in ("model: Model", "data: list", "[1]: list"):
        assert f">{label}<" in svg
    assert 'id="qflow-result"' in svg


@needs_dot
def test_without_statuses_nodes_have_no_status_line():
    svg = render.svg(described())
    assert set(nodes_of(svg).values()) == {"node qflow-node qflow-none"}
    assert "[ran]" not in svg


def test_every_status_word_has_a_colour():
    from typing import get_args

    from qflow.runtime.events import NodeStatus

    assert set(get_args(NodeStatus)) | {"stale", "crashed", "none"} == set(render.COLOURS)


def test_without_dot_svg_is_a_column_of_the_same_nodes(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    svg = render.svg(described(), STATUSES)
    assert nodes_of(svg) == {"data": "node qflow-node qflow-input",
                             "Fit": "node qflow-node qflow-ran",
                             "Score": "node qflow-node qflow-failed"}
    assert render.COLOURS["failed"] in svg and "alpha=0.1" in svg and "model: Model" in svg


def test_notebook_steps_draw_from_upstream_and_variable_names(monkeypatch):
    graph = {"name": "nb", "nodes": [
        {"id": "load", "kind": "step", "upstream": []},
        {"id": "fit", "kind": "step", "upstream": ["load"],
         "inputs": [{"from": "load", "label": "X, y"}]},
        {"id": "report", "kind": "step", "upstream": ["fit"]}]}
    source = render.digraph(graph, {"load": "cached", "fit": "running"}).source
    assert '"X, y"' in source and "load -> fit" in source and "fit -> report" in source
    assert 'class="qflow-node qflow-running"' in source and "qflow-node qflow-none" in source
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert set(nodes_of(render.svg(graph))) == {"load", "fit", "report"}


@needs_dot
def test_render_picture_writes_svg_png_and_dot(tmp_path: Path):
    graph = described()
    svg = render.render_picture(graph, STATUSES, tmp_path / "g.svg")
    assert svg == tmp_path / "g.svg" and "qflow-ran" in svg.read_text()
    png = render.render_picture(graph, STATUSES, tmp_path / "g.png")
    assert png.read_bytes().startswith(b"\x89PNG")
    dot = render.render_picture(graph, STATUSES, tmp_path / "g.dot")
    assert re.search(r'class="qflow-node qflow-failed"', dot.read_text())


def test_render_picture_without_dot_writes_dot(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    written = render.render_picture(described(), STATUSES, tmp_path / "g.svg")
    assert written == tmp_path / "g.dot" and "[ran]" in written.read_text()


@needs_dot
def test_large_graphs_are_not_laid_out(tmp_path: Path):
    graph = {"name": "big", "nodes": [{"id": f"n{i}", "kind": "step",
                                       "upstream": [f"n{i - 1}"] if i else []}
                                      for i in range(render.PICTURE_LIMIT + 1)]}
    assert render.render_picture(graph, None, tmp_path / "g.svg").suffix == ".dot"
    assert len(nodes_of(render.svg(graph))) == render.PICTURE_LIMIT + 1


@needs_dot
def test_graphviz_failure_is_a_runtime_error(tmp_path: Path):
    with pytest.raises(RuntimeError):
        render.render_picture(described(), None, tmp_path / "g.nosuchformat")
