"""Live views of runs in a notebook: the graph with each node's state, and progress bars.

API (for the magics and the notebook session):

- :class:`LiveView` — an :class:`~qflow.runtime.events.Observer` that shows one run. On
  ``run_started`` it displays the whole graph (every node pending) and a box for progress
  bars; node events recolour the nodes, ``Progress`` infos move ``ipywidgets`` bars, and on
  ``run_finished`` the output becomes a static picture of the final state (see
  :mod:`jupyter_ext.display`). ``graph_changed`` (a growing notebook session) redraws the
  graph. For a run already under way: ``start(run)`` then ``show()``. ``freeze()`` leaves
  the picture alone in the output, which the view keeps updating by its display id while
  events come (also from later cells).
  ``LiveView(live=False)`` never makes widgets: ``show()`` displays the picture (a finished
  run replayed from its event log).
- :func:`live_view` — the factory ``%load_ext qflow`` registers with
  :func:`qflow.runtime.views.add_view`: a ``LiveView`` for every run started in a kernel.
- :class:`ProgressBars` — a notebook session's observer: each step cell's bars in that
  cell's output (a ``LiveView(graph=False)`` per running step, frozen when it finishes).
  ``%qflow graph`` is a ``LiveView(live=False, bars=False)`` of the session's run.
- :func:`graph_html` — the graph as HTML (Graphviz SVG in ``<div class="qflow-graph"
  data-states=...>``); every node is ``<g id="qflow-node-ID" class="node qflow-node
  qflow-STATUS">``.
- :class:`Bars` — progress bars as widgets and as HTML (the view throttles them).

Updates are throttled: a view redraws at most ten times a second (less when drawing the graph
takes long), and a bar's last value is always shown; a deferred update is sent by a timer
thread (widget updates reach the browser from any thread). Hooks are called on the thread
that drives the run, also for a run on a Dask cluster.
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from jupyter_ext import display
from qflow.runtime.console import summarise
from qflow.runtime.events import NodeRun, Observer, RunState
from qflow.runtime.info import Progress, RuntimeInfo

INTERVAL = 0.1
"""Seconds between two redraws of a view (at most ten a second)."""


# -- the graph ------------------------------------------------------------------------------------
def graph_html(graph: Mapping[str, Any], statuses: Mapping[str, str] | None = None) -> str:
    """HTML of a described graph (``Graph.to_dict()``) with each node's status."""
    states = html.escape(json.dumps(dict(statuses or {})), quote=True)
    if not graph.get("nodes"):
        return f"<div class='qflow-graph' data-states='{states}'><i>No steps yet.</i></div>"
    from qflow.graph.render import svg

    picture = svg(dict(graph), statuses)
    return f"<div class='qflow-graph' data-states='{states}' style='overflow-x:auto'>{picture}</div>"


def described(run: RunState) -> dict[str, Any]:
    """The run's graph as a described dict (of a built ``Graph`` or a ``DescribedGraph``)."""
    return run.graph.to_dict()


def statuses(run: RunState) -> dict[str, str]:
    """``{node id: status}`` of the run now."""
    return {nid: node.status for nid, node in run.nodes.items()}


# -- progress bars --------------------------------------------------------------------------------
class _Bar:
    """One bar: the newest value, the value last shown and, while live, its widgets."""

    def __init__(self, label: str, live: bool) -> None:
        self.label = label
        self.latest: Progress | None = None
        self.shown: Progress | None = None
        self.style = ""
        self.box: Any = None
        if live:
            import ipywidgets

            self.progress = ipywidgets.FloatProgress(value=0.0, min=0.0, max=1.0,
                                                     layout=ipywidgets.Layout(width="40%"))
            self.text = ipywidgets.HTML()
            self.box = ipywidgets.HBox([ipywidgets.HTML(f"<b>{html.escape(label)}</b>"),
                                        self.progress, self.text])
            self.box.add_class("qflow-bar")

    def count(self) -> str:
        info = self.latest
        if info is None:
            return ""
        done = f"{info.done:g}" + (f"/{info.total:g}" if info.total is not None else "")
        return done + (f"  {info.message}" if info.message else "")

    def send(self) -> None:
        """Show the newest value in the widgets."""
        info = self.latest
        if info is None or self.box is None:
            return
        with self.progress.hold_sync():
            if info.total:
                self.progress.max = float(info.total)
                self.progress.value = float(min(info.done, info.total))
            else:  # an unknown total: a full bar and a count
                self.progress.value = self.progress.max
            self.progress.bar_style = self.style or ("" if info.total else "info")
        self.text.value = html.escape(self.count())
        self.shown = info

    def html(self) -> str:
        info = self.latest or Progress(name="", done=0, total=None)
        total = info.total if info.total else 1
        done = min(info.done, total) if info.total else total
        return (f"<div class='qflow-bar' data-state='{self.style or 'running'}'>"
                f"<b>{html.escape(self.label)}</b> <progress value='{done:g}' max='{total:g}'>"
                f"</progress> {html.escape(self.count())}</div>")


class Bars:
    """The progress bars of a run: a ``VBox`` of bars while live, and their HTML picture.

    :meth:`update` keeps the newest ``Progress`` of a bar; :meth:`send` shows what changed
    (the caller throttles); :meth:`finish` marks a node's bars done or failed; after
    :meth:`close` the bars exist only as HTML.
    """

    def __init__(self, *, live: bool = True) -> None:
        self.bars: dict[tuple[str, str], _Bar] = {}
        self.widget: Any = None
        if live:
            import ipywidgets

            self.widget = ipywidgets.VBox([])
            self.widget.add_class("qflow-bars")

    def update(self, node: str, info: Progress) -> None:
        """Keep ``info`` as the newest state of bar ``info.name`` of ``node``."""
        key = (node, info.name)
        bar = self.bars.get(key)
        if bar is None:
            bar = self.bars[key] = _Bar(f"{node}: {info.name}", live=self.widget is not None)
            if self.widget is not None:
                self.widget.children = (*self.widget.children, bar.box)
        bar.latest = info

    def finish(self, node: NodeRun) -> None:
        """Colour the bars of ``node``, which finished (green when it ran, red when not)."""
        for (nid, _), bar in self.bars.items():
            if nid == node.id:
                bar.style = "success" if node.status == "ran" else "danger"
                bar.shown = None

    def send(self) -> None:
        """Show every bar whose newest state is not shown yet."""
        for bar in list(self.bars.values()):
            if bar.latest is not bar.shown:
                bar.send()

    def html(self) -> str:
        """The bars as HTML ``<progress>`` elements with their counts."""
        inner = "".join(bar.html() for bar in self.bars.values())
        return f"<div class='qflow-bars'>{inner}</div>" if inner else ""

    def close(self) -> None:
        """Close the widgets (the output shows the HTML now)."""
        if self.widget is not None:
            _close(self.widget)
            self.widget = None
            for bar in self.bars.values():
                bar.box = None


# -- the view of a run ----------------------------------------------------------------------------
class LiveView(Observer):
    """Shows one run in the notebook: live widgets, then a static picture (module doc).

    ``LiveView(live=False)`` shows no widgets, only the picture, and only once :meth:`show`
    is called (a finished run replayed from its events); ``LiveView(graph=False)`` shows
    the bars alone (a notebook step cell's), ``LiveView(bars=False)`` the graph alone. After :meth:`freeze` the view
    still follows events (a notebook session's later cells): it updates its picture in place
    by its display id, at most ten times a second and always when a node starts or finishes.
    """

    def __init__(self, *, live: bool = True, graph: bool = True, bars: bool = True) -> None:
        self._use_widgets = live
        self._with_graph = graph
        self._with_bars = bars
        self.run: RunState | None = None
        self.handle: Any = None
        self.widget: Any = None
        self.graph: Any = None
        self.bars: Bars | None = None
        self._described: dict[str, Any] | None = None
        self._drawn: dict[str, str] | None = None
        self._drawing = ""
        self._sent = ""
        self._lock = threading.RLock()
        self._timer: threading.Timer | None = None
        self._last = 0.0
        self._interval = INTERVAL

    @property
    def live(self) -> bool:
        """Whether the output shows the widgets (``False`` once frozen)."""
        return self.widget is not None

    # display ---------------------------------------------------------------------------------
    def start(self, run: RunState) -> None:
        """Follow ``run`` from now on (without showing it yet)."""
        with self._lock:
            self.run = run
            self._described, self._drawn = None, None
            self.bars = Bars(live=self._use_widgets)

    def show(self) -> None:
        """Display the view in the current cell's output: the widgets with their picture,
        or the picture alone for ``live=False``."""
        with self._lock:
            if self.run is None or self.bars is None:
                raise RuntimeError("LiveView.show() before start(run)")
            if self._use_widgets:
                import ipywidgets

                parts = [self.bars.widget]
                if self._with_graph:
                    self.graph = ipywidgets.HTML(self._graph_html())
                    self.graph.add_class("qflow-graph-widget")
                    parts.insert(0, self.graph)
                self.widget = ipywidgets.VBox(parts)
                self.widget.add_class("qflow-live")
            self._sent = self.html()
            self.handle = display.show(self.widget, self._sent, self.text())

    def html(self) -> str:
        """The static picture of the view now: a caption, the graph and the bars."""
        run = self.run
        if run is None:
            return ""
        if not self._with_graph:
            return self.bars.html() if self.bars else ""
        caption = (f"<div class='qflow-caption' data-status='{html.escape(run.status)}'>"
                   f"{html.escape(self.text())}</div>")
        bars = self.bars.html() if self.bars else ""
        return f"<div class='qflow-run'>{caption}{self._graph_html()}{bars}</div>"

    def text(self) -> str:
        """One line for ``text/plain``: the workflow, the run id and how the run stands."""
        run = self.run
        if run is None:
            return ""
        if not self._with_graph:
            return "\n".join(f"{bar.label}: {bar.count()}"
                             for bar in (self.bars.bars.values() if self.bars else ()))
        line = f"{run.workflow}: run {run.run_id} {run.status}"
        if run.ended is not None:
            line += f" in {run.duration:.2f} s ({summarise(run.counts())})"
        return line

    def freeze(self) -> None:
        """Replace the widgets by the picture of the current state (what a saved notebook
        keeps: without its kernel, JupyterLab cannot draw a widget)."""
        with self._lock:
            self._cancel()
            if self.widget is None:
                self._flush()
                return
            self._flush()
            self._sent = self.html()
            if self.handle is not None:
                display.refresh(self.handle, None, self._sent, self.text())
            if self.bars is not None:
                self.bars.close()
            _close(self.widget)
            self.widget = self.graph = None

    # hooks -----------------------------------------------------------------------------------
    def run_started(self, *, run: RunState, **_: Any) -> None:  # noqa: D102
        self.start(run)
        if self._use_widgets:
            self.show()

    def graph_changed(self, *, run: RunState, **_: Any) -> None:
        """The run's graph grew (a notebook session): redraw it whole."""
        with self._lock:
            self.run = run
            self._described = None
        self._changed(final=True)

    def node_started(self, *, run: RunState, node: NodeRun, **_: Any) -> None:  # noqa: D102
        self._changed(final=True)

    def node_info(self, *, run: RunState, node: NodeRun, info: RuntimeInfo,  # noqa: D102
                  **_: Any) -> None:
        if isinstance(info, Progress) and self.bars is not None and self._with_bars:
            with self._lock:
                self.bars.update(node.id, info)
            self._changed()

    def node_finished(self, *, run: RunState, node: NodeRun, **_: Any) -> None:  # noqa: D102
        if self.bars is not None:
            with self._lock:
                self.bars.finish(node)
        self._changed(final=True)

    def run_finished(self, *, run: RunState, **_: Any) -> None:  # noqa: D102
        self.freeze()

    # throttled redraws -----------------------------------------------------------------------
    def _graph_html(self) -> str:
        """The graph now, drawn again only when a state or the graph changed."""
        assert self.run is not None
        now = statuses(self.run)
        if self._described is None or now != self._drawn:
            self._described = self._described or described(self.run)
            self._drawn, self._drawing = now, graph_html(self._described, now)
        return self._drawing

    def _changed(self, *, final: bool = False) -> None:
        """Redraw now, or once an interval has passed since the last redraw.

        While live, a timer sends a deferred redraw. A frozen view updates its output from
        the thread running the cell only (an output update from another thread could reach
        no cell), so it skips a redraw that comes too soon unless it is ``final`` (a node
        started or finished), which keeps the picture true between progress updates.
        """
        with self._lock:
            wait = self._last + self._interval - time.monotonic()
            if wait <= 0 or (final and not self.live):
                self._flush()
            elif self.live and self._timer is None:
                self._timer = threading.Timer(wait, self._tick)
                self._timer.daemon = True
                self._timer.start()

    def _tick(self) -> None:
        with self._lock:
            self._timer = None
            if self.live:  # not frozen meanwhile: only widgets are updated from this thread
                self._flush()

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _flush(self) -> None:
        """Send what changed since the last redraw: to the widgets, or the whole picture."""
        if self.run is None:
            return
        self._last = start = time.monotonic()
        if self.live:
            if self.graph is not None and (self._described is None
                                           or statuses(self.run) != self._drawn):
                self.graph.value = self._graph_html()
        elif self.handle is not None:
            picture = self.html()
            if picture != self._sent:
                self._sent = picture
                display.refresh(self.handle, None, picture, self.text())
        # a graph that takes long to draw is drawn less often
        self._interval = max(INTERVAL, 3 * (time.monotonic() - start))
        if self.bars is not None:
            self.bars.send()


def _close(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close(child)
    widget.close()


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def live_view() -> LiveView | None:
    """A :class:`LiveView` for a run started in a Jupyter kernel; ``None`` elsewhere (a
    terminal IPython keeps the text console)."""
    return LiveView() if _in_kernel() else None


# -- a notebook session's step cells -------------------------------------------------------------
class ProgressBars(Observer):
    """The bars of a notebook session's step cells: each step's bars in the output of the
    cell running it, live, then a picture of their last values once the step finishes."""

    def __init__(self) -> None:
        self.views: dict[str, LiveView] = {}

    def node_info(self, *, run: RunState, node: NodeRun, info: RuntimeInfo,  # noqa: D102
                  **_: Any) -> None:
        if not isinstance(info, Progress):
            return
        view = self.views.get(node.id)
        if view is None:
            view = self.views[node.id] = LiveView(graph=False)
            view.start(run)
            view.node_info(run=run, node=node, info=info)
            view.show()  # with the first bar in its picture
            return
        view.node_info(run=run, node=node, info=info)

    def node_finished(self, *, run: RunState, node: NodeRun, **_: Any) -> None:  # noqa: D102
        view = self.views.pop(node.id, None)
        if view is not None:
            view.node_finished(run=run, node=node)
            view.freeze()
