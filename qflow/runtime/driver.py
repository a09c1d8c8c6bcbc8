"""The run driver: plans a graph's computation and hands the nodes that must run to a launcher.

For each node whose upstream nodes are settled, in graph order, the planner
(:mod:`qflow.runtime.plan`, which ``qflow plan`` uses too) computes its key from its
upstream keys; if the store has it, the node is *cached* and nothing is read; otherwise it
becomes a :class:`~qflow.runtime.task.NodeTask` submitted to the launcher's node runner,
which computes it in this process or elsewhere and answers with the key its outputs are
under. Independent nodes are in flight together when the runner computes out of process.
The driver says why each node ran, reports every event to the observers (console, run
record, trackers, widgets) and loads only the values the workflow's result needs.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from qflow.dsl.proxy import Proxy
from qflow.errors import IntegrityError, QFlowError, StepError
from qflow.graph.graph import Graph, Node, map_leaves
from qflow.runtime.events import Observer, RunState, StopRun
from qflow.runtime.info import Metric, RuntimeInfo
from qflow.runtime.interrupt import describe
from qflow.runtime.plan import Planner
from qflow.runtime.task import Context, DamagedInput, Inline, NodeTask, Ref, TaskResult, run_node


class NodeRunner(Protocol):
    """What a launcher offers the driver: somewhere to compute node tasks."""

    in_process: bool
    """Whether tasks compute in this process (values may then stay in memory)."""

    def start(self, run: RunState, on_info: Any) -> None:
        """Get ready for ``run``; ``on_info(node_id, info)`` takes streamed runtime info."""

    def submit(self, task: NodeTask, after: list[Any]) -> Any:
        """Start computing ``task`` once the tasks of the handles ``after`` are done; return a
        handle. If one of those did not run, the task's result is ``skipped``."""

    def wait(self) -> list[TaskResult]:
        """Block until at least one submitted task is done; return the done ones' results
        (only out-of-process runners are waited for)."""

    def stop(self) -> None:
        """Cancel what is still in flight and release resources."""


class InProcess:
    """The node runner of the local launcher: a task computes when it is submitted."""

    in_process = True

    def __init__(self, store: Any) -> None:
        self.store = store
        self.memory: dict[tuple[str, int], Any] = {}
        self._on_info: Any = None

    def start(self, run: RunState, on_info: Any) -> None:  # noqa: D102
        self._on_info = on_info

    def submit(self, task: NodeTask, after: list[Any]) -> TaskResult:  # noqa: D102
        return run_node(task, store=self.store, memory=self.memory,
                        emit=lambda info: self._on_info(task.node, info))

    def wait(self) -> list[TaskResult]:  # noqa: D102
        return []  # every task finished when it was submitted

    def stop(self) -> None:  # noqa: D102
        self.memory.clear()


class Driver:
    """Computes one run of a graph against a store, reporting to an observer."""

    def __init__(self, graph: Graph, store: Any, run: RunState, observer: Observer,
                 runner: NodeRunner, *, location: Any = None, root: Any = None,
                 cache: bool = True) -> None:
        self.graph = graph
        self.store = store
        self.run_state = run
        self.observer = observer
        self.runner = runner
        self.location = location
        self.root = root
        self.cache = cache
        self.planner = Planner(graph, store, root=root, cache=cache)
        self.keys = self.planner.keys
        self._planned: dict[str, str] = {}  # node -> key from its components
        self._flying: dict[str, Any] = {}  # node -> handle, while it computes out of process
        self._after: dict[str, list[Node]] = {}  # recomputed node -> tasks waiting for it
        self._settled: set[str] = set()

    # -- keys and cache decisions (the planner's) ---------------------------------------------
    def declared(self, node: Node) -> list[Any]:
        """The factory each output's annotation asks for (``None``: chosen by the value)."""
        return self.planner.declared(node)

    def _cacheable(self, node: Node) -> bool:
        return self.planner.cacheable(node)

    def _promote(self, node: Node, metric: str, value: float) -> None:
        for label, name in node.labels.items():
            if name == metric:
                self.run_state.metrics[label] = value

    def _visit(self, node: Node) -> None:
        # Shared with other runs; `qflow cache gc` takes it exclusively: a key found in the
        # store is in the run's record (nodes.jsonl) before gc may choose what to remove.
        with self.store.lock(shared=True):
            if self._decide(node):
                return
        self._submit(node)

    def _decide(self, node: Node) -> bool:
        """Key ``node`` and settle it if it needs no computing; whether it was settled."""
        record = self.run_state.nodes[node.id]
        decision = self.planner.decide(node)
        record.components = decision.components
        record.key = self._planned[node.id] = decision.key
        if decision.status in ("input", "inline"):
            record.status = decision.status
            self._settle(node)
            return True
        if decision.status == "cached":
            record.status = "cached"
            try:
                record.metrics = self.store.manifest(record.key).get("metrics", [])
            except IntegrityError:
                record.metrics = []
            for metric in record.metrics:
                self._promote(node, metric["name"], metric["value"])
            self._settle(node)
            return True
        record.reasons = decision.reasons
        return False

    def _settle(self, node: Node) -> None:
        self._settled.add(node.id)
        self.observer.node_finished(run=self.run_state, node=self.run_state.nodes[node.id])

    # -- tasks --------------------------------------------------------------------------------
    def _ref(self, value: Any) -> Any:
        """``value`` with each proxy replaced by what a task can resolve anywhere."""
        return map_leaves(value, self._ref_leaf)

    def _ref_leaf(self, value: Any) -> Any:
        if not isinstance(value, Proxy):
            return value
        node = self.graph.nodes[value.node]
        if node.kind == "input":
            return node.obj
        if node.kind == "provider" and not node.obj.cache:
            return Inline(node.obj)
        scratch = not self._cacheable(node) and not self.runner.in_process
        return Ref(node.id, self.keys[node.id], value.index, scratch)

    def task(self, node: Node) -> NodeTask:
        """The task that computes ``node``."""
        return NodeTask(
            run_id=self.run_state.run_id, node=node.id, kind=node.kind, obj=node.obj,
            inputs={k: self._ref(v) for k, v in node.inputs.items()}, outputs=len(node.outputs),
            unpack=node.unpack, generator=node.generator, factories=self.declared(node),
            key=self._planned[node.id],
            cache=self._cacheable(node), store=self.location,
            root=str(self.root) if self.root is not None else None, location=node.location)

    def _submit(self, node: Node) -> None:
        record = self.run_state.nodes[node.id]
        record.status = "running"
        record.metrics = []
        self.observer.node_started(run=self.run_state, node=record)
        after = [self._flying[u] for u in node.upstream if u in self._flying]
        handle = self.runner.submit(self.task(node), after)
        if self.runner.in_process:
            self._finish(node, handle)
        else:
            self._flying[node.id] = handle

    def _on_info(self, node_id: str, info: RuntimeInfo) -> None:
        record = self.run_state.nodes[node_id]
        if isinstance(info, Metric):
            record.metrics.append({"name": info.name, "value": info.value, "step": info.step})
            self._promote(self.graph.nodes[node_id], info.name, info.value)
        self.observer.node_info(run=self.run_state, node=record, info=info)

    def _finish(self, node: Node, result: TaskResult) -> None:
        record = self.run_state.nodes[node.id]
        record.duration = result.duration
        self._flying.pop(node.id, None)
        if result.status == "skipped":  # an upstream task did not run: wait for it to
            record.status = "pending"
            if result.damaged in self._settled:
                self._submit(node)
            else:
                self._after.setdefault(result.damaged or "", []).append(node)
            return
        if result.status == "damaged":  # recompute the upstream node, then this one again
            upstream = self.graph.nodes[result.damaged or ""]
            self.run_state.nodes[upstream.id].reasons = [
                f"stored artifact was corrupt ({result.message})"]
            self._after.setdefault(upstream.id, []).append(node)
            self._submit(upstream)
            return
        if result.status == "failed":
            raise self._fail(node, result)
        record.metrics = result.metrics
        for metric in result.metrics:
            self._promote(node, metric["name"], metric["value"])
        record.key = self.keys[node.id] = result.key
        record.status = "ran"
        self._settle(node)
        for waiting in self._after.pop(node.id, []):
            self._submit(waiting)

    def _fail(self, node: Node, result: TaskResult) -> StepError:
        record = self.run_state.nodes[node.id]
        record.status = "failed"
        record.error = result.error or result.message
        self.run_state.failed_step = node.id
        self.observer.node_finished(run=self.run_state, node=record)
        where = f" (called at {node.location})" if node.location else ""
        error = StepError(f"Step '{node.id}'{where} failed in run {self.run_state.run_id}: "
                          f"{result.message}", step=node.id, run_id=self.run_state.run_id,
                          hint=result.hint)
        error.__cause__ = result.exception
        return error

    def _known(self, node_id: str) -> bool:
        """Whether ``node_id``'s key is final: settled, or computing under its planned key
        (its dependents are then submitted at once, to run as soon as it is done)."""
        return node_id in self._settled or (
            node_id in self._flying and self._cacheable(self.graph.nodes[node_id]))

    def _schedule(self) -> None:
        waiting = list(self.graph.nodes.values())
        while waiting or self._flying:
            still = []
            for node in waiting:
                if all(self._known(u) for u in node.upstream):
                    self._visit(node)
                else:
                    still.append(node)
            waiting = still
            if self._flying:
                self._collect()

    def _collect(self) -> None:
        """Wait for tasks in flight and take in their results."""
        for result in self.runner.wait():
            self._finish(self.graph.nodes[result.node], result)

    def _result(self) -> Any:
        """The workflow's result, loaded (or recomputed if its stored copy is damaged)."""
        memory = getattr(self.runner, "memory", None)
        context = Context(self.store, self.run_state.run_id, memory, self.root)
        while True:
            try:
                return context.resolve(self._ref(self.graph.result))
            except DamagedInput as damaged:
                node = self.graph.nodes[damaged.ref.node]
                self.run_state.nodes[node.id].reasons = [
                    f"stored artifact was corrupt ({damaged.error.message.split(';')[0]})"]
                self._submit(node)
                while self._flying:
                    self._collect()

    # -- the run ------------------------------------------------------------------------------
    def execute(self) -> RunState:
        """Run every node; return the run state (``status`` ``succeeded`` or raise)."""
        run = self.run_state
        scope = self.planner.scope
        self.observer.run_started(run=run)
        try:
            self.runner.start(run, self._on_info)
            self._schedule()
            run.result = self._result()
            run.status = "succeeded"
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM under a front end (interrupt.py)
            run.status = "killed"
            run.error = describe(exc)
            raise
        except StopRun as stop:
            run.status = stop.status
            run.error = stop.reason or None
            stop.run_id = run.run_id
            raise
        except QFlowError as exc:
            run.status = "failed"
            run.error = str(exc)
            raise
        except BaseException as exc:
            run.status = "failed"
            run.error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._close(run, scope)
        return run

    def _close(self, run: RunState, scope: str) -> None:
        try:
            self.runner.stop()
        finally:
            for nid, record in run.nodes.items():
                if record.status in ("pending", "running"):
                    queued = any(u not in self._settled for u in self.graph.nodes[nid].upstream)
                    stopped = "pruned" if run.status == "pruned" else "failed"
                    record.status = "skipped" if record.status == "pending" or queued \
                        else stopped
                    self.observer.node_finished(run=run, node=record)
            try:
                if not self.runner.in_process:
                    self.store.remove_scratch(run.run_id)
                self.store.flush()
            finally:
                previous = self.planner.previous
                for nid, rec in run.nodes.items():
                    if rec.components and rec.status in ("ran", "cached", "inline", "failed"):
                        previous[nid] = {**rec.components, "_failed": rec.status == "failed"}
                self.store.write_index(scope, previous)
                run.ended = time.time()
                self.observer.run_finished(run=run)
