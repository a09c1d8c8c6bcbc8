"""Run records: ``<data>/runs/<run_id>/`` keeps what a run was and did, for later commands.

``record.json`` is written when the run starts (status ``running``) and replaced atomically
when it ends (for a notebook session, also after each step cell). The first one is written
when first needed (:class:`~qflow.runtime.background.Deferred`): before a step computes or
the store's lock is let go, else within 0.1 s; a run that ends sooner, fully cached, writes
only the last. The one a run ends with is
then made durable on a background thread (``qflow.runtime.background``, done before the
process exits); the first is not synced, since a run still ``running`` whose process is gone
reads as ``crashed`` anyway. ``events.jsonl`` logs every event (``qflow.runtime.stream``),
a line per finished node among them, so a killed run still shows which steps completed; it
gets its lines in batches, each within 0.1 s. Each node entry keeps its key and the components it was made of, which is how QFlow
says why a step ran. The graph is encoded once per run (again when a notebook session's
graph changes) and that text goes into the record and the event log.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from json.encoder import encode_basestring_ascii as _string
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError
from qflow.runtime.background import Deferred, sync_soon
from qflow.runtime.events import NodeRun, Observer, RunState
from qflow.runtime.stream import EventLog, dumps, entry_json, graph_json, summary
from qflow.store.atomic import atomic_write_bytes, process_alive

KERNEL_EVENTS = "kernel-events.jsonl"
"""The events of a headless notebook's step cells, in its run's folder (papermill launcher)."""


def new_run_id() -> str:
    """A unique run id that sorts by start time: ``20261125-153000-042-1a2b3c`` (ms, random)."""
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    return f"{stamp}-{int(now * 1000) % 1000:03d}-{secrets.token_hex(3)}"


class RunRecorder(Observer):
    """Writes a run's record under ``runs_dir/<run_id>/``."""

    def __init__(self, runs_dir: Path | str) -> None:
        self.runs_dir = Path(runs_dir)
        self._events: EventLog | None = None
        self._start: Deferred | None = None  # the record the run starts with, until written
        self._graph = "null"  # the run's graph as JSON
        # node -> (its state, its entry as JSON) when it last finished: the event log's line
        # and the final record share one encoding while the node has not changed since
        self._entries: dict[str, tuple[tuple[Any, ...], str]] = {}

    def folder(self, run: RunState) -> Path:
        """The record folder of ``run``."""
        return self.runs_dir / run.run_id

    def _fields(self, run: RunState) -> dict[str, Any]:
        """The record's fields but its graph and nodes."""
        counts = run.counts()
        return {
            "run_id": run.run_id,
            "workflow": run.workflow,
            "kind": run.kind,
            "status": run.status,
            "started": run.started,
            "ended": run.ended,
            "duration": run.duration if run.ended or run.kind == "notebook" else None,
            "pid": os.getpid(),
            "root": str(run.root) if run.root else None,
            "store": str(run.store) if run.store else None,
            "parameters": run.parameters,
            "metrics": run.metrics,
            "result": summary(run.result),
            "error": run.error,
            "failed_step": run.failed_step,
            "counts": counts,
        }

    def _text(self, run: RunState) -> bytes:
        return dumps(self._fields(run), graph=self._graph, nodes=self._nodes_json(run)).encode()

    def _write(self, run: RunState) -> None:
        """Replace the record with ``run``'s state now, and make it durable soon."""
        if self._start is not None:
            self._start, start = None, self._start
            start.cancel()  # superseded: never written after this one
        path = self.folder(run) / "record.json"
        atomic_write_bytes(path, self._text(run), sync=False)
        sync_soon(path)

    def run_started(self, *, run: RunState, **_: Any) -> None:
        folder = self.folder(run)
        folder.mkdir(parents=True, exist_ok=True)
        self._graph = graph_json(run)
        path = folder / "record.json"
        self._start = Deferred(lambda: atomic_write_bytes(path, self._text(run), sync=False))
        self._events = EventLog(folder / "events.jsonl")
        self._events.run_started(run=run, graph=self._graph)

    def graph_changed(self, *, run: RunState, **_: Any) -> None:
        if self._events is not None:
            self._graph = graph_json(run)
            self._events.graph_changed(run=run, graph=self._graph)

    def node_started(self, *, run: RunState, node: NodeRun, **_: Any) -> None:
        if self._events is not None:
            self._events.node_started(run=run, node=node)

    def node_info(self, **kwargs: Any) -> None:
        if self._events is not None:
            self._events.node_info(**kwargs)

    def node_finished(self, *, run: RunState, node: NodeRun, **_: Any) -> None:
        entry = entry_json(node)
        self._entries[node.id] = (_state(node), entry)
        if self._events is not None:
            self._events.node_finished(run=run, node=node, entry=entry)
        if run.kind == "notebook":  # a session lasts: its record follows its cells
            self._write(run)

    def run_finished(self, *, run: RunState, **_: Any) -> None:
        try:
            if self._events is not None:
                self._events, events = None, self._events
                events.run_finished(run=run)
        finally:
            self._write(run)


    def _nodes_json(self, run: RunState) -> str:
        """The record's ``nodes`` as JSON. What was encoded already is not encoded again: a
        node's entry as its ``node_finished`` event logged it (unless the node changed since),
        its components as the text its key was hashed from."""
        parts = []
        for nid, node in run.nodes.items():
            known = self._entries.get(nid)
            text = known[1] if known is not None and known[0] == _state(node) \
                else entry_json(node)
            if node.components is not None:
                components = node.components_json or dumps(node.components)
                text = f'{text[:-1]},"components":{components}}}'
            parts.append(f"{_string(nid)}:{text}")
        return "{" + ",".join(parts) + "}"


def _state(node: NodeRun) -> tuple[Any, ...]:
    """What a node's entry shows, compared cheaply (a changed node is encoded again)."""
    return (node.status, node.key, node.duration, len(node.reasons), len(node.metrics),
            node.error)




def effective_status(record: dict[str, Any]) -> str:
    """The record's status, or ``crashed`` for a run still marked running whose process is gone."""
    status = str(record.get("status"))
    if status == "running" and record.get("pid") and not process_alive(int(record["pid"])):
        return "crashed"
    return status


def read_record(runs_dir: Path | str, run_id: str) -> dict[str, Any]:
    """The record of ``run_id``."""
    return json.loads((Path(runs_dir) / run_id / "record.json").read_bytes())


def find_record(runs_dir: Path | str, run_id: str) -> dict[str, Any]:
    """The record of ``run_id``, or a :class:`ConfigError` naming the runs folder."""
    folder = Path(runs_dir)
    try:
        if run_id and "/" not in run_id and "\\" not in run_id and run_id not in (".", ".."):
            return read_record(folder, run_id)
    except (OSError, ValueError):  # missing, or not JSON (nor UTF-8)
        pass
    newest = [r["run_id"] for r in list_records(folder)[:3]]
    known = f" (newest: {', '.join(newest)})" if newest else " (it holds no runs)"
    raise ConfigError(f"No run {run_id!r} in {folder}{known}.",
                      hint="List the runs with `qflow ps`; a run id looks like "
                           "20261125-160247-674-b098e0.")


def _lines(path: Path) -> list[dict[str, Any]]:
    try:
        data = path.read_bytes()
    except OSError:
        return []
    out = []
    for line in data.split(b"\n"):  # UTF-8 (not splitlines(): U+2028 may be in a line)
        try:
            out.append(json.loads(line))
        except ValueError:  # a line being written
            continue
    return out


def node_entries(runs_dir: Path | str, record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The node entries of a run: its record's, completed by what a run in progress (or one
    killed before it could update its record) logged since: the nodes finished in its event
    log, and in that of a headless notebook's step cells (``kernel-events.jsonl``)."""
    nodes = {nid: dict(node) for nid, node in (record.get("nodes") or {}).items()}
    folder = Path(runs_dir) / str(record.get("run_id"))
    logged = [e["node"] for e in _lines(folder / "events.jsonl") + _lines(folder / KERNEL_EVENTS)
              if e.get("event") == "node_finished" and isinstance(e.get("node"), dict)]
    for entry in logged:
        nid = entry.get("id")
        if not isinstance(nid, str):
            continue
        known = nodes.get(nid)
        if known is None or known.get("status") in ("pending", "running"):
            nodes[nid] = {**(known or {}), **entry}
    return nodes


def list_records(runs_dir: Path | str, workflow: str | None = None) -> list[dict[str, Any]]:
    """Every readable run record (of ``workflow``, if given), newest first."""
    out = []
    folder = Path(runs_dir)
    if not folder.is_dir():
        return out
    for entry in sorted(folder.iterdir(), reverse=True):
        try:
            record = json.loads((entry / "record.json").read_bytes())
        except (OSError, ValueError):  # missing, or not JSON (nor UTF-8)
            continue
        if workflow is None or record.get("workflow") == workflow:
            out.append(record)
    return out
