"""A node task: one step (or provider) to compute, described so that any process can run it.

The run driver decides what must compute; each such node becomes a :class:`NodeTask` — what
to call, its settings, its inputs as store keys (:class:`Ref`), its output factories, and
where the store is. :func:`run_node` loads the inputs by key, computes, saves the outputs by
key and returns a :class:`TaskResult`: the key the outputs are under, the metrics, the
status. Runtime info goes to ``emit`` while the step runs. Nothing here refers to the
driver's memory, so a task computes the same in-process or on a Dask worker.

Where values go: a cached node's outputs are saved in the store under its key. A node with
caching off gets a key derived from its outputs' content (so downstream keys see what this
run produced); its outputs go to ``memory`` in-process, or to the run's scratch area of the
store when the task runs elsewhere (removed when the run ends). In-process, a node that
neither is cached nor feeds a cached node gets no key at all (``key=None``): its outputs
only go to ``memory``. Providers with caching off
(``providers.file``, ``providers.factory_load``) travel inside the tasks that read them and
are evaluated there: storing their output would only copy data already on disk.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from qflow.dsl.decorators import Provider, call, signature
from qflow.errors import IntegrityError, QFlowError, user_traceback
from qflow.graph.graph import map_leaves
from qflow.graph.keys import digest, value_digest
from qflow.runtime.info import REPORTER, Metric, RuntimeInfo

TaskStatus = Literal["ran", "failed", "damaged", "skipped"]
"""``damaged``: an input's stored copy failed its checksum; the driver recomputes it.
``skipped``: an upstream task it was queued behind did not run; the driver submits it again."""


@dataclass(frozen=True)
class Ref:
    """Output ``index`` of upstream node ``node``, stored under ``key`` (in scratch if ``scratch``)."""

    node: str
    key: str
    index: int
    scratch: bool = False


@dataclass(frozen=True)
class Inline:
    """An uncached provider evaluated where its value is needed."""

    provider: Provider


@dataclass
class NodeTask:
    """Everything needed to compute one node, picklable.

    Attributes:
        run_id: the run this task belongs to (names its scratch area).
        node: the node's id in the graph.
        kind: ``"step"`` or ``"provider"``.
        obj: the step instance (its settings) or the provider.
        inputs: ``apply()``'s arguments by name; :class:`Ref` and :class:`Inline` stand for
            upstream values, nested in lists, tuples and dicts as the workflow passed them.
        outputs: how many outputs; ``unpack`` whether they come as a ``tuple[...]``.
        factories: the factory each output's annotation asks for (``None``: by the value).
        key: the node's cache key; ``None`` when nothing needs one (the task then computes
            in-process and its outputs only go to ``memory``).
        cache: save the outputs in the store under ``key``; otherwise derive a key from the
            outputs' content and keep them in memory or scratch.
        store: where the store is (a ``StoreLocation``, opened by the process that computes).
        root: the folder relative paths of providers are read from.
        release: the ``(node, output index)`` values in ``memory`` that no other task will
            read: dropped once this one has computed, before its outputs are saved (an
            in-process run then holds one large array less while writing one).
    """

    run_id: str
    node: str
    kind: str
    obj: Any
    inputs: dict[str, Any]
    outputs: int
    unpack: bool
    generator: bool
    factories: list[Any]
    key: str | None
    cache: bool
    store: Any
    root: str | None = None
    location: str = ""
    release: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class TaskResult:
    """What computing a task produced: never the values, only where they are (``key`` is
    empty for a task without a key)."""

    node: str
    status: TaskStatus
    key: str = ""
    duration: float = 0.0
    metrics: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""
    error: str | None = None
    hint: str | None = None
    exception: BaseException | None = None
    damaged: str | None = None


Emit = Callable[[RuntimeInfo], None]
_MISSING = object()


class DamagedInput(Exception):
    """An input's stored copy failed its checksum (it was quarantined)."""

    def __init__(self, ref: Ref, error: IntegrityError) -> None:
        super().__init__(error.message)
        self.ref = ref
        self.error = error


class Context:
    """Where a task reads and writes values: the store, its scratch area, and ``memory``."""

    __slots__ = ("store", "run_id", "memory", "root", "_scratch")

    def __init__(self, store: Any, run_id: str, memory: MutableMapping[tuple[str, int], Any]
                 | None = None, root: Path | None = None) -> None:
        self.store = store
        self.run_id = run_id
        self.memory = memory
        self.root = root
        self._scratch: Any = None

    @property
    def scratch(self) -> Any:
        """The run's scratch store (values of nodes with caching off, out of process)."""
        if self._scratch is None:
            self._scratch = self.store.scratch(self.run_id)
        return self._scratch

    def load(self, ref: Ref) -> Any:
        """The value ``ref`` stands for (memory first, then the store)."""
        if self.memory is not None:
            value = self.memory.get((ref.node, ref.index), _MISSING)
            if value is not _MISSING:
                return value
        value = (self.scratch if ref.scratch else self.store).load(ref.key, ref.index)
        if self.memory is not None:
            self.memory[(ref.node, ref.index)] = value
        return value

    def resolve(self, value: Any) -> Any:
        """``value`` with every :class:`Ref` and :class:`Inline` replaced by the real value."""
        return map_leaves(value, self._resolve_leaf)

    def _resolve_leaf(self, value: Any) -> Any:
        if isinstance(value, Ref):
            try:
                return self.load(value)
            except IntegrityError as exc:
                raise DamagedInput(value, exc) from None
        if isinstance(value, Inline):
            return call_provider(value.provider, self.root)
        return value


@functools.lru_cache(maxsize=64)
def _path(root: str | None) -> Path | None:
    return Path(root) if root else None


def call_provider(provider: Provider, root: Path | None) -> Any:
    """Call ``provider`` with relative paths resolved against ``root``."""
    def resolve(value: Any) -> Any:
        if isinstance(value, Path) and not value.is_absolute() and root is not None:
            return root / value
        return value

    return provider.fn(*[resolve(a) for a in provider.args],
                       **{k: resolve(v) for k, v in provider.kwargs.items()})


@functools.lru_cache(maxsize=4096)
def _apply(cls: type) -> tuple[Callable[..., Any], str]:
    """The ``apply()`` a step class defines, and the name of its first parameter (the step)."""
    fn = cls.apply.__qflow_original__
    return fn, next(iter(signature(fn).parameters))


def _call(task: NodeTask, context: Context, emit: Emit, metrics: list[dict[str, Any]]) -> Any:
    if task.kind == "provider":
        return call_provider(task.obj, context.root)
    step = task.obj
    fn, itself = _apply(type(step))
    arguments = {itself: step, **{k: context.resolve(v) for k, v in task.inputs.items()}}
    last: list[Any] = [None]  # reported, then also yielded (``yield bar.update(1)``): once

    def forward(info: RuntimeInfo) -> None:
        last[0] = info
        if isinstance(info, Metric):
            metrics.append({"name": info.name, "value": info.value, "step": info.step})
        emit(info)

    token = REPORTER.set(forward)  # qflow.report() in apply() or anything it calls
    try:
        output = call(fn, arguments)
        if not task.generator:
            return output
        while True:
            try:
                info = next(output)
            except StopIteration as stop:
                return stop.value
            if isinstance(info, RuntimeInfo) and info is not last[0]:
                forward(info)
    finally:
        REPORTER.reset(token)


def _split(task: NodeTask, output: Any) -> list[Any]:
    n = task.outputs
    if n == 1 and not task.unpack:
        return [output]
    if not isinstance(output, (tuple, list)) or len(output) != n:
        got = f"{len(output)} values" if isinstance(output, (tuple, list)) \
            else type(output).__name__
        raise _Failure(f"it is annotated to return a tuple of {n} outputs but returned {got}",
                       hint="Return exactly the annotated tuple, or fix the annotation.")
    return list(output)


class _Failure(Exception):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _ignore(info: RuntimeInfo) -> None:
    pass


def _ended(task: NodeTask, started: float, metrics: list[dict[str, Any]], status: TaskStatus,
           **kwargs: Any) -> TaskResult:
    """The result of ``task``, which did not compute (``kwargs`` say why)."""
    return TaskResult(node=task.node, status=status, metrics=metrics,
                      duration=time.perf_counter() - started, **kwargs)


def run_node(task: NodeTask, *, store: Any = None, memory: MutableMapping[tuple[str, int], Any]
             | None = None, emit: Emit | None = None) -> TaskResult:
    """Compute ``task``: load its inputs by key, call it, save its outputs by key.

    Args:
        store: the opened store; by default ``task.store`` is opened in this process.
        memory: in-process values by ``(node, output index)``; given, values of nodes with
            caching off stay there instead of going to the run's scratch area.
        emit: called with each runtime info the step yields, while it runs.

    A user's exception, or an output that cannot be saved (no factory, disk full), is a
    ``failed`` result (never raised); ``KeyboardInterrupt`` and an observer's ``StopRun``
    raised by ``emit`` propagate.
    """
    if store is None:
        from qflow.store.location import open_store

        store = open_store(task.store)
    context = Context(store, task.run_id, memory, _path(task.root))
    metrics: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        outputs = _split(task, _call(task, context, emit or _ignore, metrics))
    except DamagedInput as damaged:
        return _ended(task, started, metrics, "damaged", damaged=damaged.ref.node,
                      message=damaged.error.message.split(";")[0])
    except _Failure as failure:
        return _ended(task, started, metrics, "failed", message=failure.message,
                      error=failure.message, hint=failure.hint)
    except QFlowError as exc:  # e.g. an input the store may not load (trust_pickles)
        return _ended(task, started, metrics, "failed", message=exc.message, error=exc.message,
                      hint=exc.hint, exception=exc)
    except Exception as exc:
        return _ended(task, started, metrics, "failed", message=f"{type(exc).__name__}: {exc}",
                      error=user_traceback(exc), exception=exc)
    duration = time.perf_counter() - started
    if memory is not None:
        for value_key in task.release:
            memory.pop(value_key, None)
    if task.cache:
        key, target = task.key or "", store
    elif task.key is None:  # nothing reads a key of this node: its values stay in memory
        if memory is None:
            raise ValueError(f"task {task.node} has no key but no memory to keep its values in")
        key, target = "", None
    else:  # downstream keys must see what this run produced
        key = digest([task.key, [value_digest(o) for o in outputs]])
        target = None if memory is not None else context.scratch
    if target is not None:
        meta = {"node": task.node, "run_id": task.run_id, "metrics": metrics, "duration": duration}
        try:
            target.save(key, list(zip(outputs, task.factories, strict=True)), meta)
        except QFlowError as exc:  # no factory for the value; disk full or file-size limit
            message = f"its output cannot be saved: {exc.message}"
            return _ended(task, started, metrics, "failed", message=message, error=message,
                          hint=exc.hint)
    if memory is not None:
        for i, value in enumerate(outputs):
            memory[(task.node, i)] = value
    return TaskResult(node=task.node, status="ran", key=key, duration=duration, metrics=metrics)
