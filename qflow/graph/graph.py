"""Graph and Node: what tracing a workflow's ``run()`` produces.

Tracing adds a node only after every node it reads from, so the insertion order is already a
dependency order; no sorting is needed and no cycle can exist.
"""

from __future__ import annotations

import functools
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic_core import to_jsonable_python

from qflow.dsl.proxy import Proxy


def proxies_in(value: Any) -> list[Proxy]:
    """Every proxy inside ``value`` (nested in lists, tuples and dicts), in order."""
    if isinstance(value, Proxy):
        return [value]
    if isinstance(value, (list, tuple)):
        return [p for v in value for p in proxies_in(v)]
    if isinstance(value, dict):
        return [p for v in value.values() for p in proxies_in(v)]
    return []


def map_leaves(value: Any, leaf: Any) -> Any:
    """``value`` rebuilt with ``leaf(x)`` for every ``x`` not a list, tuple or dict."""
    if isinstance(value, tuple):
        return tuple(map_leaves(v, leaf) for v in value)
    if isinstance(value, list):
        return [map_leaves(v, leaf) for v in value]
    if isinstance(value, dict):
        return {k: map_leaves(v, leaf) for k, v in value.items()}
    return leaf(value)


def _type_name(annotation: Any) -> str:
    if annotation is Any or annotation is None:
        return ""
    if isinstance(annotation, type):
        return annotation.__name__
    origin = typing.get_origin(annotation)
    return getattr(origin, "__name__", "") if origin else ""


def edge_label(proxy: Proxy, param: str) -> str:
    """What travels along an edge, for people: ``[0] model: LinearRegression`` (the output's
    index when the source has several, the parameter it feeds, the output's type)."""
    try:
        return _edge_label(proxy.index, proxy.annotation, param)
    except TypeError:  # an unhashable annotation
        return _edge_label.__wrapped__(proxy.index, proxy.annotation, param)


@functools.lru_cache(maxsize=4096)
def _edge_label(index: int, annotation: Any, param: str) -> str:
    source = f"[{index}]" if index else ""
    kind = _type_name(annotation)
    text = f"{source} {param}".strip()
    return f"{text}: {kind}" if kind and text else (text or kind)


@dataclass
class Node:
    """One step call, provider or input value of a workflow.

    Attributes:
        id: unique name in the graph: the ``qflow.name`` given to the call, else the step's
            class name (``Fit_2`` for a second call).
        kind: ``"step"``, ``"provider"`` or ``"input"``.
        obj: the step instance, the provider, or the input value.
        inputs: the arguments by parameter name; proxies stand for upstream outputs.
        outputs: the annotation of each output (several for a ``tuple[...]`` return).
        labels: workflow-level label -> the step's metric name (``qflow.label_info``).
        generator: whether ``apply()`` yields runtime info.
        unpack: whether the outputs are a ``tuple[...]`` (even of one element) to unpack.
        location: ``file:line`` of the call in ``run()``.
    """

    id: str
    kind: str
    obj: Any
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: list[Any] = field(default_factory=lambda: [Any])
    labels: dict[str, str] = field(default_factory=dict)
    generator: bool = False
    unpack: bool = False
    location: str = ""

    @functools.cached_property
    def upstream(self) -> list[str]:
        """Ids of the nodes this one reads from, without repeats, in argument order (nodes
        are not changed once built)."""
        found: dict[str, None] = {}
        for value in self.inputs.values():
            if type(value) is Proxy:  # the common case, without recursing
                found[value.node] = None
            else:
                found.update((p.node, None) for p in proxies_in(value))
        return list(found)

    @property
    def title(self) -> str:
        """What the node is, for people: ``Fit(alpha=0.5)``, ``factory_load(...)``, ``input``."""
        if self.kind == "step":  # the fields, as iterating the model gives them, but faster
            settings = ", ".join([f"{k}={v!r}" for k, v in vars(self.obj).items()
                                  if not k.startswith("_")])
            return f"{type(self.obj).__name__}({settings})"
        if self.kind == "provider":
            return repr(self.obj)
        return "input"


@dataclass
class Graph:
    """The nodes of a workflow in dependency order, and the structure of its result."""

    name: str
    nodes: dict[str, Node] = field(default_factory=dict)
    result: Any = None
    _suffixes: dict[str, int] = field(default_factory=dict, repr=False)

    def add(self, node: Node) -> Node:
        """Insert ``node`` (its upstream nodes must already be in the graph)."""
        self.nodes[node.id] = node
        return node

    def unique_id(self, base: str) -> str:
        """``base``, or ``base_2``, ``base_3``... if already taken."""
        if base not in self.nodes:
            return base
        n = self._suffixes.get(base, 1) + 1
        while f"{base}_{n}" in self.nodes:
            n += 1
        self._suffixes[base] = n
        return f"{base}_{n}"

    def downstream(self) -> dict[str, list[str]]:
        """Node id -> ids of the nodes that read from it."""
        out: dict[str, list[str]] = {nid: [] for nid in self.nodes}
        for node in self.nodes.values():
            for up in node.upstream:
                out[up].append(node.id)
        return out

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able description: nodes with kind, title, upstream ids, incoming edges
        (``"inputs": [{"from": "Fit", "label": "model: LinearRegression"}]``) and a step's
        settings (``"settings": {"alpha": 0.5}``, as JSON; ``{}`` for other nodes); the result's
        outputs (``"result"``, as ``Fit[0]``) and the edges into it (``"result_inputs"``)."""
        return {
            "name": self.name,
            "nodes": [_described(n) for n in self.nodes.values()],
            "result": [f"{p.node}[{p.index}]" for p in proxies_in(self.result)],
            "result_inputs": [{"from": p.node, "label": edge_label(p, "")}
                              for p in proxies_in(self.result)],
        }


def _described(node: Node) -> dict[str, Any]:
    """One node of :meth:`Graph.to_dict`."""
    inputs = []
    for param, value in node.inputs.items():
        for p in (value,) if type(value) is Proxy else proxies_in(value):
            inputs.append({"from": p.node, "label": edge_label(p, param)})
    return {
        "id": node.id,
        "kind": node.kind,
        "title": node.title,
        "upstream": list(node.upstream),
        "inputs": inputs,
        "outputs": len(node.outputs),
        "labels": node.labels,
        "location": node.location,
        # a setting JSON cannot hold is kept as its repr
        "settings": to_jsonable_python(node.obj, fallback=repr) if node.kind == "step" else {},
    }
