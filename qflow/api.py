"""Inspect runs from Python: ``inspect_run`` and ``list_runs`` over any tracker, and
``load_run`` for a past run's outputs.

```python
from qflow import api
run = api.inspect_run(run_id="20261125-160102-417-9c1e2a")
run.metrics["accuracy"], run.parameters["alpha"], run.artifacts["Fit"]
outputs = api.load_run("20261125-160102-417-9c1e2a")   # loads nothing yet
model = outputs["Fit"]                                   # loads Fit's output only
```

The tracker is the project's configured one (``configs/project.yaml``) unless one is named
(``"mlflow"``, ``"wandb"``, ``"file"``) with its settings as keywords
(``tracking_uri="http://server:5000"`` reads runs another machine logged), or passed as an
instance. Artifacts load lazily from the artifact store by the keys in the run record.

A deferred tracker (MLflow) records a run after it ends, in a background process; before
reading one, these functions sync the project's runs still waiting for it (waiting for a sync
in progress), so a run that just ended is never missing. A run still running is shown from
its run record.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qflow.config.paths import Paths
from qflow.errors import ConfigError
from qflow.runtime.outputs import LazyArtifacts, step_slots
from qflow.runtime.record import read_record
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


def _decoded(text: Any) -> Any:
    """A parameter as trackers store it (text; JSON unless it was a string) back to a value."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _parameters(data: RunData, record: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The workflow's parameters and each step's settings, typed: from the run record when it
    has them, else decoded from the tracker's ``name`` and ``Step.field`` parameters."""
    described = {n["id"]: n for n in (record.get("graph") or {}).get("nodes", [])}
    steps = {nid for nid, n in described.items() if n.get("kind") == "step"}
    steps |= {tag.split(".")[2] for tag in data.tags if tag.startswith("qflow.step.")}
    parameters: dict[str, Any] = {}
    settings: dict[str, dict[str, Any]] = {}
    for name, text in data.params.items():
        step, _, key = name.partition(".")
        if key and step in steps:
            settings.setdefault(step, {})[key] = _decoded(text)
        elif "parameters" not in record:
            parameters[name] = _decoded(text)
    parameters.update(record.get("parameters") or {})
    for nid, node in described.items():
        if node.get("kind") == "step" and "settings" in node:
            settings[nid] = node["settings"]
    order = [nid for nid in described if nid in settings] + sorted(set(settings) - set(described))
    return parameters, {nid: settings[nid] for nid in order}


def _history(data: RunData, record: dict[str, Any]) -> dict[str, list[tuple[int, float]]]:
    """Metric histories ``name -> [(step, value)]``: the tracker's, else the run record's (a
    labelled metric under its label, others as ``Step.metric``, as trackers name them)."""
    if data.history:
        return {name: [(p.step, p.value) for p in points] for name, points in data.history.items()}
    labels = {n["id"]: {metric: label for label, metric in (n.get("labels") or {}).items()}
              for n in (record.get("graph") or {}).get("nodes", [])}
    history: dict[str, list[tuple[int, float]]] = {}
    for nid, node in (record.get("nodes") or {}).items():
        for i, m in enumerate(node.get("metrics") or []):
            name = labels.get(nid, {}).get(m["name"], f"{nid}.{m['name']}")
            step = m.get("step")
            history.setdefault(name, []).append((int(step if step is not None else i),
                                                 float(m["value"])))
    return history


@dataclass
class RunView:
    """Everything about one run: parameters, step settings, metrics with history, status,
    timings, graph, result and artifacts.

    Attributes:
        kind: ``"workflow"``, or ``"notebook"`` for a notebook session's run.
        parameters: the workflow's parameters, typed (``{"alpha": 0.5}``).
        settings: each step's settings, typed, by step name (``{"Fit": {"alpha": 0.5}}``).
        metrics: the last value of each metric; ``history`` has every ``(step, value)``.
        duration: seconds the run took, as its record gives it (for a notebook session, its
            steps' total time), else from start to end.
        steps: by node id, the node's kind, status, key, duration and why it ran.
        graph: the graph as the run record describes it (``qflow.graph.render`` draws it).
    """

    run_id: str
    workflow: str | None
    status: str
    tracker: str
    kind: str = "workflow"
    parameters: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    history: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    duration: float | None = None
    result: Any = None
    error: str | None = None
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    graph: dict[str, Any] = field(default_factory=dict)
    artifacts: Mapping[str, Any] = field(default_factory=dict)
    experiment_id: str | None = None

    @classmethod
    def from_data(cls, data: RunData, tracker: str) -> RunView:
        """Build a view from what a tracker returned (and the run record it holds)."""
        record = data.record or {}
        history = _history(data, record)
        metrics = {name: points[-1][1] for name, points in history.items() if points}
        store = record.get("store")
        steps = {nid: {k: node.get(k) for k in ("kind", "status", "key", "duration", "reasons")}
                 for nid, node in (record.get("nodes") or {}).items()}
        parameters, settings = _parameters(data, record)
        started = record.get("started") or data.start_time
        ended = record.get("ended") or data.end_time
        duration = record.get("duration")
        if duration is None and started and ended:
            duration = ended - started
        return cls(
            run_id=data.run_id,
            workflow=record.get("workflow") or data.tags.get("qflow.workflow"),
            status=record.get("status") or _STATUS.get(data.status, data.status.lower()),
            tracker=tracker,
            kind=record.get("kind") or "workflow",
            parameters=parameters,
            settings=settings,
            metrics=metrics,
            history=history,
            started=started,
            ended=ended,
            duration=duration,
            result=record.get("result", data.tags.get("qflow.result")),
            error=record.get("error") or data.tags.get("qflow.error"),
            steps=steps,
            graph=record.get("graph") or {},
            artifacts=LazyArtifacts(step_slots(record.get("nodes") or {}),
                                    str(store) if store else None, run_id=data.run_id),
            experiment_id=data.experiment_id,
        )

    @property
    def statuses(self) -> dict[str, str]:
        """Node id -> status, for drawing the graph."""
        return {nid: str(step.get("status")) for nid, step in self.steps.items()}

    def headline(self) -> str:
        """One line: ``RUN of WORKFLOW (tracker): STATUS in 1.23 s``."""
        what = "notebook session" if self.kind == "notebook" else "run"
        duration = f" in {self.duration:.2f} s" if self.duration is not None else ""
        return (f"{what.capitalize()} {self.run_id} of {self.workflow} ({self.tracker}): "
                f"{self.status}{duration}")

    def __repr__(self) -> str:
        lines = [f"RunView: {self.headline()}"]
        if self.parameters:
            lines.append("  parameters: " + ", ".join(f"{k}={v!r}" for k, v in self.parameters.items()))
        for step, values in self.settings.items():
            if values:
                lines.append(f"  {step}: " + ", ".join(f"{k}={v!r}" for k, v in values.items()))
        if self.metrics:
            lines.append("  metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in self.metrics.items()))
        if self.result is not None:
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
            return f"<h4>{html.escape(title)}</h4><table>{body}</table>" if rows else ""

        steps = {n: f"{s['status']} ({(s.get('duration') or 0):.3f} s)"
                 for n, s in self.steps.items() if s.get("kind") != "input"}
        result = "" if self.result is None else f"<br>result: {html.escape(repr(self.result))}"
        return (f"<div class='qflow-run'><b>{html.escape(self.headline())}</b>{result}"
                + table("Parameters", {k: repr(v) for k, v in self.parameters.items()})
                + "".join(table(f"{step} settings", {k: repr(v) for k, v in values.items()})
                          for step, values in self.settings.items())
                + table("Metrics", self.metrics) + table("Steps", steps) + "</div>")


def _synced(chosen: Tracker, root: Path | str | None, run_id: str | None = None) -> RunView | None:
    """Sync the runs of the project at ``root`` waiting for ``chosen`` (a deferred tracker);
    the view of ``run_id`` from its run record if it is still running."""
    if not chosen.deferred:
        return None
    from qflow.config.loader import project_paths
    from qflow.trackers.sync import sync

    paths = project_paths(root)
    report = sync(paths, tracker=chosen.name)
    if run_id is not None and run_id in report.failed:
        raise ConfigError(f"Run {run_id} is not in {chosen.name} yet: syncing it failed "
                          f"({report.failed[run_id]}).",
                          hint="Fix the cause, then `qflow sync`; the run waits meanwhile.")
    if run_id is not None and run_id in report.running:
        record = read_record(paths.runs, run_id)
        return RunView.from_data(RunData(run_id=run_id, status="RUNNING", record=record),
                                 chosen.name)
    if run_id is None and report.failed:
        import warnings

        warnings.warn(f"{len(report.failed)} run(s) could not be synced into {chosen.name}: "
                      + "; ".join(f"{r}: {e}" for r, e in report.failed.items())
                      + " (fix the cause, then `qflow sync`).", RuntimeWarning, stacklevel=3)
    return None


def inspect_run(tracker: str | Tracker | None = None, experiment: str | None = None, *,
                run_id: str, root: Path | str | None = None, experiment_id: str | None = None,
                **settings: Any) -> RunView:
    """The run ``run_id`` (QFlow's run id, or the tracker's own) as a ``RunView``.

    Runs of the project still waiting for a deferred tracker (MLflow) are synced first; a
    run still running is shown from its run record.

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
    running = _synced(chosen, root, run_id)
    if running is not None:
        return running
    return RunView.from_data(chosen.read_run(run_id, experiment or experiment_id), chosen.name)


def list_runs(workflow: str | None = None, *, tracker: str | Tracker | None = None,
              root: Path | str | None = None, **settings: Any) -> list[RunView]:
    """The runs (of ``workflow``) the tracker holds, newest first.

    Runs of the project still waiting for a deferred tracker (MLflow) are synced first.

    Args:
        workflow: only the runs of this workflow (its name in run records); all by default.
        tracker: a tracker name or instance, as for ``inspect_run``.
        root: the project (or folder) whose ``.qflow/`` holds the tracker's data.
        **settings: the tracker's settings.
    """
    chosen = tracker_for(tracker, root=root, **settings)
    _synced(chosen, root)
    return [RunView.from_data(data, chosen.name) for data in chosen.list_runs(workflow)]


def load_run(run_id: str, steps: Iterable[str] | None = None, *,
             root: Path | str | None = None) -> LazyArtifacts:
    """A past run's outputs, by name, each loaded from the artifact store when first used.

    For a workflow run the names are its steps (and cached providers): a step's output, or
    the tuple of its outputs when it has several. For a notebook session's run they are the
    variables its step cells defined, a later cell winning for a name several define. Only
    steps that ran or came from the cache and whose output is still in the store are there
    (for a run that failed or was killed, the steps that finished). Numpy arrays come back
    memory-mapped; looking up one name loads nothing else.

    Args:
        run_id: the run (``qflow ps`` lists them).
        steps: only these steps (step cells, for a notebook session).
        root: the project (or folder) whose runs to read; found from the working folder
            by default.

    Raises:
        ConfigError: no such run (the message names the runs folder), an unknown step, or
            a store that is not reachable from here.
    """
    from qflow.config.loader import project_paths
    from qflow.notebook.session import OUTPUTS, RESULT
    from qflow.runtime.outputs import variable_slots
    from qflow.runtime.record import find_record, node_entries
    from qflow.store.location import StoreLocation, open_store

    paths = project_paths(root)
    record = find_record(paths.runs, run_id)
    nodes = node_entries(paths.runs, record)
    if steps is not None:
        steps = list(steps)
        unknown = [s for s in steps if s not in nodes]
        if unknown:
            known = ", ".join(n for n, e in nodes.items() if e.get("kind") != "input")
            raise ConfigError(f"Run {run_id} has no step {unknown[0]!r} (steps: {known or 'none'}).")
        nodes = {nid: node for nid, node in nodes.items() if nid in steps}
    url = str(record.get("store") or "")
    location = paths.store_location()
    if url != location.url:
        location = StoreLocation.of(url)
    if not url or (location.is_local and not location.path.is_dir()):
        raise ConfigError(f"The artifact store of run {run_id} ({url or 'unknown'}) is not "
                          "reachable from here.")
    store = open_store(location)
    present = {nid: node for nid, node in nodes.items()
               if node.get("key") and store.has(str(node["key"]))}
    slots = variable_slots(present, store, (RESULT, OUTPUTS)) if record.get("kind") == "notebook" \
        else step_slots(present)
    return LazyArtifacts(slots, store, run_id=run_id)
