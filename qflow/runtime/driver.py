"""The run driver: plans a graph's computation and hands the nodes that must run to a launcher.

For each node whose upstream nodes are settled, in graph order, the planner
(:mod:`qflow.runtime.plan`, which ``qflow plan`` uses too) computes its key from its
upstream keys; if the store has it, the node is *cached* and nothing is read; otherwise it
becomes a :class:`~qflow.runtime.task.NodeTask` submitted to the launcher's node runner,
which computes it in this process or elsewhere and answers with the key its outputs are
under. Independent nodes are in flight together when the runner computes out of process.
The driver says why each node ran, reports every event to the observers (console, run
record, trackers, widgets) and loads only the values the workflow's result needs.

A node computed in this process gets no key when nothing needs one: when neither it nor any
node downstream of it is cached (every node of a run with caching off), nothing is looked
up or stored, so its key would only cost time. The in-process runner keeps a value in memory
until the last node that reads it has run (or the run ends, for the workflow's result).

A key found in the store is used under the store's lock, held shared (``qflow cache gc``
takes it exclusively): the driver takes it when it first finds a key (and looks again,
holding it), and lets go only once the run record names every key it found — before a step
computes, or when the run ends — so gc never removes an object a run in flight took from
the cache. Consecutive cache hits share one hold; misses take no lock.

Before a step computes, the run record's queued lines are written, and the record saying
the run is running: a step that kills the process (SIGKILL, the OOM killer, a crash in
native code) leaves every line logged before it started, which is what ``qflow sync``
replays into a deferred tracker. A run that never computes (fully cached) writes its record
once, when it ends.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Protocol

from qflow.dsl.proxy import Proxy
from qflow.errors import IntegrityError, QFlowError, StepError
from qflow.graph.graph import Graph, Node, map_leaves, proxies_in
from qflow.runtime.background import flush_lines
from qflow.runtime.events import Observer, RunState, StopRun
from qflow.runtime.info import Metric, RuntimeInfo
from qflow.runtime.interrupt import describe
from qflow.runtime.plan import Planner
from qflow.runtime.task import Context, DamagedInput, Inline, NodeTask, Ref, TaskResult, run_node


class NodeRunner(Protocol):
    """What a launcher offers the driver: somewhere to compute node tasks.

    A runner that keeps values in memory may also offer ``release(node, outputs)``: the
    driver calls it once no other node will read ``node``'s values (and fills each task's
    ``release`` list with the values nobody reads after it, to drop once it has computed).
    """

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
    """The node runner of the local launcher: a task computes when it is submitted, and its
    values stay in ``memory`` until the last node that reads them has run."""

    in_process = True

    def __init__(self, store: Any) -> None:
        self.store = store
        self.memory: dict[tuple[str, int], Any] = {}  # (node, output index) -> value
        self._on_info: Any = None

    def start(self, run: RunState, on_info: Any) -> None:  # noqa: D102
        self._on_info = on_info

    def submit(self, task: NodeTask, after: list[Any]) -> TaskResult:  # noqa: D102
        return run_node(task, store=self.store, memory=self.memory,
                        emit=lambda info: self._on_info(task.node, info))

    def wait(self) -> list[TaskResult]:  # noqa: D102
        return []  # every task finished when it was submitted

    def release(self, node: str, outputs: int) -> None:
        """Forget the values of ``node``: every node that reads them has run."""
        for index in range(outputs):
            self.memory.pop((node, index), None)

    def stop(self) -> None:  # noqa: D102
        self.memory.clear()
        self._on_info = None  # the driver's method: a cycle that would keep the run alive


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
        self._root_text = str(root) if root is not None else None
        self.planner = Planner(graph, store, root=root, cache=cache)
        self.keys = self.planner.keys
        self._planned: dict[str, str] = {}  # node -> key from its components
        self._flying: dict[str, Any] = {}  # node -> handle, while it computes out of process
        self._after: dict[str, list[Node]] = {}  # recomputed node -> tasks waiting for it
        self._settled: set[str] = set()
        self._locked = contextlib.ExitStack()  # the store's lock, while held
        self._holding = False
        self._found = False  # a key was found in the store while holding its lock
        self._upstream = {nid: node.upstream for nid, node in graph.nodes.items()}
        self._cached = {nid for nid, node in graph.nodes.items() if self.planner.cacheable(node)}
        self._keyed = self._needing_keys()
        self._readers = self._count_readers()

    # -- keys and cache decisions (the planner's) ---------------------------------------------
    def _needing_keys(self) -> set[str]:
        """The nodes whose key is computed: the cached ones and every node they read from,
        directly or not; every node when tasks compute out of process (values then travel
        through the store, by key)."""
        if not self.runner.in_process:
            return set(self.graph.nodes)
        keyed: set[str] = set()
        for nid in reversed(self.graph.nodes):  # readers before what they read
            if nid in keyed or nid in self._cached:
                keyed.add(nid)
                keyed.update(self._upstream[nid])
        return keyed

    def _count_readers(self) -> dict[str, int]:
        """How many nodes read each node's values, for the nodes whose values may be dropped
        from memory once those have settled. Kept to the end: the workflow's result, and the
        values of an uncached node read by a cached one (if that one's stored copy turns out
        damaged, it is recomputed from them)."""
        if getattr(self.runner, "release", None) is None:
            return {}
        readers = dict.fromkeys(self.graph.nodes, 0)
        kept = {p.node for p in proxies_in(self.graph.result)}
        for nid, upstream in self._upstream.items():
            cached = nid in self._cached
            for up in upstream:
                readers[up] += 1
                if cached and up not in self._cached:
                    kept.add(up)
        return {nid: n for nid, n in readers.items() if nid not in kept}

    def declared(self, node: Node) -> list[Any]:
        """The factory each output's annotation asks for (``None``: chosen by the value)."""
        return self.planner.declared(node)

    def _cacheable(self, node: Node) -> bool:
        return node.id in self._cached  # as the planner says

    def _promote(self, node: Node, metric: str, value: float) -> None:
        for label, name in node.labels.items():
            if name == metric:
                self.run_state.metrics[label] = value

    def _visit(self, node: Node) -> None:
        if not self._decide(node):
            self._submit(node)

    def _decide(self, node: Node) -> bool:
        """Key ``node`` and settle it if it needs no computing; whether it was settled."""
        record = self.run_state.nodes[node.id]
        keyed = node.id in self._keyed
        decision = self.planner.decide(node, keyed=keyed)
        if decision.status == "cached" and not self._holding:
            # found without the lock (a miss needs none): look again holding it, so that gc
            # cannot remove the object before the record names it
            self._lock_store()
            decision = self.planner.decide(node, keyed=keyed)
        record.components = decision.components
        record.components_json = decision.components_json
        record.key = decision.key
        if decision.key is not None:
            self._planned[node.id] = decision.key
        if decision.status in ("input", "inline"):
            record.status = decision.status
            self._settle(node)
            return True
        if decision.status == "cached":
            self._found = True
            record.status = "cached"
            record.metrics = self._stored_metrics(node.id, decision.key or "")
            for metric in record.metrics:
                self._promote(node, metric["name"], metric["value"])
            self._settle(node)
            return True
        record.reasons = decision.reasons
        return False

    def _stored_metrics(self, node_id: str, key: str) -> list[dict[str, Any]]:
        """The metrics saved with ``key``: as the workflow's index remembers them when its
        last run of ``node_id`` made or found that key (no manifest to read per cached step),
        else from the store's manifest."""
        last = self.planner.previous.get(node_id)
        if last is not None and last.get("_key") == key and not last.get("_failed") \
                and isinstance(last.get("_metrics"), list):
            return list(last["_metrics"])
        try:
            return list(self.store.manifest(key).get("metrics", []))
        except IntegrityError:
            return []

    def _settle(self, node: Node) -> None:
        again = node.id in self._settled  # recomputed: its stored copy was damaged
        self._settled.add(node.id)
        self.observer.node_finished(run=self.run_state, node=self.run_state.nodes[node.id])
        if again:
            return
        for nid in self._upstream[node.id]:  # drop values no other node will read
            left = self._readers.get(nid)
            if left is not None:
                self._readers[nid] = left - 1
                if left == 1:
                    self.runner.release(  # type: ignore[attr-defined]
                        nid, len(self.graph.nodes[nid].outputs))

    # -- the store's lock ---------------------------------------------------------------------
    def _lock_store(self) -> None:
        """Hold the store's lock shared (see the module's docstring); several look-ups in a
        row share one hold."""
        if not self._holding:
            self._locked.enter_context(self.store.lock(shared=True))
            self._holding = True

    def _unlock_store(self) -> None:
        """Let the run record's queued lines reach its files (they name the keys found), then
        let go of the store's lock."""
        if self._holding:
            self._holding = False
            try:
                if self._found:
                    self._found = False
                    flush_lines()
            finally:
                self._locked.close()

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
        return Ref(node.id, self.keys.get(node.id, ""), value.index, scratch)

    def task(self, node: Node) -> NodeTask:
        """The task that computes ``node``."""
        return NodeTask(
            run_id=self.run_state.run_id, node=node.id, kind=node.kind, obj=node.obj,
            inputs={k: self._ref(v) for k, v in node.inputs.items()}, outputs=len(node.outputs),
            unpack=node.unpack, generator=node.generator, factories=self.declared(node),
            key=self._planned.get(node.id),
            cache=self._cacheable(node), store=self.location,
            root=self._root_text, location=node.location,
            release=[(u, i) for u in self._upstream[node.id] if self._readers.get(u) == 1
                     for i in range(len(self.graph.nodes[u].outputs))])

    def _submit(self, node: Node) -> None:
        self._unlock_store()  # a step may compute for hours: gc need not wait for it
        record = self.run_state.nodes[node.id]
        record.status = "running"
        record.metrics = []
        self.observer.node_started(run=self.run_state, node=record)
        flying = self._flying
        after = [flying[u] for u in self._upstream[node.id] if u in flying] if flying else []
        task = self.task(node)
        # what the run logged before the step starts is in the files by then (its code may
        # kill this process: SIGKILL, OOM), and so is the record saying the run is running
        flush_lines()
        handle = self.runner.submit(task, after)
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
        if result.key:
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
        settled = self._settled
        while waiting or self._flying:
            still = []
            for node in waiting:
                upstream = self._upstream[node.id]
                if settled.issuperset(upstream) or all(map(self._known, upstream)):
                    self._visit(node)
                else:
                    still.append(node)
            waiting = still
            if self._flying:
                self._collect()

    def _collect(self) -> None:
        """Wait for tasks in flight and take in their results."""
        self._unlock_store()
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
            try:
                self._close(run)
            finally:  # a run that ends holding it has written its record naming the keys
                self._unlock_store()
        return run

    def _close(self, run: RunState) -> None:
        try:
            self.runner.stop()
        finally:
            for nid, record in run.nodes.items():
                if record.status in ("pending", "running"):
                    queued = any(u not in self._settled for u in self._upstream[nid])
                    stopped = "pruned" if run.status == "pruned" else "failed"
                    record.status = "skipped" if record.status == "pending" or queued \
                        else stopped
                    self.observer.node_finished(run=run, node=record)
            try:
                if not self.runner.in_process:
                    self.store.remove_scratch(run.run_id)
                self.store.flush()
            finally:
                self.planner.remember({  # a fully cached rerun leaves the index as it was
                    nid: (rec.key, rec.status == "failed", rec.metrics, rec.components)
                    for nid, rec in run.nodes.items()
                    if rec.components and rec.status in ("ran", "cached", "inline", "failed")})
                run.ended = time.time()
                self.observer.run_finished(run=run)
