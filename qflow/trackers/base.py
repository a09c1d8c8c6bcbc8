"""The tracker protocol: sinks of runs that can also read them back.

A tracker implements a few primitives (start and end a run, log parameters, metrics with a
step index, tags, artifacts; list and read runs). ``Tracker`` turns a run's events into
those calls: parameters (the workflow's, and every step's settings as ``Step.field``) and tags
when the run starts; each node's metrics (labelled ones under their label, others as
``Step.metric``), its duration and cache status as it finishes, buffered and sent in batches;
the run record and the graph picture as artifacts, and the final status, when it ends.

A tracker that is slow to start (MLflow: importing it alone takes over a second) is
``deferred``: a workflow run from a launcher does not start it, but leaves its event log to a
background sync (``qflow.trackers.sync``) that replays the finished run into it later. What a
tracker reads from its surroundings while it records — the time, the git commit — goes
through ``clock`` and ``commit_of``, so a replay records the run's own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, TextIO, get_args

from qflow.errors import ConfigError
from qflow.runtime.events import NodeRun, Observer, RunState

STATUS = {"succeeded": "FINISHED", "failed": "FAILED", "killed": "KILLED", "pruned": "KILLED"}
BATCH = 1000  # metrics buffered before a flush
FLUSH_SECONDS = 5.0

SyncMode = Literal["background", "manual", "inline"]
"""How a deferred tracker records a launcher's run: replayed by a background process when the
run ends (the default), only by ``qflow sync`` (``manual``), or as it happens, in the run's
process (``inline``, what non-deferred trackers always do)."""


@dataclass(frozen=True)
class MetricPoint:
    """One value of a metric at a step index, with its wall-clock time in milliseconds."""

    name: str
    value: float
    step: int
    timestamp: int


@dataclass
class RunData:
    """A run as a tracker holds it: what ``qflow.api.inspect_run`` is built from."""

    run_id: str
    status: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[MetricPoint]] = field(default_factory=dict)
    start_time: float | None = None
    end_time: float | None = None
    record: dict[str, Any] | None = None
    experiment_id: str | None = None


def flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    """``{"a": {"b": 1}}`` -> ``{"prefix.a.b": "1"}`` (values as text, as trackers store them)."""
    if isinstance(value, dict):
        for k, v in value.items():
            flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = value if isinstance(value, str) else json.dumps(value, default=repr)
    return out


def git_commit(root: Path | None) -> str | None:
    """The commit checked out in ``root``, if it is a git work tree."""
    if root is None or not (Path(root) / ".git").exists():
        return None
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _sync_mode(tracker: Tracker, value: str | None) -> SyncMode:
    """The ``sync`` setting checked: one of :data:`SyncMode`, and only for deferred trackers."""
    modes = get_args(SyncMode)
    if value is None:
        return "background" if tracker.deferred else "inline"
    if value not in modes:
        raise ConfigError(f"The {tracker.name} tracker's setting `sync: {value}` is not one of "
                          f"{', '.join(modes)}.",
                          hint=f"Fix configs/tracker/{tracker.name}.yaml or the command "
                               "line (tracker.sync=manual).")
    if value != "inline" and not tracker.deferred:
        raise ConfigError(f"The {tracker.name} tracker records runs as they happen; its setting "
                          f"`sync: {value}` applies only to trackers synced later (mlflow).",
                          hint="Remove `sync` from its configuration.")
    return value  # type: ignore[return-value]


class Tracker(Observer, ABC):
    """Base of trackers: maps run events to the primitives a subclass implements."""

    name: ClassVar[str] = ""
    deferred: ClassVar[bool] = False
    """Slow to start: launchers leave runs to the background sync (``sync`` setting) instead
    of starting the tracker in the run's process. Such a tracker implements ``discard_run``."""

    def __init__(self, folder: Path | str, *, project: str | None = None,
                 experiment: str | None = None, parent: str | None = None,
                 sync: SyncMode | None = None, **settings: Any) -> None:
        self.folder = Path(folder)
        self.project = project
        self.experiment = experiment
        self.parent = parent  # the tracker's id of a parent run (a tuning study's)
        self.sync: SyncMode = _sync_mode(self, sync)
        self.settings = settings
        self.record_dir: Path | None = None
        self.announce = True  # may print where to look at runs (the launcher's console setting)
        self.stream: TextIO | None = None  # where it prints (standard error by default)
        self.clock: Callable[[], float] = time.time  # "now" for metric and end times
        self.commit_of: Callable[[Path | None], str | None] = git_commit
        self.replaying = False  # recording an ended run: its process checked the settings
        self._buffer: list[MetricPoint] = []
        self._tags: dict[str, str] = {}
        self._params: dict[str, str] = {}
        self._last_flush = time.monotonic()

    # -- primitives ---------------------------------------------------------------------------
    @abstractmethod
    def start_run(self, run: RunState, tags: dict[str, str]) -> None:
        """Open a run (named after ``run.run_id``) in experiment ``self.experiment_name(run)``."""

    @abstractmethod
    def log_params(self, params: dict[str, str]) -> None:
        """Record parameters (set once per run)."""

    @abstractmethod
    def log_metrics(self, points: list[MetricPoint]) -> None:
        """Record a batch of metric values."""

    @abstractmethod
    def set_tags(self, tags: dict[str, str]) -> None:
        """Record tags (may be updated)."""

    @abstractmethod
    def log_artifact(self, path: Path) -> None:
        """Attach the file ``path`` to the run."""

    @abstractmethod
    def end_run(self, status: str, error: str | None) -> None:
        """Close the run with FINISHED, FAILED or KILLED."""

    def discard_run(self, run_id: str) -> None:
        """Remove what a sync that was interrupted left of QFlow run ``run_id``, so that
        replaying it again leaves one copy (deferred trackers implement it)."""
        raise NotImplementedError(f"The {self.name} tracker cannot record runs later.")

    @property
    def native_run_id(self) -> str | None:
        """The tracker's own id of the run it is recording (parents refer to it)."""
        return getattr(self, "_run_id", None)

    @property
    def native_experiment_id(self) -> str | None:
        """The tracker's own id of the experiment the run is in, when it has one."""
        return None

    @abstractmethod
    def list_runs(self, workflow: str | None = None) -> list[RunData]:
        """The runs this tracker holds (of ``workflow``), newest first."""

    @abstractmethod
    def read_run(self, run_id: str, experiment_id: str | None = None) -> RunData:
        """One run, with its metric history and (when attached) its run record."""

    # -- mapping run events to primitives -----------------------------------------------------
    def experiment_name(self, run: RunState) -> str:
        """The experiment runs go to: the configured name, else ``project/workflow``."""
        return self.experiment or (f"{self.project}/{run.workflow}" if self.project
                                   else run.workflow)

    def validate(self, run: RunState) -> None:
        """Warn about settings that do not fit ``run`` (called as it starts, in its process)."""

    def run_started(self, *, run: RunState, **_: Any) -> None:
        from qflow.version import __version__

        tags = {"qflow.version": __version__, "qflow.workflow": run.workflow,
                "qflow.run_id": run.run_id}
        commit = self.commit_of(run.root)
        if commit:
            tags["git.commit"] = commit
        if self.parent:
            tags["qflow.parent_run"] = self.parent
        if not self.replaying:
            self.validate(run)
        self.start_run(run, tags)
        self._params = {}
        self._log_new_params(run)

    def _log_new_params(self, run: RunState) -> None:
        """Log the run's parameters and each step's settings (``Step.field``) not logged yet;
        a notebook session's steps appear as its cells run (a changed value keeps the first)."""
        params = flatten("", run.parameters, {})
        for node in run.graph.to_dict()["nodes"] if run.graph is not None else ():
            if node.get("kind") == "step" and node.get("settings"):
                flatten(node["id"], node["settings"], params)
        new = {k: v for k, v in params.items() if k not in self._params}
        if new:
            self._params.update(new)
            self.log_params(new)

    def graph_changed(self, *, run: RunState, **_: Any) -> None:
        self._log_new_params(run)

    def node_finished(self, *, run: RunState, node: NodeRun, **_: Any) -> None:
        if node.kind == "input":
            return
        labels = run.graph.nodes[node.id].labels
        promoted = {metric: label for label, metric in labels.items()}
        now = int(self.clock() * 1000)
        for i, m in enumerate(node.metrics):
            name = promoted.get(m["name"], f"{node.id}.{m['name']}")
            step = m["step"] if m["step"] is not None else i
            self._buffer.append(MetricPoint(name, float(m["value"]), int(step), now))
        self._buffer.append(MetricPoint(f"{node.id}.duration_s", node.duration, 0, now))
        self._tags[f"qflow.step.{node.id}.status"] = node.status
        if len(self._buffer) >= BATCH or time.monotonic() - self._last_flush > FLUSH_SECONDS \
                or run.kind == "notebook":  # a session may end with its kernel: send each cell
            self.flush()

    def flush(self) -> None:
        """Send the buffered metrics and tags."""
        if self._buffer:
            points, self._buffer = self._buffer, []
            self.log_metrics(points)
        if self._tags:
            tags, self._tags = self._tags, {}
            self.set_tags(tags)
        self._last_flush = time.monotonic()

    def run_finished(self, *, run: RunState, **_: Any) -> None:
        self.flush()
        if run.result is not None or run.status == "succeeded":
            self.set_tags({"qflow.result": repr(run.result)[:5000]})
        if run.error:
            self.set_tags({"qflow.error": run.error[:5000],
                           "qflow.failed_step": run.failed_step or ""})
        if run.status == "pruned":
            self.set_tags({"qflow.pruned": "true"})
        for path in self._artifacts(run):
            self.log_artifact(path)
        self.end_run(STATUS.get(run.status, "FAILED"), run.error)
        if self.announce:
            self.say(run)

    def say(self, run: RunState, note: str = "") -> None:
        """Print where to look at ``run``: the tracker's hints, then :meth:`where` (+ ``note``)."""
        stream = self.stream or sys.stderr
        for line in self.hints():
            print(line, file=stream)
        print(self.where(run) + (f" ({note})" if note else ""), file=stream, flush=True)

    def hints(self) -> list[str]:
        """Lines printed before :meth:`where` when a run ends (how to open the runs)."""
        return []

    def where(self, run: RunState) -> str:
        """Where the run went: ``mlflow: experiment 'demo/train' (id 1), run 3f2a...``, the ids
        ``qflow.api.inspect_run(experiment=..., run_id=...)`` takes."""
        experiment = repr(self.experiment_name(run))
        if self.native_experiment_id and self.native_experiment_id != self.experiment_name(run):
            experiment += f" (id {self.native_experiment_id})"
        return f"{self.name}: experiment {experiment}, run {self.native_run_id or run.run_id}"

    def _artifacts(self, run: RunState) -> list[Path]:
        record = self.record_path(run)
        if record is None or run.graph is None or not record.exists():
            return []
        from qflow.graph.render import render_picture

        picture = render_picture(run.graph.to_dict(), {n: r.status for n, r in run.nodes.items()},
                                 record.parent / "graph.svg")  # DOT over PICTURE_LIMIT nodes
        executed = record.parent / "notebook.ipynb"  # a papermill run's executed notebook
        return [record, picture] + ([executed] if executed.exists() else [])

    def record_path(self, run: RunState) -> Path | None:
        """Where the run record of ``run`` was written (``record_dir`` is set by the launcher)."""
        return self.record_dir / run.run_id / "record.json" if self.record_dir else None
