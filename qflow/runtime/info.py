"""Runtime information a step yields while it computes: metrics and progress.

A step whose ``apply`` is a generator yields these; the workflow forwards them with
``yield from``. They travel to every observer of the run (console, trackers, widgets).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RuntimeInfo:
    """Base of everything a step may yield while it runs."""


@dataclass(frozen=True)
class Metric(RuntimeInfo):
    """A named number, optionally at a step index (an epoch, an iteration)."""

    name: str
    value: float
    step: int | None = None


@dataclass(frozen=True)
class Progress(RuntimeInfo):
    """The state of a progress bar after an update."""

    name: str
    done: float
    total: float | None
    message: str = ""


REPORTER: ContextVar[Callable[[RuntimeInfo], None] | None] = ContextVar("qflow_reporter",
                                                                       default=None)
"""Where runtime info goes when nothing yields it (a computing step or notebook step cell sets it)."""


def report(info: RuntimeInfo) -> None:
    """Report ``info`` (a ``Metric``, a progress update) where nothing can ``yield`` it.

    In a step's ``apply()`` (a plain function too) or any helper it calls, and in a
    ``%%qflow_step`` cell, the info goes where yielded info goes: the console, trackers,
    widgets, a tuner's pruning. Outside a computing step it is dropped, so a helper that
    reports can also be called on its own::

        def train_epoch(model, data, epoch):
            ...
            qflow.report(qflow.Metric(name="loss", value=loss, step=epoch))
    """
    if not isinstance(info, RuntimeInfo):
        raise TypeError(f"qflow.report() takes a Metric or another RuntimeInfo, got "
                        f"{type(info).__name__}; for a number write "
                        f"qflow.report(qflow.Metric(name=..., value=...)).")
    reporter = REPORTER.get()
    if reporter is not None:
        reporter(info)


@dataclass
class ProgressBar:
    """A progress bar a step advances: ``yield bar.update(1, message="loss=0.1")``.

    Where there is nothing to yield to (a plain ``apply()``, a helper, a ``%%qflow_step``
    cell), ``bar.update(1)`` alone shows the bar: it is reported as with :func:`report`.
    """

    name: str
    total: float | None = None
    done: float = field(default=0)

    def update(self, n: float = 1, *, message: str = "") -> Progress:
        """Advance by ``n`` and return the ``Progress`` event to yield."""
        self.done += n
        event = Progress(name=self.name, done=self.done, total=self.total, message=message)
        report(event)
        return event
