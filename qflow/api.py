"""Inspect runs from Python: ``inspect_run`` and ``list_runs`` over any tracker.

```python
from qflow import api
run = api.inspect_run(run_id="20261125-160102-417-9c1e2a")
run.metrics["accuracy"], run.parameters["alpha"], run.artifacts["Fit"]
```

The tracker is the project's configured one (``configs/project.yaml``) unless one is named
(``"mlflow"``, ``"wandb"``, ``"file"``) with its settings as keywords
(``tracking_uri="http://server:5000"`` reads runs another machine logged), or passed as an
instance. Artifacts load lazily from the artifact store by the keys in the run record.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qflow.config.paths import Paths
from qflow.errors import ConfigError
from qflow.trackers import create
from qflow.trackers.base import RunData, Tracker

_STATUS = {"FINISHED": "succeeded", "FAILED": "failed", "KILLED": "killed", "RUNNING": "running"}


def tracker_for(tracker: str | Tracker | None = None, *, root: Path | str | None = None,
                **settings: Any) -> Tracker:
    """A tracker instance: ``tracker`` itself, or the one named, on the project's data folder;
    with no name, the project's configured tracker (the file tracker outside a project)."""
    if isinstance(tracker, Tracker):
        return tracker
    if tracker is None:
        from qflow.config.paths import find_project_root
        from qflow.project.components import configured_tracker

        project = find_project_root(root)
        tracker, configured = configured_tracker(project) if project else ("file", {})
        settings = {**configured, **settings}
    return create(tracker, Paths.discover(root), settings)


class Artifacts(Mapping[str, Any]):
    """A run's artifacts by step name, loaded from the store on first access."""

    def __init__(self, nodes: dict[str, Any], store: str | None) -> None:
        self._keys = {n: d["key"] for n, d in nodes.items()
                      if d.get("key") and d.get("kind") != "input" and d.get("status") in
                      ("ran", "cached")}
        self._store_path = store
        self._store: Any = None
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._keys:
            raise KeyError(f"{name!r}: no artifact of that step (steps: {', '.join(self._keys)})")
        if name not in self._cache:
            if self._store is None:
                from qflow.store.location import StoreLocation, open_store

                location = StoreLocation.of(str(self._store_path or ""))
                if not self._store_path or (location.is_local and not location.path.is_dir()):
                    raise ConfigError(f"The artifact store of this run ({self._store_path}) is "
                                      "not reachable from here.")
                self._store = open_store(location)
            key = self._keys[name]
            count = len(self._store.manifest(key)["outputs"])
            values = [self._store.load(key, i) for i in range(count)]
            self._cache[name] = values[0] if count == 1 else tuple(values)
        return self._cache[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"Artifacts({', '.join(self._keys)})"


@dataclass
class RunView:
    """Everything about one run: parameters, metrics with history, status, timings, graph,
    result and artifacts."""

    run_id: str
    workflow: str | None
    status: str
    tracker: str
    parameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    result: Any = None
    error: str | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    experiment_id: str | None = None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end."""
        return self.ended - self.started if self.started and self.ended else None

    @classmethod
    def from_data(cls, data: RunData, tracker: str) -> RunView:
        """Build a view from what a tracker returned (and the run record it holds)."""
        record = data.record or {}
        history = {name: [(p.step, p.value) for p in points]
                   for name, points in data.history.items()}
        metrics = {name: points[-1][1] for name, points in history.items() if points}
        store = record.get("store")
        steps = {nid: {k: node.get(k) for k in ("kind", "status", "key", "duration", "reasons")}
                 for nid, node in (record.get("nodes") or {}).items()}
        return cls(
            run_id=data.run_id,
            workflow=record.get("workflow") or data.tags.get("qflow.workflow"),
            status=record.get("status") or _STATUS.get(data.status, data.status.lower()),
            tracker=tracker,
            parameters={**data.params, **(record.get("parameters") or {})},
            metrics=metrics,
            history=history,
            started=record.get("started") or data.start_time,
            ended=record.get("ended") or data.end_time,
            result=record.get("result", data.tags.get("qflow.result")),
            error=record.get("error") or data.tags.get("qflow.error"),
            steps=steps,
            graph=record.get("graph") or {},
            artifacts=Artifacts(record.get("nodes") or {}, str(store) if store else None),
            experiment_id=data.experiment_id,
        )

    def __repr__(self) -> str:
        duration = f" in {self.duration:.2f} s" if self.duration is not None else ""
        lines = [f"RunView {self.run_id} of {self.workflow} ({self.tracker}): "
                 f"{self.status}{duration}"]
        if self.parameters:
            lines.append("  parameters: " + ", ".join(f"{k}={v!r}" for k, v in self.parameters.items()))
        if self.metrics:
            lines.append("  metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items()))
        lines.append(f"  result: {self.result!r}")
        if self.error:
            lines.append(f"  error: {self.error.splitlines()[0]}")
        if self.steps:
            lines.append("  steps: " + ", ".join(f"{n} {s['status']}" for n, s in self.steps.items()
                                                  if s.get("kind") != "input"))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        def table(title: str, rows: dict[str, Any]) -> str:
            body = "".join(f"<tr><td>{html.escape(str(k))}</td><td>{html.escape(str(v))}</td></tr>"
                           for k, v in rows.items())
            return f"<h4>{title}</h4><table>{body}</table>" if rows else ""

        steps = {n: f"{s['status']} ({(s.get('duration') or 0):.3f} s)"
                 for n, s in self.steps.items() if s.get("kind") != "input"}
        return (f"<div class='qflow-run'><b>{html.escape(self.run_id)}</b> of "
                f"{html.escape(str(self.workflow))}: <b>{html.escape(self.status)}</b>"
                f"<br>result: {html.escape(repr(self.result))}"
                + table("Parameters", self.parameters) + table("Metrics", self.metrics)
                + table("Steps", steps) + "</div>")


def inspect_run(tracker: str | Tracker | None = None, experiment: str | None = None, *,
                run_id: str, root: Path | str | None = None, experiment_id: str | None = None,
                **settings: Any) -> RunView:
    """The run ``run_id`` (QFlow's run id, or the tracker's own) as a ``RunView``.

    Args:
        tracker: a tracker name (``"file"``, ``"mlflow"``, ``"wandb"``) or a tracker instance;
            the project's configured tracker by default.
        experiment: the experiment to look in, by name or id (``qflow run`` prints both);
            every experiment by default.
        run_id: the run to read.
        root: the project (or folder) whose ``.qflow/`` holds the tracker's data; found from
            the working folder by default.
        experiment_id: the same as ``experiment`` (its former name).
        **settings: the tracker's settings, such as ``tracking_uri`` for an MLflow server.
    """
    chosen = tracker_for(tracker, root=root, **settings)
    return RunView.from_data(chosen.read_run(run_id, experiment or experiment_id), chosen.name)


def list_runs(workflow: str | None = None, *, tracker: str | Tracker | None = None,
              root: Path | str | None = None, **settings: Any) -> list[RunView]:
    """The runs (of ``workflow``) the tracker holds, newest first.

    Args:
        workflow: only the runs of this workflow (its name in run records); all by default.
        tracker: a tracker name or instance, as for ``inspect_run``.
        root: the project (or folder) whose ``.qflow/`` holds the tracker's data.
        **settings: the tracker's settings.
    """
    chosen = tracker_for(tracker, root=root, **settings)
    return [RunView.from_data(data, chosen.name) for data in chosen.list_runs(workflow)]
