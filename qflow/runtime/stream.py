"""A run's events as JSON lines: every run writes them, and they can be followed and replayed.

The run recorder keeps ``<runs>/<run_id>/events.jsonl`` with :class:`EventLog`; ``%qflow
watch`` follows that file (:func:`follow`) and :class:`Replay` turns its lines back into
observer calls on a rebuilt :class:`RunState`, so a run started elsewhere (a terminal, a Dask
cluster) shows in the same views as a run of this process. The papermill launcher reads its
kernel's step cells the same way. One line per event, in compact JSON
(:func:`qflow.jsontext.compact`)::

    {"event":"run_started","t":1764500000.1,"run":{"run_id":...,"graph":{...},...}}
    {"event":"node_started","t":...,"node":"Fit"}
    {"event":"node_info","t":...,"node":"Fit","info":{"type":"Metric","fields":{...}}}
    {"event":"node_finished","t":...,"node":{"id":"Fit","status":"ran",...}}
    {"event":"run_finished","t":...,"run":{"status":"succeeded",...}}
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from json.encoder import encode_basestring_ascii as _string
from pathlib import Path
from typing import Any

from qflow.graph.described import DescribedGraph
from qflow.jsontext import compact
from qflow.runtime import info as runtime_info
from qflow.runtime.background import LineFile
from qflow.runtime.events import NodeRun, Observer, RunState

PROGRESS_INTERVAL = 0.1  # seconds between two logged updates of one progress bar


def dumps(fields: dict[str, Any], **encoded: str) -> str:
    """The JSON object of ``fields`` (a ``repr`` for what JSON cannot hold), followed by the
    members ``encoded`` gives as JSON text already (a run's graph, encoded once per run)."""
    text = compact(fields)
    if not encoded:
        return text
    members = ",".join(f"{compact(name)}:{value}" for name, value in encoded.items())
    return f"{text[:-1]}{',' if fields else ''}{members}}}"


def graph_json(run: RunState) -> str:
    """``run``'s graph as JSON text (``null`` without one)."""
    return compact(run.graph.to_dict()) if run.graph is not None else "null"


def summary(value: Any) -> Any:
    """``value`` itself if JSON-able and short, else its (shortened) ``repr``."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    text = repr(value)
    return text if len(text) <= 500 else text[:497] + "..."


def info_to_dict(info: runtime_info.RuntimeInfo) -> dict[str, Any]:
    """``{"type": "Metric", "fields": {...}}`` for a RuntimeInfo."""
    return {"type": type(info).__name__, "fields": dataclasses.asdict(info)}


def info_from_dict(data: dict[str, Any]) -> runtime_info.RuntimeInfo | None:
    """The RuntimeInfo :func:`info_to_dict` described (``None`` for an unknown type)."""
    cls = getattr(runtime_info, str(data.get("type")), None)
    if not (isinstance(cls, type) and issubclass(cls, runtime_info.RuntimeInfo)):
        return None
    try:
        return cls(**data.get("fields", {}))
    except TypeError:
        return None


def run_header(run: RunState, graph: str | None = None) -> str:
    """What a ``run_started`` event says about the run, as JSON; ``graph`` is the run's graph
    as :func:`graph_json` gives it (made here if not given)."""
    return dumps({"run_id": run.run_id, "workflow": run.workflow, "kind": run.kind,
                  "parameters": run.parameters,
                  "nodes": {nid: node.kind for nid, node in run.nodes.items()},
                  "started": run.started, "root": str(run.root) if run.root else None,
                  "store": str(run.store) if run.store else None},
                 graph=graph if graph is not None else graph_json(run))


def node_entry(node: NodeRun) -> dict[str, Any]:
    """A node as run records and events keep it (without its key components)."""
    entry = node.to_dict()
    del entry["components"]
    return entry


def entry_json(node: NodeRun) -> str:
    """:func:`node_entry` of ``node`` as compact JSON; a node with neither metrics nor an
    error (every step of most runs) is written here without building the dict."""
    duration = node.duration
    if node.metrics or node.error is not None or type(duration) is not float \
            or duration - duration != 0.0:  # (not finite)
        return compact(node_entry(node))
    key = "null" if node.key is None else _string(node.key)
    reasons = ",".join([_string(reason) for reason in node.reasons])
    return (f'{{"id":{_string(node.id)},"kind":{_string(node.kind)},"status":'
            f'{_string(node.status)},"key":{key},"duration":{duration!r},'
            f'"reasons":[{reasons}],"metrics":[],"error":null}}')


def _line(event: str, members: str) -> str:
    """The JSON line of ``event``: its name, the time now, then ``members`` (JSON text, each
    after a comma). The per-step events call it directly, without ``_write``'s loop."""
    return f'{{"event":"{event}","t":{time.time()!r}{members}}}\n'


class EventLog(Observer):
    """Appends a run's events to a JSON-lines file; each line is in the file within
    :data:`~qflow.runtime.background.FLUSH_INTERVAL` seconds
    (:class:`~qflow.runtime.background.LineFile`).

    The run recorder hands ``run_started`` and ``graph_changed`` the run's graph as JSON
    (``graph=``) and ``node_finished`` the node's entry (``entry=``), which it encodes once
    for its own files too.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lines = LineFile(self.path)
        self._last: dict[tuple[str, str], float] = {}

    def _write(self, event: str, fields: dict[str, Any] | None = None, **encoded: str) -> None:
        members = f",{compact(fields)[1:-1]}" if fields else ""
        for name, value in encoded.items():
            members += f',"{name}":{value}'
        self._lines.write(_line(event, members))

    def run_started(self, *, run: RunState, graph: str | None = None, **_: Any) -> None:
        self._write("run_started", run=run_header(run, graph))

    def graph_changed(self, *, run: RunState, graph: str | None = None, **_: Any) -> None:
        self._write("graph_changed", {"nodes": {nid: node.kind for nid, node in run.nodes.items()}},
                    graph=graph if graph is not None else graph_json(run))

    def node_started(self, *, run: RunState, node: NodeRun, **_: Any) -> None:
        self._lines.write(_line("node_started", f',"node":{_string(node.id)}'))

    def node_info(self, *, run: RunState, node: NodeRun, info: runtime_info.RuntimeInfo,
                  **_: Any) -> None:
        if isinstance(info, runtime_info.Progress) and info.done != info.total:
            key, now = (node.id, info.name), time.monotonic()
            if now - self._last.get(key, 0.0) < PROGRESS_INTERVAL:
                return
            self._last[key] = now
        self._write("node_info", {"node": node.id, "info": info_to_dict(info)})

    def node_finished(self, *, run: RunState, node: NodeRun, entry: str | None = None,
                      **_: Any) -> None:
        entry = entry or entry_json(node)
        self._lines.write(_line("node_finished", f',"node":{entry}'))

    def run_finished(self, *, run: RunState, **_: Any) -> None:
        self._write("run_finished", {"run": {
            "status": run.status, "ended": run.ended, "result": summary(run.result),
            "error": run.error, "failed_step": run.failed_step, "metrics": run.metrics}})
        self.close()

    def close(self) -> None:
        """Write what is queued and close the file (it reopens on the next event)."""
        self._lines.close()


def follow(path: Path | str, *, poll: float = 0.1, alive: Callable[[], bool] | None = None,
           stop: Callable[[], bool] | None = None) -> Iterator[dict[str, Any]]:
    """The events of ``path`` as they are written, until ``run_finished``.

    Waits for the file to appear. Stops early when ``stop()`` is true, or when ``alive()`` is
    false and no new line came (the writer is gone). Only complete lines are read.
    """
    path = Path(path)
    offset, pending = 0, b""
    while True:
        grew = False
        if path.exists():
            with open(path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                grew = True
                try:
                    event = json.loads(line)
                except ValueError:  # not JSON, or not UTF-8
                    continue
                yield event
                if event.get("event") == "run_finished":
                    return
        if stop is not None and stop():
            return
        if not grew and alive is not None and not alive():
            return
        if not grew:
            time.sleep(poll)


class Replay:
    """Applies logged events to a run and calls observers as the original run did.

    ``run`` is the run to update (the papermill launcher's own); without one, ``run_started``
    builds it. ``skip`` names events to ignore (the papermill launcher starts and ends the run
    itself).
    """

    def __init__(self, observers: Observer, run: RunState | None = None,
                 skip: frozenset[str] = frozenset()) -> None:
        self.observers = observers
        self.run = run
        self.skip = skip

    def apply(self, event: dict[str, Any]) -> None:
        """Apply one event."""
        kind = event.get("event")
        if kind in self.skip:
            return
        if kind == "run_started":
            self._start(event["run"])
            return
        run = self.run
        if run is None:
            return
        if kind == "graph_changed":
            run.graph = DescribedGraph.from_dict(event.get("graph"))
            for nid, node_kind in (event.get("nodes") or {}).items():
                run.nodes.setdefault(nid, NodeRun(id=nid, kind=node_kind))
            self.observers.graph_changed(run=run)
        elif kind == "node_started":
            node = self._node(str(event.get("node")))
            node.status = "running"
            self.observers.node_started(run=run, node=node)
        elif kind == "node_info":
            info = info_from_dict(event.get("info") or {})
            if info is not None:
                self.observers.node_info(run=run, node=self._node(str(event.get("node"))),
                                         info=info)
        elif kind == "node_finished":
            data = event.get("node") or {}
            node = self._node(str(data.get("id")))
            for name in ("status", "key", "duration", "reasons", "metrics", "error"):
                if name in data:
                    setattr(node, name, data[name])
            self.observers.node_finished(run=run, node=node)
        elif kind == "run_finished":
            data = event.get("run") or {}
            run.status = data.get("status", run.status)
            run.ended = data.get("ended") or time.time()
            run.result, run.error = data.get("result"), data.get("error")
            run.failed_step, run.metrics = data.get("failed_step"), data.get("metrics") or {}
            self.observers.run_finished(run=run)

    def _node(self, node_id: str) -> NodeRun:
        assert self.run is not None
        node = self.run.nodes.get(node_id)
        if node is None:
            node = self.run.nodes[node_id] = NodeRun(id=node_id, kind="step")
        return node

    def _start(self, header: dict[str, Any]) -> None:
        self.run = RunState(
            run_id=header["run_id"], workflow=header.get("workflow") or "",
            parameters=header.get("parameters") or {},
            graph=DescribedGraph.from_dict(header.get("graph")),
            nodes={nid: NodeRun(id=nid, kind=k) for nid, k in (header.get("nodes") or {}).items()},
            root=header.get("root"), store=header.get("store"),
            started=header.get("started") or time.time(), kind=header.get("kind") or "workflow")
        self.observers.run_started(run=self.run)
