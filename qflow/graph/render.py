"""Pictures of a workflow's graph: the one renderer for ``qflow visualise``, the trackers' graph
artifact, the run inspector and the notebook's live graph.

It draws the *described* graph, the JSON-able form ``Graph.to_dict()`` returns and run records
keep (``{"name", "nodes": [{"id", "kind", "title", "upstream", "inputs"}], "result_inputs"}``),
coloured by each node's status. Graphviz (the ``graphviz`` package driving the ``dot``
program) lays it out; without ``dot``, :func:`svg` draws a plain column of the same nodes, so
there is always a picture. Every node is an SVG group
``<g id="qflow-node-ID" class="node qflow-node qflow-STATUS">`` that styles and browser tests
can find.
"""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import graphviz

COLOURS: dict[str, str] = {
    "pending": "#f5f5f5",
    "running": "#fff59d",
    "ran": "#c8e6c9",
    "cached": "#bbdefb",
    "inline": "#e1f5fe",
    "failed": "#ffcdd2",
    "skipped": "#eeeeee",
    "stale": "#ffe0b2",
    "crashed": "#ef9a9a",
    "input": "#ffffff",
    "none": "#ffffff",
}
"""Fill colour of a node by its status; ``none`` is a node drawn without a status."""

SHAPES = {"step": "box", "provider": "cylinder", "input": "ellipse"}
PICTURE_LIMIT = 200
"""Nodes: Graphviz's layout is quadratic, so larger graphs are written as DOT source, and
:func:`svg` draws them as a plain column."""

_TITLE_LIMIT = 120  # characters of a step's settings or a provider's call on its node
_RESULT = "__qflow_result__"


def _status(node: Mapping[str, Any], statuses: Mapping[str, str] | None) -> str:
    return (statuses or {}).get(node["id"]) or "none"


def _label_lines(node: Mapping[str, Any], status: str) -> list[str]:
    """A node's label: its id, a step's settings or a provider's call, and its status."""
    node_id, kind, title = node["id"], node.get("kind") or "step", node.get("title") or ""
    lines = [node_id]
    if kind == "step" and "(" in title and title != f"{node_id}()":
        title = title.split("(", 1)[1][:-1]
    elif kind != "provider":
        title = ""
    if title:
        lines.append(title if len(title) <= _TITLE_LIMIT else title[:_TITLE_LIMIT - 1] + "…")
    if status != "none":
        lines.append(f"[{status}]")
    return lines


def _edges(graph: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(from, to, label)`` of every edge, the result's included; nodes without ``inputs``
    (older records, notebook steps) get unlabelled edges from their ``upstream``."""
    edges = []
    for node in graph.get("nodes", []):
        inputs = node.get("inputs")
        if inputs is None:
            inputs = [{"from": up, "label": ""} for up in node.get("upstream", [])]
        edges += [(edge["from"], node["id"], edge.get("label") or "") for edge in inputs]
    result = graph.get("result_inputs")
    if result is None:  # records written before result_inputs: "Fit[0]"
        result = [{"from": r.rsplit("[", 1)[0], "label": ""} for r in graph.get("result") or []]
    edges += [(edge["from"], _RESULT, edge.get("label") or "") for edge in result]
    return edges


def digraph(graph: dict[str, Any], statuses: Mapping[str, str] | None = None) -> graphviz.Digraph:
    """``graph`` (the described form) as a ``graphviz.Digraph``, nodes coloured by ``statuses``
    (node id -> status word, see :data:`COLOURS`); edges carry what travels along them."""
    import graphviz

    dot = graphviz.Digraph(graph.get("name") or "graph")
    dot.attr(rankdir="LR", bgcolor="transparent")
    dot.attr("node", fontname="Helvetica", fontsize="11", style="rounded,filled")
    dot.attr("edge", fontname="Helvetica", fontsize="9")
    for node in graph.get("nodes", []):
        status = _status(node, statuses)
        dot.node(node["id"], "\\n".join(graphviz.escape(line) for line in _label_lines(node, status)),
                 shape=SHAPES.get(node.get("kind") or "step", "box"),
                 fillcolor=COLOURS.get(status, COLOURS["none"]),
                 id=f"qflow-node-{node['id']}", **{"class": f"qflow-node qflow-{status}"})
    edges = _edges(graph)
    if any(target == _RESULT for _, target, _ in edges):
        dot.node(_RESULT, "result", shape="doublecircle", fillcolor="#f5f5f5", id="qflow-result")
    for source, target, label in edges:
        dot.edge(source, target, label=graphviz.escape(label) if label else None)
    return dot


def _has_dot() -> bool:
    return shutil.which("dot") is not None


def svg(graph: dict[str, Any], statuses: Mapping[str, str] | None = None) -> str:
    """The picture of ``graph`` as ``<svg ...>`` text, ready to inline in HTML.

    Graphviz lays it out; without the ``dot`` program, or over :data:`PICTURE_LIMIT` nodes, it
    is a column of coloured boxes with the same ids and classes.
    """
    if _has_dot() and len(graph.get("nodes", [])) <= PICTURE_LIMIT:
        import graphviz

        try:
            text = digraph(graph, statuses).pipe(format="svg", encoding="utf-8", quiet=True)
        except (graphviz.ExecutableNotFound, graphviz.CalledProcessError):
            return _column_svg(graph, statuses)
        return _plain_ids(text[text.find("<svg"):])
    return _column_svg(graph, statuses)


def _plain_ids(svg_text: str) -> str:
    """Graphviz writes "-" as "&#45;" in attributes; plain ids and classes are easier to find."""
    return re.sub(r'((?:id|class)="[^"]*")', lambda m: m.group(1).replace("&#45;", "-"), svg_text)


def _column_svg(graph: dict[str, Any], statuses: Mapping[str, str] | None) -> str:
    """A plain picture without Graphviz: the nodes top to bottom in dependency order, edges as
    arcs on their right, each edge's label as its tooltip."""
    nodes = list(graph.get("nodes", []))
    edges = _edges(graph)
    if any(target == _RESULT for _, target, _ in edges):
        nodes.append({"id": _RESULT, "kind": "result"})
    boxes, y, width = {}, 10, 120
    for node in nodes:
        status = _status(node, statuses)
        lines = ["result"] if node["kind"] == "result" else _label_lines(node, status)
        height = 10 + 14 * len(lines)
        boxes[node["id"]] = (y, height, lines, status)
        width = max(width, 20 + 7 * max(len(line) for line in lines))
        y += height + 14
    parts = []
    for node_id, (top, height, lines, status) in boxes.items():
        texts = "".join(f'<text x="18" y="{top + 19 + 14 * i}" font-family="Helvetica" '
                        f'font-size="11">{html.escape(line)}</text>' for i, line in enumerate(lines))
        if node_id == _RESULT:
            head = '<g id="qflow-result" class="node">'
        else:
            head = (f'<g id="qflow-node-{html.escape(node_id)}" '
                    f'class="node qflow-node qflow-{html.escape(status)}">')
        parts.append(f'{head}<title>{html.escape(node_id)}</title><rect x="10" y="{top}" '
                     f'width="{width}" height="{height}" rx="5" '
                     f'fill="{COLOURS.get(status, COLOURS["none"])}" stroke="#555"/>{texts}</g>')
    right = 10 + width
    for n, (source, target, label) in enumerate(edges):
        if source not in boxes or target not in boxes:
            continue
        y0 = boxes[source][0] + boxes[source][1] / 2
        y1 = boxes[target][0] + boxes[target][1] / 2
        bulge = right + 20 + 8 * (n % 6)
        parts.append(f'<g class="edge"><title>{html.escape(f"{source} → {target} {label}")}'
                     f'</title><path d="M{right},{y0:.0f} C{bulge},{y0:.0f} {bulge},{y1:.0f} '
                     f'{right},{y1:.0f}" fill="none" stroke="#555"/></g>')
    total_width, total_height = right + 80, max(y, 20)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{total_width}pt" '
            f'height="{total_height}pt" viewBox="0 0 {total_width} {total_height}">'
            f'<g id="graph0" class="graph">{"".join(parts)}</g></svg>')


def render_picture(graph: dict[str, Any], statuses: Mapping[str, str] | None, target: Path) -> Path:
    """Write the picture of ``graph`` to ``target``; its suffix is the format (svg, png, dot).

    Without the ``dot`` program, or over :data:`PICTURE_LIMIT` nodes, writes the DOT source
    beside it (``.dot``) and returns that path. Raises ``RuntimeError`` with Graphviz's message
    if it fails.
    """
    import graphviz

    source = digraph(graph, statuses)
    fmt = target.suffix.lstrip(".") or "svg"
    if fmt == "dot" or not _has_dot() or len(graph.get("nodes", [])) > PICTURE_LIMIT:
        target = target.with_suffix(".dot")
        target.write_text(source.source)
        return target
    try:
        picture = source.pipe(format=fmt, quiet=True)
        if fmt == "svg":
            picture = _plain_ids(picture.decode()).encode()
        target.write_bytes(picture)
    except graphviz.CalledProcessError as exc:
        message = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr
        raise RuntimeError((message or str(exc)).strip()) from None
    except (ValueError, graphviz.ExecutableNotFound) as exc:  # an unknown format
        raise RuntimeError(str(exc)) from None
    return target
