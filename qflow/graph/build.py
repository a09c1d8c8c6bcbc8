"""Workflow building: trace ``run()`` with proxies into a :class:`Graph`; no step runs.

Each parameter of ``run()`` becomes an input node (a provider, or a plain value hashed by
value). A step called with at least one proxy becomes a node and returns proxies; one called
with none runs at once as plain Python.
"""

from __future__ import annotations

import builtins
import collections.abc
import functools
import inspect
import os
import typing
from typing import Any

from qflow.dsl.decorators import Provider, WorkflowBase, bind, labels_of, name_of
from qflow.dsl.proxy import ACTIVE_TRACER, PendingGenerator, Proxy, Tracer, user_line
from qflow.errors import GraphBuildError
from qflow.graph.graph import Graph, Node


class _Unresolved:
    """Stands for a name an annotation uses but that is not importable at run time
    (imported under ``TYPE_CHECKING``): its structure (``tuple[...]``) still counts."""

    def __getattr__(self, name: str) -> _Unresolved:
        return self

    def __getitem__(self, item: Any) -> _Unresolved:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> _Unresolved:
        return self


class _Lenient(dict):  # type: ignore[type-arg]
    def __init__(self, known: dict[str, Any]) -> None:
        super().__init__()
        self.known = known

    def __getitem__(self, name: str) -> Any:
        if name in self.known or hasattr(builtins, name):
            raise KeyError(name)
        return _Unresolved()


@functools.lru_cache(maxsize=4096)
def _resolved(fn: Any) -> dict[str, Any]:
    """``typing.get_type_hints(fn)``, once per function (shared: not to be changed). A name
    that does not resolve raises, which is not remembered: it may be defined later."""
    return typing.get_type_hints(fn)


def _hints(fn: Any) -> dict[str, Any]:
    """``fn``'s annotations, evaluated; names that cannot be resolved become placeholders."""
    try:
        return _resolved(fn)
    except Exception:
        pass
    out = {}
    namespace = getattr(fn, "__globals__", {})
    for name, annotation in getattr(fn, "__annotations__", {}).items():
        if isinstance(annotation, str):
            try:
                annotation = eval(annotation, namespace, _Lenient(namespace))  # noqa: S307
            except Exception:
                annotation = Any
        out[name] = annotation
    return out


def _returned(fn: Any, generator: bool) -> Any:
    """The annotated return type of ``fn`` (for a generator, the ``Generator``'s return type)."""
    ret = _hints(fn).get("return", Any)
    if generator:
        origin = typing.get_origin(ret)
        args = typing.get_args(ret)
        if origin in (collections.abc.Generator, typing.Generator) and len(args) == 3:
            return args[2]
        return Any
    return ret


def _output_annotations(ret: Any) -> tuple[list[Any], bool]:
    """One annotation per output, and whether the outputs come as a ``tuple[...]``."""
    if typing.get_origin(ret) is tuple:
        args = typing.get_args(ret)
        if args and args[-1] is not Ellipsis:
            return list(args), True
    return [ret], False


@functools.lru_cache(maxsize=4096)
def _outputs(fn: Any) -> tuple[bool, list[Any], bool]:
    generator = inspect.isgeneratorfunction(fn)
    return (generator, *_output_annotations(_returned(fn, generator)))


def _where() -> str:
    return user_line()


class _GraphTracer(Tracer):
    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def call(self, step: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        cls = type(step)
        for value in (*args, *kwargs.values()) if kwargs else args:
            if isinstance(value, PendingGenerator):
                raise GraphBuildError(
                    f"{_where()}: {value.step}.apply() yields runtime info, so its result must be "
                    f"taken with `yield from` before it is passed to {cls.__name__}.",
                    hint=f"Write `x = yield from {value.step}(...).apply(...)`.",
                )
        original = cls.apply.__qflow_original__
        try:
            inputs = bind(original, (step, *args), kwargs)
        except TypeError as exc:
            raise GraphBuildError(f"{_where()}: {cls.__name__}.apply(): {exc}.") from None
        del inputs[next(iter(inputs))]  # the step itself
        generator, annotations, unpack = _outputs(original)
        node_id = self._node_id(step)
        self.graph.add(Node(id=node_id, kind="step", obj=step, inputs=inputs, outputs=annotations,
                            labels=dict(labels_of(step)), generator=generator, unpack=unpack,
                            location=user_line()))
        if unpack:
            proxies: Any = tuple(Proxy(node_id, i, a) for i, a in enumerate(annotations))
        else:
            proxies = Proxy(node_id, 0, annotations[0])
        return PendingGenerator(node_id, proxies) if generator else proxies

    def _node_id(self, step: Any) -> str:
        """The name ``qflow.name`` gave the call, checked to be free, or ``Class``/``Class_2``."""
        name = name_of(step)
        if name is None:
            return self.graph.unique_id(type(step).__name__)
        taken = self.graph.nodes.get(name)
        if taken is not None:
            what = f"the step call at {taken.location}" if taken.kind == "step" \
                else f"the input `{name}` of run()"
            raise GraphBuildError(
                f"{_where()}: node name {name!r} is already used by {what}; node names must be "
                "unique in a workflow.",
                hint=f'Give this call another name, e.g. qflow.name(..., "{name}_2").',
            )
        return name


def build(workflow: WorkflowBase, inputs: dict[str, Any] | None = None) -> Graph:
    """Trace ``workflow.run()`` into a graph; ``inputs`` override ``run()``'s defaults."""
    if not isinstance(workflow, WorkflowBase):
        raise GraphBuildError(
            f"{workflow!r} is not a workflow instance.",
            hint="Decorate the class with @qflow.workflow and pass an instance, e.g. Train().",
        )
    cls = type(workflow)
    graph = Graph(name=cls.__name__)
    signature = inspect.signature(cls.run)
    params = list(signature.parameters.values())[1:]
    where = os.path.basename(getattr(cls.run, "__code__", None) and cls.run.__code__.co_filename or cls.__module__)
    if not params:
        raise GraphBuildError(
            f"{cls.__name__}.run() has no input ({where}), so there is nothing to build a graph "
            "from and no step would run.",
            hint="Give run() at least one input, e.g. "
            "`def run(self, table: Table = providers.factory_load(Path('resources/table')))`.",
        )
    given = dict(inputs or {})
    unknown = set(given) - {p.name for p in params}
    if unknown:
        raise GraphBuildError(
            f"{cls.__name__}.run() has no input named {', '.join(sorted(unknown))}; "
            f"its inputs are {', '.join(p.name for p in params)}."
        )
    hints = _hints(cls.run)
    proxies = {}
    for p in params:
        value = given.get(p.name, p.default)
        if value is inspect.Parameter.empty:
            raise GraphBuildError(
                f"Input '{p.name}' of {cls.__name__}.run() has no value ({where}).",
                hint="Give it a default (a provider such as providers.factory_load(...)) "
                "or set it under `inputs:` in the workflow's config.",
            )
        annotation = hints.get(p.name, Any)
        kind = "provider" if isinstance(value, Provider) else "input"
        if kind == "provider" and annotation is Any:
            annotation = _returned(value.fn, False)
        graph.add(Node(id=p.name, kind=kind, obj=value, outputs=[annotation]))
        proxies[p.name] = Proxy(p.name, 0, annotation)
    token = ACTIVE_TRACER.set(_GraphTracer(graph))
    try:
        result = workflow.run(**proxies)
        if inspect.isgenerator(result):
            try:
                while True:
                    next(result)
            except StopIteration as stop:
                result = stop.value
        if isinstance(result, PendingGenerator):
            result = result.outputs
    finally:
        ACTIVE_TRACER.reset(token)
    graph.result = result
    return graph


