"""The event log every run writes, followed and replayed as the run happened."""

from __future__ import annotations

import json
import threading
import time

import qflow
from qflow.config.paths import Paths
from qflow.launchers.local import LocalLauncher
from qflow.runtime.events import NodeRun, Observer, Observers
from qflow.runtime.info import Metric, Progress
from qflow.runtime.stream import EventLog, Replay, entry_json, follow, node_entry
from tests.unit.runtime.test_driver import Flow, run


class Calls(Observer):
    """Every hook call, in order, with the node's status at that moment."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def run_started(self, *, run, **_):
        self.calls.append(("run_started", run.workflow, run.status))

    def node_started(self, *, node, **_):
        self.calls.append(("node_started", node.id, node.status))

    def node_info(self, *, node, info, **_):
        self.calls.append(("node_info", node.id, type(info).__name__))

    def node_finished(self, *, node, **_):
        self.calls.append(("node_finished", node.id, node.status))

    def run_finished(self, *, run, **_):
        self.calls.append(("run_finished", run.workflow, run.status))


def test_a_replayed_run_calls_observers_as_the_run_did(tmp_path):
    live = Calls()
    launcher = LocalLauncher(Paths.discover(tmp_path), console=False)
    state = launcher.launch(Flow(), observers=[live])
    log = tmp_path / ".qflow/runs" / state.run_id / "events.jsonl"
    replayed = Calls()
    replay = Replay(Observers([replayed]))
    for event in follow(log):
        replay.apply(event)
    assert replayed.calls == live.calls
    assert replay.run.status == "succeeded" and replay.run.result == 6.0
    assert {n: r.status for n, r in replay.run.nodes.items() if r.kind == "step"} == {
        "Source": "ran", "Split": "ran", "Train": "ran"}
    assert [m["value"] for m in replay.run.nodes["Train"].metrics if m["name"] == "loss"] == [
        1.0, 0.5]
    assert [n["id"] for n in replay.run.graph.to_dict()["nodes"]] == [
        "seed", "Source", "Split", "Train"]


def test_follow_yields_events_as_they_are_written_and_stops_at_the_end(tmp_path):
    state = run(Flow(), tmp_path)
    events = (tmp_path / ".qflow/runs" / state.run_id / "events.jsonl").read_text().splitlines()
    path = tmp_path / "live.jsonl"
    seen: list[tuple[float, str]] = []

    def write() -> None:
        with open(path, "w") as handle:
            for line in events:
                handle.write(line[:10])  # a half-written line is not read
                handle.flush()
                time.sleep(0.05)
                handle.write(line[10:] + "\n")
                handle.flush()

    writer = threading.Thread(target=write)
    started = time.monotonic()
    writer.start()
    for event in follow(path, poll=0.01):
        seen.append((time.monotonic() - started, event["event"]))
    writer.join()
    assert [e for _, e in seen] == [__import__("json").loads(x)["event"] for x in events]
    assert seen[0][0] < seen[-1][0] - 0.2  # the first event came long before the last


def test_follow_stops_when_the_writer_is_gone(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"event": "node_started", "node": "a"}\n')
    assert [e["event"] for e in follow(path, poll=0.01, alive=lambda: False)] == ["node_started"]


def test_progress_updates_are_thinned_but_the_last_one_is_kept(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    node = qflow.runtime.events.NodeRun(id="a", kind="step")
    for i in range(1, 1001):
        log.node_info(run=None, node=node, info=Progress(name="items", done=i, total=1000))
    log.node_info(run=None, node=node, info=Metric(name="loss", value=0.5))
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert 2 <= len(lines) < 20
    assert lines[-2]["info"]["fields"]["done"] == 1000 and lines[-1]["info"]["type"] == "Metric"


def test_a_node_entry_reads_back_as_the_node_whatever_its_shape():
    nodes = [
        NodeRun(id="Fit", kind="step"),
        NodeRun(id="Fit_2", kind="step", status="cached", key="ab" * 32, duration=0.0),
        NodeRun(id='Lé "x"\u2028', kind="provider", status="ran", key=None, duration=1e-05,
                reasons=["new step", 'é "quoted"\u2028\\'], components={"code": "c"}),
        NodeRun(id="M", kind="step", status="ran", metrics=[{"name": "acc", "value": 0.5,
                                                             "step": None}]),
        NodeRun(id="E", kind="step", status="failed", error="Traceback\nValueError: é"),
        NodeRun(id="I", kind="step", duration=3),  # an int, as a replayed record may give
        NodeRun(id="N", kind="step", duration=float("nan")),
    ]
    for node in nodes:
        text = entry_json(node)
        assert "\n" not in text  # one line of the event log
        back, expected = json.loads(text), node_entry(node)
        assert list(back) == list(expected)
        assert json.dumps(back) == json.dumps(expected)  # NaN as NaN
