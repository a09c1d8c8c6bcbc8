"""The local launcher: every node computes in this process, so breakpoints in ``apply()`` work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qflow.config.paths import Paths
from qflow.dsl.decorators import WorkflowBase
from qflow.graph.build import build
from qflow.runtime.console import Console
from qflow.runtime.events import NodeRun, Observer, Observers, RunState
from qflow.runtime.executor import Executor
from qflow.runtime.record import RunRecorder, new_run_id
from qflow.store.local import Store
from qflow.trackers import trackers as tracker_registry


class LocalLauncher:
    """Builds a workflow's graph and computes it in-process against the local store."""

    def __init__(self, paths: Paths | None = None, *, tracker: str | None = "file",
                 tracker_settings: dict[str, Any] | None = None, console: bool = True,
                 cache: bool = True, observers: list[Observer] | None = None) -> None:
        self.paths = paths or Paths.discover()
        self.tracker = tracker
        self.tracker_settings = dict(tracker_settings or {})
        self.console = console
        self.cache = cache
        self.observers = list(observers or [])

    def launch(self, workflow: WorkflowBase, inputs: dict[str, Any] | None = None, *,
               name: str | None = None) -> RunState:
        """Build and compute ``workflow``; return the finished run (raises on failure).

        ``name`` is what run records call the workflow (a project's workflow folder name);
        the class name by default.
        """
        tracker_cls = tracker_registry.get(self.tracker) if self.tracker else None
        graph = build(workflow, inputs)
        store = Store(self.paths.store)
        run = RunState(
            run_id=new_run_id(),
            workflow=name or graph.name,
            parameters=workflow.model_dump(mode="json"),
            graph=graph,
            nodes={nid: NodeRun(id=nid, kind=n.kind) for nid, n in graph.nodes.items()},
            root=self.paths.root,
            store=self.paths.store,
        )
        observers: list[Observer] = [RunRecorder(self.paths.runs)]
        if tracker_cls is not None:
            tracker = tracker_cls(Path(self.paths.tracker) / self.tracker, **self.tracker_settings)
            tracker.record_dir = self.paths.runs
            tracker.announce = self.console
            observers.append(tracker)
        if self.console:
            observers.append(Console())
        observers.extend(self.observers)
        executor = Executor(graph, store, run, Observers(observers), root=self.paths.root,
                            cache=self.cache)
        return executor.execute()


def run(workflow: WorkflowBase, *, inputs: dict[str, Any] | None = None, cache: bool = True,
        console: bool = True, tracker: str | None = "file", root: Path | str | None = None
        ) -> RunState:
    """Compute ``workflow`` (an instance) in this process and return the finished run.

    Args:
        inputs: values or providers for ``run()``'s inputs, overriding its defaults.
        cache: ``False`` recomputes every step and stores nothing.
        console: print a line per step and progress bars.
        tracker: the tracker to record the run in (``None`` for none).
        root: the project (or folder) whose ``.qflow/`` to use; found from the working folder
            by default.

    Raises:
        StepError: a step failed; the run record says which and keeps what finished.
    """
    launcher = LocalLauncher(Paths.discover(root), tracker=tracker, console=console, cache=cache)
    return launcher.launch(workflow, inputs)
