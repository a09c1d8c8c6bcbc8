"""One contract for every launcher of workflows: local (in-process) and Dask (a cluster on\nloopback, its workers in other processes that import this module by name)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Generator

import pytest

import qflow
from qflow.config.paths import Paths
from qflow.errors import StepError


def note(log: str, name: str) -> None:
    with open(log, "a") as f:
        f.write(name + "\n")


@qflow.step
class Source:
    log: str
    n: int = 3

    def apply(self, seed: int) -> list:
        note(self.log, "Source")
        return list(range(seed, seed + self.n))


@qflow.step
class Split:
    log: str

    boom: bool = False

    def apply(self, values: list) -> tuple[list, list]:
        note(self.log, "Split")
        if self.boom:
            raise RuntimeError("split failed")
        return values[:1], values[1:]


@qflow.step(cache=False)
class Noise:
    log: str

    def apply(self, values: list) -> list:
        note(self.log, "Noise")
        return [v * 10 for v in values]


@qflow.step
class Total:
    log: str
    boom: bool = False

    def apply(self, head: list, tail: list) -> int:
        note(self.log, "Total")
        if self.boom:
            raise ValueError("bad values")
        return sum(head) + sum(tail)


@qflow.workflow
class Flow:
    log: str
    n: int = 3
    boom: bool = False
    split_fails: bool = False

    def run(self, seed: int = 1) -> int:
        head, tail = Split(log=self.log, boom=self.split_fails).apply(Source(log=self.log, n=self.n).apply(seed))
        return Total(log=self.log, boom=self.boom).apply(head, Noise(log=self.log).apply(tail))


def summed(values: list) -> int:
    """A helper that reports, as code a step calls cannot yield."""
    qflow.report(qflow.Metric(name="size", value=len(values)))
    bar = qflow.ProgressBar(name="items", total=len(values))
    for _ in values:
        bar.update(1)
    return sum(values)


@qflow.step
class Summed:
    def apply(self, values: list) -> int:
        return summed(values)


@qflow.step
class Yielding:
    def apply(self, values: list) -> Generator[qflow.RuntimeInfo, None, int]:
        bar = qflow.ProgressBar(name="half", total=2)
        yield bar.update(1)  # reported by update() and yielded: forwarded once
        yield bar.update(1)
        yield qflow.Metric(name="count", value=len(values))
        return len(values)


@qflow.workflow
class Reports:
    def run(self, values: list = [1, 2, 3]) -> Generator[qflow.RuntimeInfo, None, tuple]:
        total = qflow.label_info(Summed(), size="size").apply(values)
        count = yield from Yielding().apply(values)
        return total, count


@pytest.fixture(params=["local", "dask"])
def launch(request: pytest.FixtureRequest, tmp_path: Path):
    """Runs a workflow with the launcher under test; returns (run, steps that ran)."""
    log = tmp_path / "log"

    def launch(workflow=None, observers=(), **params):
        log.unlink(missing_ok=True)
        if request.param == "local":
            from qflow.launchers.local import LocalLauncher

            launcher = LocalLauncher(Paths(tmp_path), console=False, observers=list(observers))
        else:
            from qflow.launchers.dask import DaskLauncher

            address = request.getfixturevalue("dask_cluster")
            launcher = DaskLauncher(Paths(tmp_path), console=False, scheduler_address=address,
                                    observers=list(observers))
        with launcher:
            run = launcher.launch(workflow or Flow(log=str(log), **params))
        return run, sorted(log.read_text().split()) if log.exists() else []

    launch.kind = request.param
    return launch


def test_a_second_run_computes_nothing_but_uncached_steps(launch, tmp_path):
    first, ran = launch()
    assert first.result == 1 + 50 and ran == ["Noise", "Source", "Split", "Total"]
    second, ran = launch()
    assert second.result == 51 and ran == ["Noise"]  # its output is unchanged: Total is cached
    assert {n: r.status for n, r in second.nodes.items() if r.kind == "step"} == {
        "Source": "cached", "Split": "cached", "Noise": "ran", "Total": "cached"}
    assert not list((tmp_path / ".qflow/store/scratch").glob("*/*"))  # scratch removed


def test_a_setting_change_reruns_what_depends_on_it_and_says_why(launch):
    launch()
    run, ran = launch(n=4)
    assert run.result == 1 + 90 and ran == ["Noise", "Source", "Split", "Total"]
    assert run.nodes["Source"].reasons == ["setting `n` 3 → 4"]


def test_a_corrupt_upstream_artifact_is_recomputed(launch, tmp_path):
    first, _ = launch()
    key = first.nodes["Split"].key
    data = next((tmp_path / ".qflow/store/objects" / key[:2] / key).glob("out1/*.json"))
    data.write_text("[999]")  # the checksum no longer matches
    second, ran = launch()  # Noise reads Split's second output: loading it finds the damage
    assert second.result == 51 and ran == ["Noise", "Split"]
    assert "corrupt" in second.nodes["Split"].reasons[0]
    assert second.nodes["Total"].status == "cached"


def test_a_failing_step_fails_the_run_with_its_name_and_traceback(launch, tmp_path):
    with pytest.raises(StepError) as err:
        launch(boom=True)
    assert err.value.step == "Total" and "ValueError: bad values" in str(err.value)
    record = json.loads((tmp_path / ".qflow/runs" / err.value.run_id / "record.json").read_text())
    assert record["status"] == "failed" and record["failed_step"] == "Total"
    assert record["nodes"]["Source"]["status"] == "ran"
    assert 'raise ValueError("bad values")' in record["nodes"]["Total"]["error"]


def test_steps_after_a_failed_one_are_skipped(launch, tmp_path):
    with pytest.raises(StepError) as err:
        launch(split_fails=True)
    assert err.value.step == "Split"
    record = json.loads((tmp_path / ".qflow/runs" / err.value.run_id / "record.json").read_text())
    assert {n: r["status"] for n, r in record["nodes"].items() if r["kind"] == "step"} == {
        "Source": "ran", "Split": "failed", "Noise": "skipped", "Total": "skipped"}
    run, ran = launch()
    assert run.result == 51 and ran == ["Noise", "Split", "Total"]


def test_info_reported_without_yield_reaches_observers_once(launch):
    from qflow.runtime.events import Observer

    seen = []

    class Watch(Observer):
        def node_info(self, *, node, info, **_):
            seen.append((node.id, type(info).__name__, getattr(info, "done", None)))

    run, _ = launch(Reports(), observers=[Watch()])
    assert run.result == (6, 3) and run.metrics == {"size": 3}
    assert run.nodes["Summed"].metrics == [{"name": "size", "value": 3, "step": None}]
    assert run.nodes["Yielding"].metrics == [{"name": "count", "value": 3, "step": None}]
    assert ("Summed", "Metric", None) in seen and ("Summed", "Progress", 3) in seen
    half = [done for node, kind, done in seen if node == "Yielding" and kind == "Progress"]
    assert half[-1] == 2 and len(half) == len(set(half))  # each update once
    if launch.kind == "local":
        assert half == [1, 2]
