"""Views the environment adds to every run (the live graph in a notebook).

A front end that can show runs better than the text console registers a *view factory*: a
callable with no arguments that returns an :class:`~qflow.runtime.events.Observer` for one
run, or ``None`` when it cannot show this one. Launchers add the views to the observers of
every run they start, after the run recorder, so ``qflow.run(...)``, ``qflow.launch(...)`` and
a launcher used directly all show them. The Jupyter extension registers its live view here
when it is loaded (``%load_ext qflow``); the engine itself never imports it.

While a view is present, the console prints its lines to standard output without progress
bars: the view shows the bars, and the lines read as ordinary output below it.
"""

from __future__ import annotations

from collections.abc import Callable

from qflow.runtime.events import Observer

ViewFactory = Callable[[], "Observer | None"]
"""Makes the view of one run, or returns ``None`` to show nothing for it."""

_FACTORIES: list[ViewFactory] = []


def add_view(factory: ViewFactory) -> None:
    """Show every run started from now on in a view made by ``factory`` (added once)."""
    if factory not in _FACTORIES:
        _FACTORIES.append(factory)


def remove_view(factory: ViewFactory) -> None:
    """Stop making views with ``factory`` (no error if it was not added)."""
    if factory in _FACTORIES:
        _FACTORIES.remove(factory)


def views() -> list[Observer]:
    """A fresh view of the run about to start from each registered factory."""
    made = (factory() for factory in list(_FACTORIES))
    return [view for view in made if view is not None]
