"""Proxies: stand-ins for artifacts while ``run()`` is traced.

While a workflow is built, its inputs and every step's outputs are :class:`Proxy` objects.
They can be passed to other steps and returned, and nothing else: using a proxy's value
(``if acc > 0.9``, ``len(x)``, ``x + 1``) raises :class:`~qflow.errors.GraphBuildError`
naming the file and line, because values exist only inside steps.
"""

from __future__ import annotations

import functools
import linecache
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from qflow.errors import GraphBuildError

_QFLOW_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Tracer(ABC):
    """What the graph builder installs while it traces ``run()``: records step calls."""

    @abstractmethod
    def call(self, step: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Record ``step.apply(*args, **kwargs)`` as a node and return its output proxies."""


ACTIVE_TRACER: ContextVar[Tracer | None] = ContextVar("qflow_active_tracer", default=None)


def user_location() -> tuple[str, int, str]:
    """File, line and source text of the innermost caller outside QFlow's own code."""
    filename, lineno = _user_frame()
    return filename, lineno, linecache.getline(filename, lineno).strip() if lineno else ""


def user_line() -> str:
    """``file.py:12``: where the innermost caller outside QFlow's own code is."""
    filename, lineno = _user_frame()
    return f"{_basename(filename)}:{lineno}"


def _user_frame() -> tuple[str, int]:
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_QFLOW_DIR):
        frame = frame.f_back
    if frame is None:  # pragma: no cover - always called from user code
        return "<unknown>", 0
    return frame.f_code.co_filename, frame.f_lineno


@functools.lru_cache(maxsize=256)
def _basename(path: str) -> str:
    return os.path.basename(path)


class Proxy:
    """A placeholder for output ``index`` of graph node ``node`` while ``run()`` is traced."""

    __slots__ = ("node", "index", "annotation")

    def __init__(self, node: str, index: int = 0, annotation: Any = None) -> None:
        object.__setattr__(self, "node", node)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "annotation", annotation)

    def __repr__(self) -> str:
        suffix = f"[{self.index}]" if self.index else ""
        return f"<artifact {self.node}{suffix}>"

    def _misuse(self, what: str) -> GraphBuildError:
        filename, lineno, text = user_location()
        return GraphBuildError(
            f"{os.path.basename(filename)}:{lineno}: `{text}` {what} {self!r} while the "
            f"graph is built ({filename}). Artifacts have no value until the workflow computes.",
            hint="Move logic that needs the value into a step's apply() and call that step here.",
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise self._misuse(f"reads attribute '{name}' of")

    def __setattr__(self, name: str, value: Any) -> None:
        raise self._misuse(f"sets attribute '{name}' of")

    def __bool__(self) -> bool:
        raise self._misuse("tests the truth value of")

    def __len__(self) -> int:
        raise self._misuse("takes the length of")

    def __iter__(self) -> Iterator[Any]:
        raise self._misuse(
            "iterates over (or unpacks; annotate the step's return as tuple[...] for several "
            "outputs)"
        )

    def __getitem__(self, key: Any) -> Any:
        raise self._misuse("indexes into")

    def __contains__(self, item: Any) -> bool:
        raise self._misuse("tests membership in")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise self._misuse("calls")

    def __format__(self, spec: str) -> str:
        raise self._misuse("formats")

    def __index__(self) -> int:
        raise self._misuse("uses as an index")

    def __float__(self) -> float:
        raise self._misuse("converts to float")

    def __int__(self) -> int:
        raise self._misuse("converts to int")

    __hash__ = object.__hash__


_COMPARISONS = {"__eq__": "==", "__ne__": "!=", "__lt__": "<", "__le__": "<=", "__gt__": ">",
                "__ge__": ">="}


def _operator(name: str) -> Any:
    what = f"compares ({_COMPARISONS[name]})" if name in _COMPARISONS \
        else f"applies operator {name.strip('_')} to"

    def method(self: Proxy, *args: Any) -> Any:
        raise self._misuse(what)

    method.__name__ = name
    return method


for _name in (
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__add__", "__radd__",
    "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
    "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__", "__neg__",
    "__pos__", "__abs__", "__invert__", "__round__", "__and__", "__rand__", "__or__", "__ror__",
    "__xor__", "__rxor__", "__lshift__", "__rlshift__", "__rshift__", "__rrshift__",
    "__matmul__", "__rmatmul__", "__divmod__", "__rdivmod__",
):
    setattr(Proxy, _name, _operator(_name))
Proxy.__hash__ = object.__hash__  # type: ignore[method-assign]


class PendingGenerator:
    """What tracing a generator step's ``apply()`` returns: ``yield from`` it to get the proxies."""

    __slots__ = ("step", "outputs")

    def __init__(self, step: str, outputs: Any) -> None:
        self.step = step
        self.outputs = outputs

    def __iter__(self) -> Iterator[Any]:
        return self._forward()

    def _forward(self) -> Any:
        return self.outputs
        yield  # pragma: no cover - makes this a generator

    def __repr__(self) -> str:
        return f"<generator of step {self.step}: use `yield from`>"


def contains_proxy(value: Any) -> bool:
    """Whether ``value`` is a proxy (or pending generator) or a list, tuple or dict holding one."""
    if isinstance(value, (Proxy, PendingGenerator)):
        return True
    if isinstance(value, (list, tuple)):
        return any(contains_proxy(v) for v in value)
    if isinstance(value, dict):
        return any(contains_proxy(v) for v in value.values())
    return False
