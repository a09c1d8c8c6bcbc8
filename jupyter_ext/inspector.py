"""The run inspector: tabs for a run's parameters, metrics (plotted), artifacts and graph."""

from __future__ import annotations

import html
from typing import Any

from qflow.api import RunView


def _table(rows: dict[str, Any]) -> str:
    if not rows:
        return "<i>none</i>"
    body = "".join(f"<tr><td><b>{html.escape(str(k))}</b></td><td>{html.escape(repr(v))}</td></tr>"
                   for k, v in rows.items())
    return f"<table class='qflow-table'>{body}</table>"


def plot(points: list[tuple[int, float]], width: int = 320, height: int = 90) -> str:
    """A small SVG line chart of ``(step, value)`` points."""
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    sx = (width - 10) / ((x1 - x0) or 1)
    sy = (height - 10) / ((y1 - y0) or 1)
    path = " ".join(f"{5 + (x - x0) * sx:.1f},{height - 5 - (y - y0) * sy:.1f}"
                    for x, y in points)
    return (f"<svg class='qflow-plot' width='{width}' height='{height}'>"
            f"<polyline fill='none' stroke='#1976d2' stroke-width='1.5' points='{path}'/></svg>")


def preview(value: Any) -> str:
    """HTML preview of an artifact: a frame's head, an array's shape and summary, an image."""
    kind = type(value).__module__.split(".")[0]
    if kind == "pandas" and hasattr(value, "head"):
        return f"<p>{type(value).__name__} {getattr(value, 'shape', '')}</p>" \
            + value.head()._repr_html_() if hasattr(value.head(), "_repr_html_") \
            else html.escape(repr(value.head()))
    if kind == "numpy" and hasattr(value, "shape"):
        import numpy as np

        text = f"array shape {value.shape}, dtype {value.dtype}"
        if value.size and np.issubdtype(value.dtype, np.number):
            text += (f", min {value.min():.4g}, max {value.max():.4g}, "
                     f"mean {value.mean():.4g}")
        image = ""
        if value.ndim in (2, 3) and value.dtype == np.uint8:
            image = _png(value)
        return f"<p>{html.escape(text)}</p>{image}"
    if hasattr(value, "_repr_png_"):
        import base64

        return f"<img src='data:image/png;base64,{base64.b64encode(value._repr_png_()).decode()}'>"
    text = repr(value)
    return f"<pre>{html.escape(text[:2000])}</pre>"


def _png(array: Any) -> str:
    try:
        import base64
        import io

        from PIL import Image
    except ImportError:
        return ""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return f"<img class='qflow-image' src='data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}'>"


def inspector(view: RunView) -> Any:
    """An ``ipywidgets.Tab`` for ``view``: Parameters, Metrics, Artifacts, Graph."""
    import ipywidgets

    from qflow.graph.render import COLOURS

    duration = f" in {view.duration:.2f} s" if view.duration is not None else ""
    header = ipywidgets.HTML(f"<b>{html.escape(view.run_id)}</b> of "
                             f"{html.escape(str(view.workflow))}: <b>{view.status}</b>{duration}"
                             f" — result {html.escape(repr(view.result))}")
    metrics = "".join(f"<div><b>{html.escape(name)}</b> = {points[-1][1]:.4g}<br>"
                      f"{plot(points)}</div>" for name, points in view.history.items() if points)
    artifacts = []
    for name in view.artifacts:
        try:
            body = preview(view.artifacts[name])
        except Exception as exc:  # the store may be elsewhere
            body = f"<i>{html.escape(str(exc))}</i>"
        artifacts.append(f"<h4>{html.escape(name)}</h4>{body}")
    steps = "".join(f"<li style='background:{COLOURS.get(s['status'], '#fff')}'>"
                    f"{html.escape(n)}: {html.escape(str(s['status']))}</li>"
                    for n, s in view.steps.items() if s.get("kind") != "input")
    tabs = ipywidgets.Tab(children=[
        ipywidgets.HTML(_table(view.parameters)),
        ipywidgets.HTML(metrics or "<i>no metrics</i>"),
        ipywidgets.HTML("".join(artifacts) or "<i>no artifacts</i>"),
        ipywidgets.HTML(f"<ul class='qflow-steps'>{steps}</ul>"),
    ])
    for i, title in enumerate(["Parameters", "Metrics", "Artifacts", "Graph"]):
        tabs.set_title(i, title)
    box = ipywidgets.VBox([header, tabs])
    box.add_class("qflow-inspector")
    return box
