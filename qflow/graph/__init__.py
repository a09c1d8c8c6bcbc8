"""The graph of a workflow: nodes, building by tracing, cache keys, DOT export."""

from qflow.graph.graph import Graph, Node

__all__ = ["Graph", "Node"]
