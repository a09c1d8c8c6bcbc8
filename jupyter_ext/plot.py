"""Metric plots for the run inspector: small SVG line charts with axes, ticks and labels.

Drawn by hand (no plotting library to import): the x axis is the metric's step index, the y
axis its value; ticks fall on round numbers.
"""

from __future__ import annotations

import html
import math

WIDTH, HEIGHT = 380, 200
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 26, 38  # margins around the plotting area


def ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round values covering ``low..high`` (about ``count`` of them): steps of 1, 2 or 5
    times a power of ten; whole numbers only if ``integer``."""
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if integer:
        step = max(1.0, round(step))
    first = math.floor(low / step) * step
    out, value = [], first
    while value <= high + step * 1e-9:
        out.append(round(value, 12))
        value += step
    if out[-1] < high:
        out.append(round(value, 12))
    return out


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e6:
        return str(int(value))
    return f"{value:.4g}"


def line_plot(name: str, points: list[tuple[int, float]], width: int = WIDTH,
              height: int = HEIGHT) -> str:
    """An SVG line chart of a metric's ``(step, value)`` points: x axis "step" and y axis with
    tick labels, the metric's name and its last value as the title."""
    if not points:
        return ""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    finite = [y for y in ys if math.isfinite(y)] or [0.0]
    xt = ticks(min(xs), max(xs), integer=True)
    yt = ticks(min(finite), max(finite))
    x0, x1, y0, y1 = xt[0], xt[-1], yt[0], yt[-1]
    inner_w, inner_h = width - LEFT - RIGHT, height - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / ((x1 - x0) or 1) * inner_w

    def py(y: float) -> float:
        return TOP + inner_h - (y - y0) / ((y1 - y0) or 1) * inner_h

    parts = [f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="#fafafa"/>']
    for x in xt:
        parts.append(f'<line class="qflow-tick" x1="{px(x):.1f}" y1="{TOP + inner_h}" '
                     f'x2="{px(x):.1f}" y2="{TOP + inner_h + 4}" stroke="#333"/>'
                     f'<text class="qflow-tick-label" x="{px(x):.1f}" y="{TOP + inner_h + 16}" '
                     f'text-anchor="middle">{_fmt(x)}</text>')
    for y in yt:
        parts.append(f'<line x1="{LEFT}" y1="{py(y):.1f}" x2="{LEFT + inner_w}" y2="{py(y):.1f}" '
                     f'stroke="#e0e0e0"/>'
                     f'<line class="qflow-tick" x1="{LEFT - 4}" y1="{py(y):.1f}" x2="{LEFT}" '
                     f'y2="{py(y):.1f}" stroke="#333"/>'
                     f'<text class="qflow-tick-label" x="{LEFT - 7}" y="{py(y) + 4:.1f}" '
                     f'text-anchor="end">{_fmt(y)}</text>')
    parts.append(f'<line class="qflow-axis qflow-x-axis" x1="{LEFT}" y1="{TOP + inner_h}" '
                 f'x2="{LEFT + inner_w}" y2="{TOP + inner_h}" stroke="#333"/>'
                 f'<line class="qflow-axis qflow-y-axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" '
                 f'y2="{TOP + inner_h}" stroke="#333"/>')
    shown = [(x, y) for x, y in points if math.isfinite(y)]
    path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in shown)
    parts.append(f'<polyline fill="none" stroke="#1976d2" stroke-width="1.8" points="{path}"/>')
    if len(shown) <= 40:
        parts += [f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="#1976d2"/>'
                  for x, y in shown]
    last = points[-1]
    title = f"{name} = {_fmt(last[1])} (step {last[0]})"
    parts.append(f'<text class="qflow-plot-title" x="{LEFT}" y="{TOP - 9}" font-weight="bold">'
                 f'{html.escape(title)}</text>'
                 f'<text class="qflow-axis-label" x="{LEFT + inner_w / 2:.1f}" y="{height - 6}" '
                 f'text-anchor="middle">step</text>')
    return (f'<svg class="qflow-plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, '
            f'sans-serif" font-size="11">{"".join(parts)}</svg>')
