"""The graph in Graphviz's DOT language: steps, providers, inputs, artifacts on the edges."""

from __future__ import annotations

import json
import shutil
import subprocess
import typing
from pathlib import Path
from typing import Any

from qflow.dsl.proxy import Proxy
from qflow.graph.graph import Graph, proxies_in

COLOURS = {"ran": "#c8e6c9", "cached": "#bbdefb", "inline": "#e1f5fe", "failed": "#ffcdd2",
           "skipped": "#eeeeee", "pending": "#fff9c4", "running": "#fff9c4", "crashed": "#ffcdd2"}
SHAPES = {"step": "box", "provider": "cylinder", "input": "ellipse"}


def _q(text: str) -> str:
    return json.dumps(text)  # a DOT string: double quotes, escapes


def _type_name(annotation: Any) -> str:
    if annotation is Any or annotation is None:
        return ""
    if isinstance(annotation, type):
        return annotation.__name__
    origin = typing.get_origin(annotation)
    return getattr(origin, "__name__", "") if origin else ""


def to_dot(graph: Graph, statuses: dict[str, str] | None = None) -> str:
    """DOT source of ``graph``; with ``statuses`` (node id -> status) nodes are coloured."""
    lines = [f"digraph {_q(graph.name)} {{", "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=11, style="rounded,filled", '
             'fillcolor="#ffffff"];', '  edge [fontname="Helvetica", fontsize=9];']
    for node in graph.nodes.values():
        status = (statuses or {}).get(node.id)
        attrs = {"shape": SHAPES[node.kind], "label": _label(node.id, node.kind, node.title, status),
                 "fillcolor": COLOURS.get(status or "", "#ffffff")}
        lines.append(f"  {_q(node.id)} [" + ", ".join(f"{k}={_q(v)}" for k, v in attrs.items())
                     + f", class={_q('qflow-' + (status or 'node'))}];")
    for node in graph.nodes.values():
        for param, value in node.inputs.items():
            for proxy in proxies_in(value):
                lines.append(f"  {_q(proxy.node)} -> {_q(node.id)} [label={_q(_edge(proxy, param))}];")
    result = proxies_in(graph.result)
    if result:
        lines.append('  "result" [shape=doublecircle, label="result", fillcolor="#f5f5f5"];')
        for proxy in result:
            lines.append(f"  {_q(proxy.node)} -> \"result\" [label={_q(_edge(proxy, ''))}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _label(node_id: str, kind: str, title: str | None, status: str | None) -> str:
    """A node's label: its id, a step's settings or a provider's call, and its status."""
    label = node_id
    if kind == "provider" and title:
        label += f"\n{title}"
    elif kind == "step" and title and "(" in title and title != f"{node_id}()":
        label += f"\n{title.split('(', 1)[1][:-1]}"
    return label + (f"\n[{status}]" if status else "")


def described_dot(graph: dict[str, Any], statuses: dict[str, str] | None = None) -> str:
    """DOT source of a graph as run records describe it (``{"name", "nodes": [...]}``), with
    the settings it ran with (the steps' and providers' titles)."""
    lines = [f"digraph {_q(graph.get('name') or 'graph')} {{", "  rankdir=LR;",
             '  node [fontname="Helvetica", fontsize=11, style="rounded,filled"];']
    for node in graph.get("nodes", []):
        status = (statuses or {}).get(node["id"])
        label = _label(node["id"], node.get("kind") or "step", node.get("title"), status)
        lines.append(f"  {_q(node['id'])} [shape={SHAPES.get(node.get('kind'), 'box')}, "
                     f"label={_q(label).replace(chr(92) * 2, chr(92))}, "
                     f"fillcolor={_q(COLOURS.get(status or '', '#ffffff'))}, "
                     f"class={_q('qflow-' + (status or 'node'))}];")
        for up in node.get("upstream", []):
            lines.append(f"  {_q(up)} -> {_q(node['id'])};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _edge(proxy: Proxy, param: str) -> str:
    source = f"[{proxy.index}]" if proxy.index else ""
    kind = _type_name(proxy.annotation)
    text = f"{source} {param}".strip()
    return f"{text}: {kind}" if kind and text else (text or kind)


def render_picture(dot: str, target: Path) -> Path:
    """Render DOT source to ``target`` (its suffix is the format) with Graphviz's ``dot``.

    Without the ``dot`` program, writes the DOT source beside it (``.dot``) and returns that.
    Raises ``RuntimeError`` with Graphviz's message if it fails.
    """
    fmt = target.suffix.lstrip(".") or "svg"
    if fmt == "dot" or shutil.which("dot") is None:
        target = target.with_suffix(".dot")
        target.write_text(dot)
        return target
    done = subprocess.run(["dot", f"-T{fmt}", "-o", str(target)], input=dot, text=True,
                          capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip())
    return target
