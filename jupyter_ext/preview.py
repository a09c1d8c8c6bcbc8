"""Artifact previews for the run inspector: a value as a short piece of HTML.

A DataFrame shows its head and shape, an array its shape, dtype and range (and the picture
when it is an image), a pydantic model its fields, a scikit-learn estimator its parameters;
anything with ``_repr_png_`` its picture, and the rest a shortened ``repr``. Types are
recognised by the qualified names of their classes, so no library is imported to ask.
"""

from __future__ import annotations

import base64
import html
import struct
import zlib
from collections.abc import Callable
from typing import Any

REPR_LIMIT = 2000  # characters of a repr shown
ROWS = 10  # rows of a DataFrame's head
IMAGE_SIDE = 512  # pixels: larger images are shown subsampled


def _table(rows: dict[str, Any], head: tuple[str, ...] = ()) -> str:
    header = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" if head else ""
    body = "".join(f"<tr><td><b>{html.escape(str(k))}</b></td>"
                   + "".join(f"<td>{html.escape(str(c))}</td>"
                             for c in (v if isinstance(v, tuple) else (v,))) + "</tr>"
                   for k, v in rows.items())
    return f"<table class='qflow-table'>{header}{body}</table>"


def short_repr(value: Any, limit: int = REPR_LIMIT) -> str:
    """``repr(value)``, cut at ``limit`` characters with "… (N more characters)"."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the inspector
        return f"<{type(value).__name__} (its repr failed: {exc})>"
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def _frame(value: Any) -> str:
    rows, columns = value.shape if value.ndim == 2 else (value.shape[0], 1)
    kind = type(value).__name__
    shape = f"{rows:,} rows × {columns:,} columns" if value.ndim == 2 else f"{rows:,} values"
    head = value.head(ROWS)
    table = head.to_frame().to_html() if value.ndim == 1 else head.to_html()
    more = f"<p><i>first {ROWS} rows</i></p>" if rows > ROWS else ""
    return f"<p class='qflow-shape'>{kind}: {shape}</p><div class='qflow-frame'>{table}</div>{more}"


def _array(value: Any) -> str:
    import numpy as np

    text = f"ndarray: shape {value.shape}, dtype {value.dtype}"
    if value.size and (np.issubdtype(value.dtype, np.number) or value.dtype == bool):
        numbers = value.astype(float) if value.dtype == bool else value
        with np.errstate(all="ignore"):
            low, high, mean = np.nanmin(numbers), np.nanmax(numbers), np.nanmean(numbers)
        text += f", min {low:.4g}, max {high:.4g}, mean {mean:.4g}"
    image = ""
    if value.dtype == np.uint8 and value.ndim in (2, 3) and value.size:
        picture, note = value, ""
        if value.ndim == 3 and value.shape[-1] not in (1, 3, 4):  # a stack of grey images
            picture, note = value[0], f"<p><i>the first of {value.shape[0]:,} images</i></p>"
        if picture.ndim == 3 and picture.shape[-1] == 1:
            picture = picture[..., 0]
        image = _img(png(picture)) + note
    return f"<p class='qflow-shape'>{html.escape(text)}</p>{image}"


def png(pixels: Any) -> bytes:
    """A PNG of a ``uint8`` array: 2-D grey, or 3-D with 3 (RGB) or 4 (RGBA) channels;
    subsampled to at most ``IMAGE_SIDE`` pixels a side."""
    step = max(1, -(-max(pixels.shape[:2]) // IMAGE_SIDE))
    pixels = pixels[::step, ::step]
    height, width = pixels.shape[:2]
    colour = {2: 0, 3: 2, 4: 6}[pixels.shape[-1] if pixels.ndim == 3 else 2]
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _img(data: bytes) -> str:
    return (f"<img class='qflow-image' style='image-rendering: pixelated; max-width: 100%' "
            f"src='data:image/png;base64,{base64.b64encode(data).decode()}'>")


def _model(value: Any) -> str:
    fields = type(value).model_fields
    rows = {name: (short_repr(getattr(value, name), 200),
                   getattr(info.annotation, "__name__", str(info.annotation)))
            for name, info in fields.items()}
    return (f"<p class='qflow-shape'>{html.escape(type(value).__name__)} (pydantic model)</p>"
            + _table(rows, ("field", "value", "type")))


def _estimator(value: Any) -> str:
    params = {k: short_repr(v, 200) for k, v in value.get_params(deep=False).items()}
    fitted = any(k.endswith("_") and not k.startswith("_") for k in vars(value))
    state = "fitted" if fitted else "not fitted"
    return (f"<p class='qflow-shape'>{html.escape(type(value).__name__)} (scikit-learn "
            f"estimator, {state})</p>" + _table(params, ("parameter", "value")))


PREVIEWS: dict[str, Callable[[Any], str]] = {
    "pandas.core.frame.DataFrame": _frame,
    "pandas.DataFrame": _frame,
    "pandas.core.series.Series": _frame,
    "pandas.Series": _frame,
    "numpy.ndarray": _array,
    "pydantic.main.BaseModel": _model,
    "sklearn.base.BaseEstimator": _estimator,
}
"""Qualified class name -> preview; a value's classes (its MRO) are looked up in order."""


def preview(value: Any) -> str:
    """HTML preview of one artifact value; several outputs (a tuple) are previewed each."""
    if isinstance(value, tuple) and value:
        return "".join(f"<div class='qflow-output'><b>[{i}]</b> {preview(v)}</div>"
                       for i, v in enumerate(value))
    for klass in type(value).__mro__:
        found = PREVIEWS.get(f"{klass.__module__}.{klass.__qualname__}")
        if found is not None:
            return found(value)
    if hasattr(value, "_repr_png_"):
        data = value._repr_png_()
        if isinstance(data, tuple):  # (data, metadata)
            data = data[0]
        if data:
            return _img(data if isinstance(data, bytes) else base64.b64decode(data))
    return f"<pre class='qflow-repr'>{html.escape(short_repr(value))}</pre>"
