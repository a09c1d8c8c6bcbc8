"""Live widgets: the graph of the notebook's steps, and progress bars for ``qflow.ProgressBar``.

The graph is SVG drawn by Graphviz in an ``ipywidgets.HTML``; every state change of a step
redraws it, and updates reach the browser while a cell runs. Each node is an SVG group with
the classes ``qflow-node qflow-<state>``. Without the ``dot`` program the graph is a list of
the same nodes.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from typing import TYPE_CHECKING, Any

from qflow.runtime.info import Progress, RuntimeInfo

if TYPE_CHECKING:
    from jupyter_ext.session import NotebookSession, StepCell

COLOURS = {"pending": "#ffffff", "running": "#fff59d", "cached": "#bbdefb", "done": "#c8e6c9",
           "failed": "#ffcdd2", "stale": "#ffe0b2"}


def session_dot(session: NotebookSession) -> str:
    """DOT source of the notebook's steps, coloured by state."""
    lines = ["digraph notebook {", "  rankdir=LR; bgcolor=transparent;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9];']
    for step in session.steps.values():
        label = f"{step.name}\\n{step.status}"
        lines.append(f'  {json.dumps(step.name)} [label="{label}", '
                     f'fillcolor="{COLOURS.get(step.status, "#ffffff")}", '
                     f'id="qflow-node-{step.name}", class="qflow-node qflow-{step.status}"];')
    for step in session.steps.values():
        by_source: dict[str, list[str]] = {}
        for name, source in step.upstream.items():
            by_source.setdefault(source, []).append(name)
        for source, names in by_source.items():
            lines.append(f"  {json.dumps(source)} -> {json.dumps(step.name)} "
                         f"[label={json.dumps(', '.join(sorted(names)))}];")
    lines.append("}")
    return "\n".join(lines)


def render_graph(session: NotebookSession) -> str:
    """HTML of the graph: Graphviz's SVG, or a plain list of nodes without Graphviz."""
    states = {s.name: s.status for s in session.steps.values()}
    head = f"<div class='qflow-graph' data-states='{html.escape(json.dumps(states))}'>"
    if not states:
        return head + "<i>No %%qflow_step cell has run yet.</i></div>"
    if shutil.which("dot"):
        done = subprocess.run(["dot", "-Tsvg"], input=session_dot(session), text=True,
                              capture_output=True)
        if done.returncode == 0:
            svg = done.stdout[done.stdout.find("<svg"):]
            return head + svg + "</div>"
    items = "".join(f"<li class='qflow-node qflow-{html.escape(state)}' "
                    f"style='background:{COLOURS.get(state, '#fff')}'>{html.escape(name)}: "
                    f"{html.escape(state)}</li>" for name, state in states.items())
    return head + f"<ul>{items}</ul></div>"


class GraphView:
    """An ``ipywidgets.HTML`` that redraws whenever a step of the session changes state."""

    def __init__(self, session: NotebookSession) -> None:
        import ipywidgets

        self.widget = ipywidgets.HTML(value=render_graph(session))
        self.widget.add_class("qflow-graph-widget")
        session.listeners.append(self.update)

    def update(self, session: NotebookSession) -> None:
        """Redraw from the session's current states."""
        self.widget.value = render_graph(session)


class ProgressBars:
    """``qflow.ProgressBar`` updates in a step cell shown as ``tqdm.auto`` bars."""

    def __init__(self) -> None:
        self.bars: dict[tuple[str, str], Any] = {}

    def __call__(self, step: StepCell, info: RuntimeInfo) -> None:
        if not isinstance(info, Progress):
            return
        from tqdm.auto import tqdm

        key = (step.name, info.name)
        bar = self.bars.get(key)
        if bar is None:
            bar = self.bars[key] = tqdm(total=info.total, desc=f"{step.name}: {info.name}")
        bar.n = info.done
        if info.message:
            bar.set_postfix_str(info.message, refresh=False)
        bar.refresh()
        if info.total is not None and info.done >= info.total:
            bar.close()
            del self.bars[key]
