"""Planning a run: each node's key, whether the store has it, and why it would run.

:class:`Planner` is the one place that decides, for a node whose upstream keys are known,
its key (from its components), whether it is an input, an inline provider, cached, or must
run, and — the same sentences a run records — why. The run driver asks it while it runs;
:func:`plan` asks it for every node without running anything, for ``qflow plan``: nothing
is computed, no run record is written and the store is only read (its ``has`` and the
workflow's index of last keys).

A node downstream of a step with caching off cannot be decided beforehand: that step's
output key is derived from the content it produces. Such nodes are ``undecided``.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Literal

from qflow.graph.explain import explain
from qflow.graph.graph import Graph, Node
from qflow.graph.keys import components, components_text, digest

PlanStatus = Literal["input", "inline", "cached", "run", "undecided"]
"""What a run would do with a node: nothing (a plain ``input`` value, an ``inline`` provider
read inside the steps that use it), take it from the store (``cached``), compute it
(``run``), or decide only once an upstream step with caching off has run (``undecided``)."""


@dataclass
class NodePlan:
    """What a run would do with one node, and why."""

    id: str
    kind: str
    status: PlanStatus
    key: str | None = None
    components: dict[str, Any] | None = None
    components_json: str | None = field(default=None, repr=False)
    """``components`` as the canonical JSON its key hashes (records reuse the text)."""
    reasons: list[str] = field(default_factory=list)
    estimate: float | None = None
    """Median seconds of the step's past computations (``None``: it never ran)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (without the key's components)."""
        return {"id": self.id, "kind": self.kind, "status": self.status, "key": self.key,
                "reasons": list(self.reasons), "estimate": self.estimate}


@dataclass
class RunPlan:
    """Which steps a run of ``workflow`` would compute, which come from the cache, and why."""

    workflow: str
    parameters: dict[str, Any]
    nodes: dict[str, NodePlan]

    def counts(self) -> dict[str, int]:
        """How many steps and providers are in each plan status (input values not counted)."""
        out: dict[str, int] = {}
        for node in self.nodes.values():
            if node.kind != "input":
                out[node.status] = out.get(node.status, 0) + 1
        return out

    @property
    def to_run(self) -> list[str]:
        """Ids of the nodes the run would compute, in graph order."""
        return [n.id for n in self.nodes.values() if n.status == "run"]

    @property
    def estimate(self) -> float:
        """Seconds the nodes to run took in past runs (medians, summed; unknown ones left out)."""
        return sum(n.estimate or 0.0 for n in self.nodes.values() if n.status == "run")

    @property
    def unknown(self) -> list[str]:
        """Nodes to run that never ran before, so their time is unknown."""
        return [n.id for n in self.nodes.values() if n.status == "run" and n.estimate is None]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, for ``qflow plan --json``."""
        return {"workflow": self.workflow, "parameters": self.parameters,
                "counts": self.counts(), "run": self.to_run,
                "estimate": {"seconds": self.estimate, "unknown": self.unknown},
                "nodes": [n.to_dict() for n in self.nodes.values()]}

    def describe(self) -> str:
        """The plan for people: a line per step and provider, then the estimate."""
        steps = sum(1 for n in self.nodes.values() if n.kind == "step")
        lines = [f"Plan of {self.workflow} ({steps} step{'s' * (steps != 1)})"]
        shown = [n for n in self.nodes.values() if n.kind != "input"]
        width = max((len(n.id) for n in shown), default=0)
        for node in shown:
            line = f"  {_MARKS[node.status]:6} {node.id:{width}}"
            if node.status in ("run", "undecided"):
                line += f"  {_duration(node.estimate)}  ({'; '.join(node.reasons)})"
            elif node.status == "inline":
                line += "  (not stored: read inside the steps that use it)"
            lines.append(line.rstrip())
        counts = self.counts()
        summary = f"{counts.get('run', 0)} to run, {counts.get('cached', 0)} cached"
        if counts.get("undecided"):
            summary += f", {counts['undecided']} undecided"
        if not self.to_run:
            lines.append(f"Nothing to run ({summary}).")
            return "\n".join(lines)
        estimate = f"about {_seconds(self.estimate)}" if self.estimate else "unknown"
        if self.unknown and self.estimate:
            estimate += f" plus {', '.join(self.unknown)} (never ran)"
        lines.append(f"{summary}; estimated time: {estimate}, from past runs.")
        return "\n".join(lines)


_MARKS: dict[str, str] = {"run": "run", "cached": "cached", "inline": "inline",
                          "undecided": "maybe", "input": "input"}


def _seconds(s: float) -> str:
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def _duration(estimate: float | None) -> str:
    return "unknown" if estimate is None else f"~{_seconds(estimate)}"


class Planner:
    """Keys, cache decisions and "why it ran" for the nodes of ``graph`` against ``store``.

    Args:
        store: the artifact store; only its ``has``, ``registry`` and ``read_index`` are used.
        root: the folder relative paths of providers are read from.
        cache: ``False`` decides that every node runs ("caching is off").
    """

    def __init__(self, graph: Graph, store: Any, *, root: Any = None, cache: bool = True) -> None:
        self.graph = graph
        self.store = store
        self.registry = store.registry
        self.root = root
        self.cache = cache
        self.keys: dict[str, str] = {}
        self.previous: dict[str, Any] = store.read_index(self.scope)
        """Each node's last key, whether it failed and its metrics (``_key``, ``_failed``,
        ``_metrics``): a small document, read by every run."""
        self._components: dict[str, Any] | None = None  # read when a step must say why it runs
        self._declared: dict[tuple[Any, ...], tuple[list[Any], list[str | None]]] = {}

    @property
    def components_index(self) -> str:
        """The name of the store's index of what each node's last key was made of."""
        return f"{self.scope}.components"

    def previous_components(self, node_id: str) -> dict[str, Any]:
        """What ``node_id``'s last key was made of (``{}`` if not known). Indexes written
        before the components had a document of their own hold them in ``previous``."""
        entry = self.previous.get(node_id) or {}
        if "code" in entry:
            return {k: v for k, v in entry.items() if not k.startswith("_")}
        if self._components is None:
            self._components = self.store.read_index(self.components_index)
        return dict(self._components.get(node_id) or {})

    def remember(self, made: dict[str, tuple[str | None, bool, list[Any], dict[str, Any]]]
                 ) -> None:
        """Update the store's indexes with the nodes of a run that ended: ``made`` maps a
        node to its key, whether it failed, its metrics and its key's components. Nothing is
        written when nothing changed (a fully cached rerun); the components' document only
        when a key did."""
        changed, made_of = False, []  # the index changed; nodes whose key changed
        for nid, (key, failed, metrics, _) in made.items():
            entry = {"_key": key, "_failed": failed, "_metrics": metrics}
            old = self.previous.get(nid)
            if old == entry:
                continue
            if old is None or old.get("_key") != key or "code" in old:
                made_of.append(nid)
            self.previous[nid], changed = entry, True
        if made_of:
            if self._components is None:
                self._components = self.store.read_index(self.components_index)
            for nid in made_of:
                self._components[nid] = made[nid][3]
            self.store.write_index(self.components_index, self._components)
        if changed:
            self.store.write_index(self.scope, self.previous)

    @property
    def scope(self) -> str:
        """The name of the store's index of this workflow's last key components."""
        return f"workflow-{self.graph.name}"

    def declared(self, node: Node) -> list[Any]:
        """The factory each output's annotation asks for (``None``: chosen by the value)."""
        return self._declared_by(node)[0]

    def _declared_by(self, node: Node) -> tuple[list[Any], list[str | None]]:
        """The factories :meth:`declared` names, and their identities (in keys)."""
        if node.kind == "input":
            return [None], [None]
        try:  # the calls of a step class share their annotations
            return self._declared[tuple(node.outputs)]
        except KeyError:
            pass
        except TypeError:  # an unhashable annotation
            return self._declare(node.outputs)
        found = self._declared[tuple(node.outputs)] = self._declare(node.outputs)
        return found

    def _declare(self, annotations: list[Any]) -> tuple[list[Any], list[str | None]]:
        factories = [self.registry.for_annotation(a) for a in annotations]
        return factories, [f.ident if f else None for f in factories]

    def cacheable(self, node: Node) -> bool:
        """Whether ``node``'s outputs are stored under its key (and looked up there)."""
        if not self.cache:
            return False
        if node.kind == "step":
            return bool(type(node.obj).__qflow_cache__)
        return node.kind == "provider" and node.obj.cache

    def inline(self, node: Node) -> bool:
        """Input values and uncached providers travel inside the tasks that read them."""
        return node.kind == "input" or (node.kind == "provider" and not node.obj.cache)

    def decide(self, node: Node, *, keyed: bool = True) -> NodePlan:
        """Key ``node`` (its upstream keys must be in ``keys``) and say what a run does with it.

        ``keyed=False`` for a node that is not cached and feeds none that is: no key is made
        (nothing would look it up), only whether it is an input, inline, or runs.
        """
        decision = NodePlan(id=node.id, kind=node.kind, status="run")
        if keyed:
            decision.components = comps = components(
                node, self.keys, self._declared_by(node)[1], self.root)
            decision.components_json = components_text(comps)
            decision.key = self.keys[node.id] = digest(comps, decision.components_json)
        cacheable = self.cacheable(node)
        if self.inline(node):
            decision.status = "inline" if node.kind == "provider" else "input"
        elif cacheable and keyed and self.store.has(decision.key):
            decision.status = "cached"
        elif not cacheable:
            decision.reasons = ["caching is off for this step" if self.cache else "caching is off"]
        else:
            previous = self.previous.get(node.id)
            upstream: dict[str, str] = {}
            if previous is not None:
                previous = {**self.previous_components(node.id), **previous}
                upstream = {self.keys[u]: u for u in node.upstream}
            decision.reasons = explain(previous, decision.components or {}, upstream) or [
                "it failed last time" if previous and previous.get("_failed")
                else "artifact missing from the store"]
        return decision


def step_durations(records: list[dict[str, Any]]) -> dict[str, float]:
    """The median of each node's durations in the runs (records) where it ``ran``."""
    seen: dict[str, list[float]] = {}
    for record in records:
        for nid, node in (record.get("nodes") or {}).items():
            if node.get("status") == "ran" and isinstance(node.get("duration"), (int, float)):
                seen.setdefault(nid, []).append(float(node["duration"]))
    return {nid: statistics.median(values) for nid, values in seen.items()}


def plan(graph: Graph, store: Any, *, workflow: str | None = None,
         parameters: dict[str, Any] | None = None, root: Any = None, cache: bool = True,
         history: list[dict[str, Any]] | None = None) -> RunPlan:
    """What a run of ``graph`` against ``store`` would do, computing nothing.

    Args:
        workflow: the name run records give the workflow (``graph.name`` by default).
        parameters: the workflow's parameters, shown with the plan.
        root: the folder relative paths of providers are read from.
        cache: ``False`` plans a run with caching off (every node runs).
        history: past run records of the workflow, for the time estimates.
    """
    planner = Planner(graph, store, root=root, cache=cache)
    durations = step_durations(history or [])
    nodes: dict[str, NodePlan] = {}
    for node in graph.nodes.values():  # graph order is a dependency order
        waiting = [u for u in node.upstream if nodes[u].key is None]
        if not waiting:
            decision = planner.decide(node)
            if decision.status == "run" and not planner.cacheable(node):
                decision.key = None  # its output's key will come from its content
        elif not planner.cacheable(node):  # it runs whatever its inputs are
            decision = NodePlan(id=node.id, kind=node.kind, status="run", reasons=[
                "caching is off for this step" if cache else "caching is off"])
        else:
            decision = NodePlan(id=node.id, kind=node.kind, status="undecided", reasons=[
                f"decided during the run: the output of `{waiting[0]}` is known only once it "
                "has run (caching is off upstream)"])
        if decision.key is None:
            planner.keys[node.id] = ""  # unknown until the run
        if decision.status in ("run", "undecided"):
            decision.estimate = durations.get(node.id)
        nodes[node.id] = decision
    return RunPlan(workflow=workflow or graph.name, parameters=dict(parameters or {}),
                   nodes=nodes)
