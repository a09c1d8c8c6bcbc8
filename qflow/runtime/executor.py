"""Workflow computation: execute a graph's nodes in dependency order, through the cache.

For each node, in order: compute its key from its upstream keys; if the store has it, the
node is *cached* and nothing is read; otherwise its inputs are materialised (from memory,
or loaded from the store, or recomputed if the stored copy is corrupt), it runs, and its
outputs are saved. Only values a running node or the result needs are ever loaded.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from qflow.artifacts.registry import FactoryRegistry
from qflow.dsl.decorators import signature
from qflow.dsl.proxy import Proxy
from qflow.errors import FactoryError, IntegrityError, QFlowError, StepError
from qflow.graph.explain import explain
from qflow.graph.graph import Graph, Node
from qflow.graph.keys import components, digest, value_digest
from qflow.runtime.events import NodeRun, Observer, RunState, StopRun
from qflow.runtime.info import Metric, RuntimeInfo
from qflow.store.local import Store


def user_traceback(exc: BaseException) -> str:
    """The traceback of a user's exception, without QFlow's own frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "/qflow/runtime/" not in f.filename.replace("\\", "/")]
    lines = traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "Traceback (most recent call last):\n" + "".join(lines)


class Executor:
    """Computes one run of a graph against a store, reporting to an observer."""

    def __init__(self, graph: Graph, store: Store, run: RunState, observer: Observer, *,
                 root: Path | None = None, cache: bool = True) -> None:
        self.graph = graph
        self.store = store
        self.registry: FactoryRegistry = store.registry
        self.run_state = run
        self.observer = observer
        self.root = root
        self.cache = cache
        self.keys: dict[str, str] = {}
        self.values: dict[tuple[str, int], Any] = {}
        self.previous: dict[str, Any] = {}
        self._declared: dict[str, list[Any]] = {}

    # -- values ---------------------------------------------------------------------------
    def materialise(self, value: Any) -> Any:
        """``value`` with every proxy replaced by the real output it stands for."""
        if isinstance(value, Proxy):
            slot = (value.node, value.index)
            if slot not in self.values:
                self._obtain(self.graph.nodes[value.node])
            return self.values[slot]
        if isinstance(value, tuple):
            return tuple(self.materialise(v) for v in value)
        if isinstance(value, list):
            return [self.materialise(v) for v in value]
        if isinstance(value, dict):
            return {k: self.materialise(v) for k, v in value.items()}
        return value

    def _obtain(self, node: Node) -> None:
        """Put ``node``'s outputs in memory: load them, or compute them if they cannot be."""
        if node.kind == "input":
            self.values[(node.id, 0)] = node.obj
            return
        if node.kind == "provider" and not node.obj.cache:
            self._compute(node, self.run_state.nodes[node.id], save=False)
            return
        try:
            for i in range(len(node.outputs)):
                self.values[(node.id, i)] = self.store.load(self.keys[node.id], i)
        except IntegrityError as exc:
            record = self.run_state.nodes[node.id]
            record.reasons = [f"stored artifact was corrupt ({exc.message.split(';')[0]})"]
            self._compute(node, record, save=True)
            self.observer.node_finished(run=self.run_state, node=record)

    # -- computing ------------------------------------------------------------------------
    def _call(self, node: Node, record: NodeRun) -> Any:
        if node.kind == "provider":
            provider = node.obj
            args = [self._resolve_path(a) for a in provider.args]
            kwargs = {k: self._resolve_path(v) for k, v in provider.kwargs.items()}
            return provider.fn(*args, **kwargs)
        step = node.obj
        fn = type(step).apply.__qflow_original__
        sig = signature(fn)
        bound = sig.bind_partial()
        bound.arguments = {next(iter(sig.parameters)): step,
                           **{k: self.materialise(v) for k, v in node.inputs.items()}}
        output = fn(*bound.args, **bound.kwargs)
        if not node.generator:
            return output
        while True:
            try:
                info = next(output)
            except StopIteration as stop:
                return stop.value
            self._info(node, record, info)

    def _info(self, node: Node, record: NodeRun, info: Any) -> None:
        if not isinstance(info, RuntimeInfo):
            return
        if isinstance(info, Metric):
            record.metrics.append({"name": info.name, "value": info.value, "step": info.step})
            self._promote(node, info.name, info.value)
        self.observer.node_info(run=self.run_state, node=record, info=info)

    def _promote(self, node: Node, metric: str, value: float) -> None:
        for label, name in node.labels.items():
            if name == metric:
                self.run_state.metrics[label] = value

    def _resolve_path(self, value: Any) -> Any:
        if isinstance(value, Path) and not value.is_absolute() and self.root is not None:
            return self.root / value
        return value

    def _compute(self, node: Node, record: NodeRun, *, save: bool) -> None:
        record.status = "running"
        self.observer.node_started(run=self.run_state, node=record)
        started = time.perf_counter()
        try:
            output = self._call(node, record)
        except Exception as exc:
            record.duration = time.perf_counter() - started
            raise self._fail(node, record, exc, f"{type(exc).__name__}: {exc}") from exc
        outputs = self._split(node, record, output)
        for i, value in enumerate(outputs):
            self.values[(node.id, i)] = value
        record.duration = time.perf_counter() - started
        if save:
            declared = self.declared(node)
            meta = {"node": node.id, "run_id": self.run_state.run_id, "metrics": record.metrics,
                    "duration": record.duration}
            try:
                self.store.save(record.key or "", list(zip(outputs, declared, strict=True)), meta)
            except FactoryError as exc:
                raise self._fail(node, record, exc, f"its output cannot be saved: {exc.message}",
                                 hint=exc.hint) from exc
        record.status = "ran"

    def _split(self, node: Node, record: NodeRun, output: Any) -> list[Any]:
        n = len(node.outputs)
        if n == 1 and not node.unpack:
            return [output]
        if not isinstance(output, (tuple, list)) or len(output) != n:
            got = f"{len(output)} values" if isinstance(output, (tuple, list)) \
                else type(output).__name__
            raise self._fail(node, record, None,
                             f"it is annotated to return a tuple of {n} outputs but returned {got}",
                             hint="Return exactly the annotated tuple, or fix the annotation.")
        return list(output)

    def _fail(self, node: Node, record: NodeRun, exc: BaseException | None, what: str,
              hint: str | None = None) -> StepError:
        record.status = "failed"
        record.error = user_traceback(exc) if exc is not None and not isinstance(exc, QFlowError) \
            else what
        self.run_state.failed_step = node.id
        self.observer.node_finished(run=self.run_state, node=record)
        where = f" (called at {node.location})" if node.location else ""
        return StepError(f"Step '{node.id}'{where} failed in run {self.run_state.run_id}: {what}",
                         step=node.id, run_id=self.run_state.run_id, hint=hint)

    # -- the run --------------------------------------------------------------------------
    def declared(self, node: Node) -> list[Any]:
        """The factory each output's annotation asks for (``None``: chosen by the value)."""
        if node.kind == "input":
            return [None]
        found = self._declared.get(node.id)
        if found is None:
            found = self._declared[node.id] = [self.registry.for_annotation(a) for a in node.outputs]
        return found

    def _cacheable(self, node: Node) -> bool:
        if not self.cache:
            return False
        if node.kind == "step":
            return bool(type(node.obj).__qflow_cache__)
        return node.kind == "provider" and node.obj.cache

    def _visit(self, node: Node) -> None:
        record = self.run_state.nodes[node.id]
        declared = self.declared(node)
        comps = components(node, self.keys, [f.ident if f else None for f in declared], self.root)
        record.components = comps
        key = digest(comps)
        record.key = self.keys[node.id] = key
        if node.kind == "input" or (node.kind == "provider" and not node.obj.cache):
            record.status = "cached" if node.kind == "provider" else "input"
            self.observer.node_finished(run=self.run_state, node=record)
            return
        if self._cacheable(node) and self.store.has(key):
            record.status = "cached"
            try:
                record.metrics = self.store.manifest(key).get("metrics", [])
            except IntegrityError:
                record.metrics = []
            for metric in record.metrics:
                self._promote(node, metric["name"], metric["value"])
            self.observer.node_finished(run=self.run_state, node=record)
            return
        upstream = {self.keys[u]: u for u in node.upstream}
        if not self._cacheable(node):
            record.reasons = ["caching is off for this step" if self.cache else "caching is off"]
        else:
            previous = self.previous.get(node.id)
            record.reasons = explain(previous, comps, upstream) or [
                "it failed last time" if previous and previous.get("_failed")
                else "artifact missing from the store"]
        self._compute(node, record, save=self._cacheable(node))
        if not self._cacheable(node):  # downstream keys must see what this run produced
            outputs = [self.values[(node.id, i)] for i in range(len(node.outputs))]
            record.key = self.keys[node.id] = digest([key, [value_digest(o) for o in outputs]])
        self.observer.node_finished(run=self.run_state, node=record)

    def execute(self) -> RunState:
        """Run every node; return the run state (``status`` ``succeeded`` or raise)."""
        run = self.run_state
        scope = f"workflow-{self.graph.name}"
        self.previous = self.store.read_index(scope)
        self.observer.run_started(run=run)
        try:
            for node in self.graph.nodes.values():
                self._visit(node)
            run.result = self.materialise(self.graph.result)
            run.status = "succeeded"
        except KeyboardInterrupt:
            run.status = "killed"
            run.error = "interrupted"
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
            for record in run.nodes.values():
                if record.status in ("pending", "running"):
                    stopped = "pruned" if run.status == "pruned" else "failed"
                    record.status = "skipped" if record.status == "pending" else stopped
                    self.observer.node_finished(run=run, node=record)
            try:
                self.store.flush()
            finally:
                for nid, rec in run.nodes.items():
                    if rec.components and rec.status in ("ran", "cached", "failed"):
                        self.previous[nid] = {**rec.components, "_failed": rec.status == "failed"}
                self.store.write_index(scope, self.previous)
                run.ended = time.time()
                self.observer.run_finished(run=run)
        return run
