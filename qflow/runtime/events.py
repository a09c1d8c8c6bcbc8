"""The run's state and the observers that watch it (console, run record, trackers, widgets).

Observers implement any of the hook methods of :class:`Observer`; hooks are called with
keyword arguments only, so a hook that takes ``**_`` keeps working when new ones are added.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

from qflow.runtime.info import RuntimeInfo

NodeStatus = Literal["pending", "running", "ran", "cached", "inline", "failed", "skipped", "input",
                     "stale"]
"""What happened to a node; the console, run records, ``qflow ps``, trackers and widgets all use
these words. ``inline`` is an uncached provider: it is neither computed nor stored on its own,
but evaluated inside each step that reads it (and not at all when those steps are cached).
``stale`` is a notebook step cell whose upstream cell changed since it ran."""

RunKind = Literal["workflow", "notebook"]
"""A workflow run (its graph is known when it starts) or a notebook session (its graph grows
as step cells run; it ends when the kernel stops or the headless run ends)."""


class StopRun(BaseException):
    """Raised by an observer to stop a run early (a tuner pruning a trial); not a failure."""

    def __init__(self, status: str = "pruned", reason: str = "") -> None:
        super().__init__(reason or status)
        self.status = status
        self.reason = reason
        self.run_id: str | None = None  # set by the run driver


@dataclass
class NodeRun:
    """What happened to one node in a run."""

    id: str
    kind: str
    status: NodeStatus = "pending"
    key: str | None = None
    duration: float = 0.0
    reasons: list[str] = field(default_factory=list)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    components: dict[str, Any] | None = None
    components_json: str | None = field(default=None, repr=False, compare=False)
    """``components`` as JSON text, when known (the run record reuses it); not in
    :meth:`to_dict`."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for run records and trackers."""
        entry = dict(vars(self))
        del entry["components_json"]
        return entry


@dataclass
class RunState:
    """A run as observers see it; ``result`` and ``status`` are set when it ends."""

    run_id: str
    workflow: str
    parameters: dict[str, Any]
    graph: Any
    nodes: dict[str, NodeRun]
    root: Any = None
    store: Any = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    status: str = "running"  # running | succeeded | failed | killed | pruned
    result: Any = None
    result_key: list[str] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    failed_step: str | None = None
    kind: RunKind = "workflow"

    @property
    def duration(self) -> float:
        """Seconds from start to end (or to now while running); for a notebook session, the
        time its step cells took (not the kernel's lifetime)."""
        if self.kind == "notebook":
            return sum(n.duration for n in self.nodes.values())
        return (self.ended or time.time()) - self.started

    def __repr__(self) -> str:
        # short: a notebook cell ending in `qflow.run(...)` shows it under the run's output
        text = f"<RunState {self.run_id} of {self.workflow}: {self.status}"
        if self.ended is not None:
            text += f" in {self.duration:.2f} s"
        if self.status == "succeeded":
            result = repr(self.result)
            text += f", result {result if len(result) <= 80 else result[:77] + '...'}"
        return text + ">"

    def counts(self) -> dict[str, int]:
        """How many steps and providers are in each status (input values are not counted)."""
        out: dict[str, int] = {}
        for node in self.nodes.values():
            if node.kind == "input":
                continue
            out[node.status] = out.get(node.status, 0) + 1
        return out


class Observer:
    """Base for things that watch runs; every hook is optional and keyword-only."""

    def run_started(self, *, run: RunState, **_: Any) -> None:
        """The graph is built and keys are about to be computed."""

    def graph_changed(self, *, run: RunState, **_: Any) -> None:
        """Nodes were added to or changed in ``run.graph`` (a notebook session's step cells)."""

    def node_started(self, *, run: RunState, node: NodeRun, **_: Any) -> None:
        """A node starts computing."""

    def node_info(self, *, run: RunState, node: NodeRun, info: RuntimeInfo, **_: Any) -> None:
        """A computing node yielded runtime info (a metric, progress)."""

    def node_finished(self, *, run: RunState, node: NodeRun, **_: Any) -> None:
        """A node ran, came from the cache, failed or was skipped."""

    def run_finished(self, *, run: RunState, **_: Any) -> None:
        """The run ended; ``run.status`` says how."""


class Observers(Observer):
    """Several observers called in order; one that raises does not stop the others."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers
        self.errors: list[BaseException] = []

    def _call(self, hook: str, kwargs: dict[str, Any]) -> None:
        for obs in self.observers:
            try:
                getattr(obs, hook)(**kwargs)
            except Exception as exc:  # an observer's failure must not fail the run
                self.errors.append(exc)
                import warnings

                warnings.warn(f"{type(obs).__name__}.{hook} failed: {exc!r}", RuntimeWarning,
                              stacklevel=2)

    def run_started(self, **kwargs: Any) -> None:  # noqa: D102
        self._call("run_started", kwargs)

    def graph_changed(self, **kwargs: Any) -> None:  # noqa: D102
        self._call("graph_changed", kwargs)

    def node_started(self, **kwargs: Any) -> None:  # noqa: D102
        self._call("node_started", kwargs)

    def node_info(self, **kwargs: Any) -> None:  # noqa: D102
        self._call("node_info", kwargs)

    def node_finished(self, **kwargs: Any) -> None:  # noqa: D102
        self._call("node_finished", kwargs)

    def run_finished(self, **kwargs: Any) -> None:  # noqa: D102
        self._call("run_finished", kwargs)
