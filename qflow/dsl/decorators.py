"""The decorators that make a workflow: ``step``, ``workflow``, ``provider``, ``mixin``.

``@qflow.step`` and ``@qflow.workflow`` turn a class into a frozen pydantic model (its
annotated fields are its settings, validated on construction). A step's ``apply()`` is wrapped
so that, while a workflow is being traced, a call with at least one proxy argument becomes a
graph node instead of running; any other call is plain Python.
"""

from __future__ import annotations

import functools
import inspect
import os
import types
from collections.abc import Callable
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict, ValidationError

from qflow.dsl.proxy import ACTIVE_TRACER, contains_proxy, user_location
from qflow.errors import GraphBuildError, SettingsError

C = TypeVar("C", bound=type)
F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def _describe_validation(cls: type, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(settings)"
        if err["type"] == "extra_forbidden":
            known = ", ".join(getattr(cls, "model_fields", {})) or "none"
            parts.append(f"unknown field '{field}' (fields: {known})")
        else:
            parts.append(f"field '{field}': {err['msg'].lower()}, got {err.get('input')!r}")
    return f"{cls.__name__}: " + "; ".join(parts) + "."


class QFlowModel(BaseModel):
    """Base of steps, workflows and mixins: validated, immutable settings."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, protected_namespaces=()
    )
    # Labels and a node name are kept in pydantic's private-attribute dict only on the copies
    # label_info() and name() make (see _marked): declared private attributes would cost
    # every model's construction several microseconds, and a workflow makes one per step call.

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise SettingsError(
                _describe_validation(type(self), exc),
                hint=f"Check the values given to {type(self).__name__}(...) or in the config.",
            ) from None


def labels_of(model: QFlowModel) -> dict[str, str]:
    """The labels ``label_info`` gave ``model`` (none for a model made directly)."""
    marks = model.__pydantic_private__
    return marks["_qflow_labels"] if marks else {}


def name_of(model: QFlowModel) -> str | None:
    """The node name ``qflow.name`` gave ``model``, if any."""
    marks = model.__pydantic_private__
    return marks["_qflow_name"] if marks else None


def _marked(model: Any, labels: dict[str, str], name: str | None) -> Any:
    """A copy of ``model`` carrying ``labels`` and the node ``name`` (copied and pickled with
    it, compared by ``==``)."""
    copy = model.model_copy()
    object.__setattr__(copy, "__pydantic_private__", {"_qflow_labels": labels,
                                                      "_qflow_name": name})
    return copy


class StepBase(QFlowModel):
    """Base class ``@qflow.step`` adds; ``apply()`` holds the step's logic."""

    __qflow_cache__: bool = True
    __qflow_version__: str | None = None


class WorkflowBase(QFlowModel):
    """Base class ``@qflow.workflow`` adds; ``run()`` wires the steps together."""


def _rebuild(cls: type, base: type[QFlowModel]) -> type:
    """Recreate ``cls`` as a subclass of ``base`` (a pydantic model) with the same body."""
    if issubclass(cls, base):
        return cls
    if issubclass(cls, QFlowModel):  # it inherits a mixin, so it is a model already
        keep = {k: cls.__dict__[k] for k in ("__module__", "__qualname__", "__doc__")
                if k in cls.__dict__}
        return types.new_class(cls.__name__, (cls, base), {}, lambda ns: ns.update(keep))
    namespace = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
    bases = tuple(b for b in cls.__bases__ if b is not object)
    if not any(issubclass(b, base) for b in bases):
        bases = (*bases, base)
    try:
        return types.new_class(cls.__name__, bases, {}, lambda ns: ns.update(namespace))
    except TypeError as exc:
        raise SettingsError(f"{cls.__qualname__} cannot become a QFlow model: {exc}.") from None


@functools.lru_cache(maxsize=4096)
def signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``inspect.signature(fn)``, remembered (steps are called many times)."""
    return inspect.signature(fn)


@functools.lru_cache(maxsize=4096)
def _keyword_parameters(fn: Callable[..., Any]) -> tuple[tuple[str, ...], int, frozenset[str]] | None:
    """``fn``'s parameter names, how many may be given by position, and the required ones, if
    every parameter can be passed by keyword (no ``*args``, ``**kwargs`` or positional-only
    ones); else ``None``."""
    params = signature(fn).parameters.values()
    if any(p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params):
        return None
    return (tuple(p.name for p in params),
            sum(p.kind == p.POSITIONAL_OR_KEYWORD for p in params),
            frozenset(p.name for p in params if p.default is p.empty))


def bind(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments of the call ``fn(*args, **kwargs)`` by parameter name, in parameter order,
    as ``inspect.Signature.bind`` gives them (defaults not filled in).

    Steps' ``apply()`` methods are bound once per call while a workflow is built; the common
    shape (every parameter passable by keyword) is bound here without ``inspect``, any
    other shape, and every mistake (a missing or unknown argument), by ``inspect``.

    Raises:
        TypeError: the arguments do not fit the signature (``inspect``'s message).
    """
    known = _keyword_parameters(fn)
    if known is not None:
        names, positional, required = known
        if len(args) <= positional:
            bound = dict(zip(names, args, strict=False))  # args may stop early
            if not kwargs or (kwargs.keys().isdisjoint(bound) and kwargs.keys() <= set(names)):
                if kwargs:
                    bound.update(kwargs)
                    bound = {n: bound[n] for n in names if n in bound}
                if required <= bound.keys():
                    return bound
    return dict(signature(fn).bind(*args, **kwargs).arguments)


def call(fn: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    """Call ``fn`` with ``arguments`` as :func:`bind` gave them."""
    if _keyword_parameters(fn) is not None:
        return fn(**arguments)
    bound = signature(fn).bind_partial()
    bound.arguments = arguments  # type: ignore[assignment]
    return fn(*bound.args, **bound.kwargs)


class _TracedApply:
    """A step's ``apply``: traced into the graph when called with proxies, else plain Python.

    A module-level class rather than a closure, so that a step class shipped by value to
    another process (a Dask worker) pickles without the tracer's context variable.
    """

    def __init__(self, original: Callable[..., Any]) -> None:
        self.__qflow_original__ = original
        functools.update_wrapper(self, original)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        return self if instance is None else types.MethodType(self, instance)

    def __call__(self, step: Any, *args: Any, **kwargs: Any) -> Any:
        tracer = ACTIVE_TRACER.get()
        if tracer is not None:
            for value in (*args, *kwargs.values()) if kwargs else args:
                if contains_proxy(value):
                    return tracer.call(step, args, kwargs)
        return self.__qflow_original__(step, *args, **kwargs)


def _wrap_apply(cls: type) -> None:
    original = getattr(cls, "apply", None)
    if original is None or not callable(original):
        raise GraphBuildError(
            f"Step {cls.__qualname__} has no apply() method.",
            hint="Put the step's logic in `def apply(self, ...)`.",
        )
    if getattr(original, "__qflow_original__", None) is not None:
        return
    cls.apply = _TracedApply(original)


@overload
def step(cls: C, /) -> C: ...
@overload
def step(*, cache: bool = True, version: str | None = None) -> Callable[[C], C]: ...
def step(cls: Any = None, /, *, cache: bool = True, version: str | None = None) -> Any:
    """Make a class a step: its fields are settings, ``apply()`` computes its outputs.

    Args:
        cache: ``False`` for a non-deterministic step: it is recomputed on every run.
        version: a manual salt; change it to force a recompute without editing code.
    """

    def decorate(c: C) -> C:
        new = _rebuild(c, StepBase)
        new.__qflow_cache__ = cache
        new.__qflow_version__ = version
        _wrap_apply(new)
        return new  # type: ignore[return-value]

    return decorate if cls is None else decorate(cls)


def workflow(cls: C) -> C:
    """Make a class a workflow: its fields are parameters, ``run()`` wires steps together."""
    new = _rebuild(cls, WorkflowBase)
    if not callable(getattr(new, "run", None)):
        raise GraphBuildError(
            f"Workflow {cls.__qualname__} has no run() method.",
            hint="Define `def run(self, <inputs>) -> <result>` that calls the steps.",
        )
    return new  # type: ignore[return-value]


def mixin(cls: C) -> C:
    """Make a class a reusable base for steps and workflows (fields and methods inherited)."""
    return _rebuild(cls, QFlowModel)  # type: ignore[return-value]


def label_info(step_instance: Any, **labels: str) -> Any:
    """Promote the step's metrics to workflow-level ones: ``label_info(Fit(), train_loss="loss")``.

    Each keyword is a label; its value names a metric the step yields. Returns a copy of the
    step that carries the labels; call ``.apply(...)`` on it as usual.
    """
    if not isinstance(step_instance, StepBase):
        raise GraphBuildError(
            f"label_info() takes a step instance, got {type(step_instance).__name__}.",
            hint="Call it as qflow.label_info(MyStep(...), label='metric').apply(...).",
        )
    bad = {k: v for k, v in labels.items() if not isinstance(v, str)}
    if bad:
        raise GraphBuildError(f"label_info() labels must name metrics as strings, got {bad!r}.")
    return _marked(step_instance, {**labels_of(step_instance), **labels}, name_of(step_instance))


def name(step_instance: T, node_name: str, /) -> T:
    """Name the graph node of a step call: ``qflow.name(ReadCSV(), "companies").apply(path)``.

    Without a name, a node is named after its step class (``ReadCSV``, then ``ReadCSV_2``...
    by call order). The name is used by the graph, the run record, the console, trackers
    (``companies.duration_s``) and ``RunView.steps``; it is not part of the cache key. It must
    be a Python identifier, unique among the workflow's nodes (its inputs included). Returns a
    copy of the step that carries the name (and any ``label_info`` labels).
    """
    filename, lineno, _ = user_location()
    where = f"{os.path.basename(filename)}:{lineno}"
    if not isinstance(step_instance, StepBase):
        raise GraphBuildError(
            f"{where}: qflow.name() takes a step instance, got {type(step_instance).__name__}.",
            hint='Call it as qflow.name(MyStep(...), "my_name").apply(...).',
        )
    if not isinstance(node_name, str) or not node_name.isidentifier():
        raise GraphBuildError(
            f"{where}: {node_name!r} is not a node name: it must be a Python identifier "
            "(letters, digits and underscores, not starting with a digit).",
            hint='Use a name such as "companies" or "read_companies".',
        )
    return _marked(step_instance, dict(labels_of(step_instance)), node_name)  # type: ignore[no-any-return]


class Provider:
    """A deferred call of a ``@qflow.provider`` function: a source of a workflow input.

    A provider's cache key covers its code, its arguments and a fingerprint (size and
    modification time) of every file or folder passed to it as a ``pathlib.Path``.
    """

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], *, cache: bool
    ) -> None:
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.cache = cache
        self.name = fn.__name__

    def __repr__(self) -> str:
        args = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"{self.name}({', '.join(args)})"

    @property
    def returns(self) -> Any:
        """The return annotation of the provider function (used to pick a factory)."""
        return inspect.signature(self.fn, eval_str=True).return_annotation


def provider(fn: F | None = None, /, *, cache: bool = True) -> Any:
    """Make a function a provider: calling it returns a ``Provider`` for ``run()``'s inputs.

    Args:
        cache: ``False`` when storing the output would only duplicate data already on disk.
    """

    def decorate(f: F) -> Callable[..., Provider]:
        @functools.wraps(f)
        def make(*args: Any, **kwargs: Any) -> Provider:
            return Provider(f, args, kwargs, cache=cache)

        make.__qflow_provider__ = f  # type: ignore[attr-defined]
        return make

    return decorate if fn is None else decorate(fn)
