"""Live widgets: the graph of a run's steps, and progress bars for ``qflow.ProgressBar``.

Both are run observers. The graph is the SVG of ``qflow.graph.render`` in an ``ipywidgets.HTML``; every
state change of a node redraws it, and updates reach the browser while a cell runs. Each node
is an SVG group with the classes ``qflow-node qflow-<state>``.
"""

from __future__ import annotations

import html
import json
from typing import Any

from qflow.runtime.events import NodeRun, Observer, RunState
from qflow.runtime.info import Progress, RuntimeInfo


def render_graph(run: RunState) -> str:
    """HTML of the run's graph with each node's state."""
    statuses = {nid: node.status for nid, node in run.nodes.items() if node.kind != "input"}
    head = f"<div class='qflow-graph' data-states='{html.escape(json.dumps(statuses))}'>"
    if not statuses:
        return head + "<i>No %%qflow_step cell has run yet.</i></div>"
    from qflow.graph.render import svg

    return head + svg(run.graph.to_dict(), statuses) + "</div>"


class GraphView(Observer):
    """An ``ipywidgets.HTML`` that redraws whenever a node of the run changes state."""

    def __init__(self, run: RunState) -> None:
        import ipywidgets

        self.widget = ipywidgets.HTML(value=render_graph(run))
        self.widget.add_class("qflow-graph-widget")

    def update(self, *, run: RunState, **_: Any) -> None:
        """Redraw from the run's current states."""
        self.widget.value = render_graph(run)

    run_started = graph_changed = node_started = node_finished = run_finished = update


class ProgressBars(Observer):
    """``qflow.ProgressBar`` updates of a running node shown as ``tqdm.auto`` bars."""

    def __init__(self) -> None:
        self.bars: dict[tuple[str, str], Any] = {}

    def node_info(self, *, node: NodeRun, info: RuntimeInfo, **_: Any) -> None:
        if not isinstance(info, Progress):
            return
        from tqdm.auto import tqdm

        key = (node.id, info.name)
        bar = self.bars.get(key)
        if bar is None:
            bar = self.bars[key] = tqdm(total=info.total, desc=f"{node.id}: {info.name}")
        bar.n = info.done
        if info.message:
            bar.set_postfix_str(info.message, refresh=False)
        bar.refresh()
        if info.total is not None and info.done >= info.total:
            bar.close()
            del self.bars[key]
