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
"""Where runtime info goes when nothing yields it (a notebook step cell sets this)."""


@dataclass
class ProgressBar:
    """A progress bar a step advances: ``yield bar.update(1, message="loss=0.1")``.

    In a ``%%qflow_step`` cell, where there is nothing to yield to, ``bar.update(1)`` alone
    shows the bar.
    """

    name: str
    total: float | None = None
    done: float = field(default=0)

    def update(self, n: float = 1, *, message: str = "") -> Progress:
        """Advance by ``n`` and return the ``Progress`` event to yield."""
        self.done += n
        event = Progress(name=self.name, done=self.done, total=self.total, message=message)
        report = REPORTER.get()
        if report is not None:
            report(event)
        return event
