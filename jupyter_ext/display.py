"""Outputs that keep their picture: a live widget shown with a static HTML picture of itself.

A widget needs a running kernel: a notebook reopened without one, nbconvert's HTML and a
notebook rendered on a code host cannot draw it. So every live view is displayed as one
output (with a display id) whose data holds the widget view *and* ``text/html`` of the same
state, and when the view reaches its final state the output is replaced by the static
picture alone: JupyterLab draws the widget-view data whenever it is present and, without the
widget's model, shows "Error displaying widget: model not found" instead of falling back to
the HTML beside it.

- :func:`show` displays a widget with its picture and returns the display handle;
- :func:`refresh` updates that output: the widget with a newer picture, or the picture alone
  (``widget=None``) once the view is final.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from IPython.display import DisplayHandle

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def bundle(widget: Any | None, html: str, text: str) -> dict[str, Any]:
    """The display data: ``text/plain`` (``text``), ``text/html`` and, for a live view, the
    widget's view (never its repr as text)."""
    data: dict[str, Any] = {}
    if widget is not None:
        data.update(widget._repr_mimebundle_())
    data["text/plain"] = text
    data["text/html"] = html
    return data


def show(widget: Any | None, html: str, text: str = "") -> DisplayHandle:
    """Display ``widget`` with ``html`` (its picture) in the cell's output; the handle updates
    that output in place."""
    from IPython.display import display

    return display(bundle(widget, html, text), raw=True, display_id=True)


def refresh(handle: DisplayHandle, widget: Any | None, html: str, text: str = "") -> None:
    """Replace the output of ``handle``: the live ``widget`` with a newer picture, or only the
    picture when ``widget`` is ``None`` (the view is final; saved notebooks show this)."""
    handle.update(bundle(widget, html, text), raw=True)
