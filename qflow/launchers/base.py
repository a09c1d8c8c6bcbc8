"""The launcher protocol: where a run computes, and the observers every run reports to.

Every launcher is made the same way — ``Launcher(paths, tracker=..., tracker_settings=...,
console=..., cache=..., observers=..., **settings)``, the settings being its section of the
configuration (``configs/launcher/NAME.yaml``) — and runs work with ``launch(target, inputs,
name=...)``, returning the finished ``RunState``. Launchers of workflows (``GraphLauncher``:
local, Dask) build the graph and hand it to the run driver, offering it a node runner, or
plan a run (``plan``) without running anything; the papermill launcher runs a notebook in a
kernel.
"""

from __future__ import annotations

import sys
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from qflow.config.paths import Paths
from qflow.dsl.decorators import WorkflowBase
from qflow.errors import ConfigError
from qflow.graph.build import build
from qflow.graph.check import check_provider_paths
from qflow.graph.graph import Graph
from qflow.runtime.console import Console
from qflow.runtime.driver import Driver
from qflow.runtime.events import NodeRun, Observer, Observers, RunState
from qflow.runtime.plan import RunPlan, plan
from qflow.runtime.record import RunRecorder, list_records, new_run_id
from qflow.runtime.task import NodeTask, TaskResult
from qflow.runtime.views import views
from qflow.store.location import open_store
from qflow.trackers import create as create_tracker
from qflow.trackers.sync import Pending


class Launcher(ABC):
    """Base of launchers: the common settings and the observers of a run."""

    name: ClassVar[str] = ""

    def __init__(self, paths: Paths | None = None, *, tracker: str | None = "file",
                 tracker_settings: dict[str, Any] | None = None, console: bool = True,
                 cache: bool = True, observers: list[Observer] | None = None,
                 **settings: Any) -> None:
        if settings:
            raise ConfigError(
                f"Unknown setting {next(iter(settings))!r} of the {self.name} launcher.",
                hint=f"Check configs/launcher/{self.name}.yaml and the command line "
                     f"(launcher.NAME=VALUE).")
        self.paths = paths or Paths.discover()
        self.tracker = tracker
        self.tracker_settings = dict(tracker_settings or {})
        self.console = console
        self.cache = cache
        self.observers = list(observers or [])
        # A deferred tracker (MLflow) records runs after they end, from a background process
        # (qflow.trackers.sync); the tuner turns this off, its trials nest under a live run.
        self.defer_trackers = True

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release what the launcher holds between runs (a cluster connection)."""
        return None

    def run_observers(self, *, record: bool = True) -> list[Observer]:
        """The run recorder, the views the environment adds (``qflow.runtime.views``), the
        console, the configured tracker and any extra observers (the tracker after the
        console, so a run's output ends with where the tracker put it).

        A deferred tracker is not started: a ``Pending`` observer marks the run for the sync
        that replays it into the tracker when it ends (``qflow.trackers.sync``), unless
        ``defer_trackers`` is off or the tracker's ``sync`` setting is ``inline``.

        Views come with the console (``console=False`` shows nothing); beside a view, the
        console prints to standard output and leaves the progress bars to the view.
        """
        observers: list[Observer] = [RunRecorder(self.paths.runs)] if record else []
        shown = views() if self.console else []
        observers += shown
        if self.console:
            observers.append(Console(sys.stdout, bars=False) if shown else Console())
        if self.tracker:
            tracker = create_tracker(self.tracker, self.paths, self.tracker_settings,
                                     announce=self.console, stream=sys.stdout if shown else None)
            if self.defer_trackers and tracker.sync != "inline" and record:  # needs the log
                observers.append(Pending(tracker, self.paths, self.tracker_settings))
            else:
                observers.append(tracker)
        return observers + self.observers

    @abstractmethod
    def launch(self, target: Any, inputs: dict[str, Any] | None = None, *,
               name: str | None = None, observers: list[Observer] | None = None) -> RunState:
        """Run ``target``; return the finished run (raises ``StepError`` when a step fails).

        ``observers`` watch this run only, besides the launcher's own.
        """


class GraphLauncher(Launcher):
    """A launcher of workflows: builds the graph and lends the driver a node runner."""

    in_process: ClassVar[bool] = False

    def launch(self, target: WorkflowBase, inputs: dict[str, Any] | None = None, *,
               name: str | None = None, observers: list[Observer] | None = None) -> RunState:
        """Build and compute the workflow ``target``; return the finished run.

        ``name`` is what run records call the workflow (a project's workflow folder name);
        the class name by default.
        """
        graph = self.graph(target, inputs)
        location = self.paths.store_location()
        store = open_store(location)
        run = RunState(
            run_id=new_run_id(),
            workflow=name or graph.name,
            parameters=target.model_dump(mode="json"),
            graph=graph,
            nodes={nid: NodeRun(id=nid, kind=n.kind) for nid, n in graph.nodes.items()},
            root=self.paths.root,
            store=location.url,
        )
        watching = Observers(self.run_observers() + list(observers or []))
        driver = Driver(graph, store, run, watching, self.runner(store),
                        location=location, root=self.paths.root, cache=self.cache)
        return driver.execute()

    def graph(self, target: WorkflowBase, inputs: dict[str, Any] | None = None) -> Graph:
        """The graph of ``target``, checked against the files its providers read."""
        graph = build(target, inputs)
        check_provider_paths(graph, self.paths.root)
        return graph

    def plan(self, target: WorkflowBase, inputs: dict[str, Any] | None = None, *,
             name: str | None = None) -> RunPlan:
        """What ``launch(target, inputs, name=name)`` would do now: which steps it would
        compute and why, which come from the cache, and how long they took before. Nothing
        runs, no run is recorded and the store is only read."""
        graph = self.graph(target, inputs)
        store = open_store(self.paths.store_location(), read_only=True)
        workflow = name or graph.name
        return plan(graph, store, workflow=workflow, parameters=target.model_dump(mode="json"),
                    root=self.paths.root, cache=self.cache,
                    history=list_records(self.paths.runs, workflow))

    @abstractmethod
    def runner(self, store: Any) -> Any:
        """The node runner for one run (a ``NodeRunner``)."""


__all__ = ["GraphLauncher", "Launcher", "NodeTask", "TaskResult"]
