"""The run inspector: a run's parameters, metrics (plotted), artifacts (previewed) and graph.

:func:`inspector` is the widget ``%qflow inspect RUN_ID`` and a displayed ``qflow.api.RunView``
show (an ``ipywidgets.Tab``); :func:`static_html` is the same content as plain HTML, one
section per tab, for saved notebooks and viewers without widgets. Both are built from
:func:`sections`; nothing loaded along the way may print.
"""

from __future__ import annotations

import contextlib
import html
import io
import warnings
from typing import Any

from jupyter_ext.plot import line_plot
from jupyter_ext.preview import preview, short_repr
from qflow.api import RunView
from qflow.graph.render import COLOURS

STYLE = """<style>
.qflow-inspector table.qflow-table { border-collapse: collapse; margin: 4px 0 10px; }
.qflow-inspector table.qflow-table td, .qflow-inspector table.qflow-table th {
  padding: 2px 10px; border-bottom: 1px solid #e0e0e0; text-align: left;
  vertical-align: top; }
.qflow-inspector tr.qflow-group th { background: #f5f5f5; padding-top: 6px; }
.qflow-inspector .qflow-status { padding: 1px 6px; border-radius: 4px; border: 1px solid #bbb; }
.qflow-inspector .qflow-plots { display: flex; flex-wrap: wrap; gap: 12px; }
.qflow-inspector .qflow-error { color: #b71c1c; }
.qflow-inspector pre { white-space: pre-wrap; max-height: 24em; overflow: auto; }
</style>"""


def _value(value: Any) -> str:
    return html.escape(short_repr(value, 300))


def _seconds(duration: Any) -> str:
    if not isinstance(duration, (int, float)):
        return ""
    if duration < 0.001:
        return "< 1 ms"
    return f"{duration * 1000:.0f} ms" if duration < 1 else f"{duration:.2f} s"


def header(view: RunView) -> str:
    """The first lines: which run, its status and duration, its result and error if any."""
    lines = [f"<b>{html.escape(view.headline())}</b>"]
    if view.result is not None:  # records keep a long or non-JSON result as its repr
        shown = view.result if isinstance(view.result, str) else short_repr(view.result, 300)
        lines.append(f"result: <code>{html.escape(shown)}</code>")
    if view.error:
        lines.append(f"<pre class='qflow-error'>{html.escape(view.error.strip()[-3000:])}</pre>")
    return "<div class='qflow-header'>" + "<br>".join(lines) + "</div>"


def parameters_html(view: RunView) -> str:
    """The workflow's parameters, then each step's settings under the step's name."""
    rows = [f"<tr><td><b>{html.escape(k)}</b></td><td><code>{_value(v)}</code></td></tr>"
            for k, v in view.parameters.items()]
    if rows:
        rows.insert(0, "<tr class='qflow-group'><th colspan='2'>workflow parameters</th></tr>")
    for step, values in view.settings.items():
        if values:
            rows.append(f"<tr class='qflow-group'><th colspan='2'>{html.escape(step)}</th></tr>")
            rows += [f"<tr><td>{html.escape(k)}</td><td><code>{_value(v)}</code></td></tr>"
                     for k, v in values.items()]
    if not rows:
        return "<i>no parameters</i>"
    return f"<table class='qflow-table qflow-parameters'>{''.join(rows)}</table>"


def metrics_html(view: RunView) -> str:
    """A plot of each metric logged at several steps; a table of those with one value. Step
    durations are in the Graph tab's table, not here."""
    durations = {f"{step}.duration_s" for step in view.steps}
    plots, single = [], {}
    for name, points in view.history.items():
        if name in durations or not points:
            continue
        if len({x for x, _ in points}) > 1:
            plots.append(line_plot(name, points))
        else:
            single[name] = points[-1][1]
    parts = []
    if plots:
        parts.append(f"<div class='qflow-plots'>{''.join(plots)}</div>")
    if single:
        body = "".join(f"<tr><td><b>{html.escape(k)}</b></td><td>{v:.6g}</td></tr>"
                       for k, v in single.items())
        parts.append(f"<table class='qflow-table qflow-metrics'>{body}</table>")
    return "".join(parts) or "<i>no metrics</i>"


def _load(view: RunView, name: str) -> str:
    """The preview of one artifact, or why it could not be loaded; silently."""
    sink = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), \
                contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            return preview(view.artifacts[name])
    except Exception as exc:  # the store may be elsewhere, the library missing
        message = str(exc).strip() or type(exc).__name__
        return (f"<p class='qflow-error'>Could not load this artifact: "
                f"{html.escape(type(exc).__name__)}: {html.escape(message)}</p>")


def artifacts_html(view: RunView) -> str:
    """A preview of each step's output, loaded from the artifact store."""
    parts = [f"<div class='qflow-artifact'><h4>{html.escape(name)}</h4>{_load(view, name)}</div>"
             for name in view.artifacts]
    return "".join(parts) or "<i>no artifacts</i>"


def graph_html(view: RunView) -> str:
    """The run's graph, nodes coloured by status, and a table of the steps: status,
    duration and why they ran."""
    from qflow.graph.render import svg

    picture = ""
    if view.graph.get("nodes"):
        picture = f"<div class='qflow-graph'>{svg(view.graph, view.statuses)}</div>"
    rows = []
    for name, step in view.steps.items():
        if step.get("kind") == "input":
            continue
        status = str(step.get("status"))
        seconds = _seconds(step.get("duration"))
        reasons = "; ".join(step.get("reasons") or [])
        rows.append(f"<tr class='qflow-step'><td><b>{html.escape(name)}</b></td>"
                    f"<td><span class='qflow-status qflow-{html.escape(status)}' style='background:"
                    f"{COLOURS.get(status, COLOURS['none'])}'>{html.escape(status)}</span></td>"
                    f"<td>{seconds}</td><td>{html.escape(reasons)}</td></tr>")
    table = ""
    if rows:
        table = ("<table class='qflow-table qflow-steps'><tr><th>step</th><th>status</th>"
                 f"<th>time</th><th>why</th></tr>{''.join(rows)}</table>")
    return picture + table or "<i>no graph</i>"


def sections(view: RunView) -> list[tuple[str, str]]:
    """``(title, html)`` of each tab, in order."""
    return [("Parameters", parameters_html(view)), ("Metrics", metrics_html(view)),
            ("Artifacts", artifacts_html(view)), ("Graph", graph_html(view))]


def static_html(view: RunView) -> str:
    """The inspector as plain HTML: the header, then one section per tab."""
    body = "".join(f"<section class='qflow-section'><h3>{title}</h3>{content}</section>"
                   for title, content in sections(view))
    return f"<div class='qflow-inspector'>{STYLE}{header(view)}{body}</div>"


def inspector(view: RunView) -> Any:
    """An ``ipywidgets.VBox`` for ``view``: the header and a Tab of Parameters, Metrics,
    Artifacts and Graph."""
    import ipywidgets

    parts = sections(view)
    tabs = ipywidgets.Tab(children=[ipywidgets.HTML(content) for _, content in parts])
    for i, (title, _) in enumerate(parts):
        tabs.set_title(i, title)
    box = ipywidgets.VBox([ipywidgets.HTML(STYLE + header(view)), tabs])
    box.add_class("qflow-inspector")
    return box
