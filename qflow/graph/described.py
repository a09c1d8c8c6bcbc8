"""A graph known only by its description: the dict ``Graph.to_dict()`` returns.

Runs whose graph is not a traced workflow — a notebook session's step cells, a run replayed
from its event log — carry a ``DescribedGraph``. It offers what observers read from a run's
graph (``name``, ``nodes`` with ``kind``/``labels``, ``to_dict()``), so trackers, the run
recorder and widgets treat every run alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DescribedNode:
    """One node of a described graph."""

    id: str
    kind: str = "step"
    title: str = ""
    upstream: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The node as ``Graph.to_dict()`` describes nodes."""
        return {"id": self.id, "kind": self.kind, "title": self.title or self.id,
                "upstream": list(self.upstream), "labels": dict(self.labels),
                "settings": dict(self.settings), "inputs": list(self.inputs)}


@dataclass
class DescribedGraph:
    """Nodes in dependency order, by id; built from or turned into the described dict."""

    name: str
    nodes: dict[str, DescribedNode] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> DescribedGraph:
        """The graph ``data`` describes (``None``: an empty graph named ``graph``)."""
        data = data or {}
        known = set(DescribedNode.__dataclass_fields__)
        nodes = [DescribedNode(**{k: v for k, v in n.items() if k in known})
                 for n in data.get("nodes", [])]
        return cls(name=data.get("name") or "graph", nodes={n.id: n for n in nodes})

    def to_dict(self) -> dict[str, Any]:
        """The described form (what run records and renderers read)."""
        return {"name": self.name, "nodes": [n.to_dict() for n in self.nodes.values()],
                "result": []}
