"""Runtime information a step yields while it computes: metrics and progress.

A step whose ``apply`` is a generator yields these; the workflow forwards them with
``yield from``. They travel to every observer of the run (console, trackers, widgets).
"""

from __future__ import annotations

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


@dataclass
class ProgressBar:
    """A progress bar a step advances: ``yield bar.update(1, message="loss=0.1")``."""

    name: str
    total: float | None = None
    done: float = field(default=0.0)

    def update(self, n: float = 1, *, message: str = "") -> Progress:
        """Advance by ``n`` and return the :class:`Progress` event to yield."""
        self.done += n
        return Progress(name=self.name, done=self.done, total=self.total, message=message)
