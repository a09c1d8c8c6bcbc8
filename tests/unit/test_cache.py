"""The store joined with the runs: listing, totals, verification and collection."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import qflow
from qflow.cache import collect, inventory, usage, verify
from qflow.config.paths import Paths, StoreLocation
from qflow.errors import ConfigError, StoreError
from qflow.store.local import Store
from tests.storefiles import overwrite, record


@qflow.step
class Make:
    n: int = 3

    def apply(self, seed: int) -> list:
        return list(range(seed, seed + self.n))


@qflow.step
class Total:
    def apply(self, values: list) -> int:
        return sum(values)


@qflow.workflow
class Flow:
    n: int = 3

    def run(self, seed: int = 1) -> int:
        return Total().apply(Make(n=self.n).apply(seed))


@qflow.workflow
class Other:
    def run(self, seed: int = 7) -> list:
        return Make(n=1).apply(seed)


def run(root: Path, workflow=None):
    return qflow.run(workflow or Flow(), root=root, console=False, tracker=None)


def keys(state) -> set[str]:
    return {n.key for n in state.nodes.values() if n.kind == "step"}


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Store, Path]:
    paths = Paths.discover(tmp_path)
    run(tmp_path)
    return tmp_path, Store(paths.store), paths.runs


def test_objects_are_listed_with_the_runs_that_use_them(project):
    root, store, runs = project
    first = run(root)  # all cached: the same objects, used by two runs
    second = run(root, Flow(n=4))
    objects = {o.key: o for o in inventory(store, runs)}
    assert set(objects) == keys(first) | keys(second)
    make = objects[first.nodes["Make"].key]
    assert (make.workflow, make.step, make.node) == ("Flow", "Make", "Make")
    assert make.runs[0] == first.run_id and len(make.runs) == 2
    assert make.size == store.size(make.key) > 0
    assert make.last_used == pytest.approx(first.ended, abs=1e-3)
    assert objects[second.nodes["Total"].key].runs == [second.run_id]
    rows = usage(list(objects.values()))
    assert rows == [{"workflow": "Flow", "step": "Make", "objects": 2,
                     "size": sum(o.size for o in objects.values() if o.step == "Make")},
                    {"workflow": "Flow", "step": "Total", "objects": 2,
                     "size": sum(o.size for o in objects.values() if o.step == "Total")}]


def test_verify_quarantines_a_damaged_object(project):
    root, store, runs = project
    good = verify(store)
    assert good.checked == 2 and good.damaged == []
    victim = next(iter(store.keys()))
    overwrite(store.root, victim, record(store.root, victim)[:-1] + b"!")
    report = verify(store)
    assert report.checked == 2 and [d.key for d in report.damaged] == [victim]
    assert "checksum" in report.damaged[0].problem
    assert not store.has(victim) and list((root / ".qflow/store/quarantine").iterdir())
    assert verify(store).damaged == []


def test_gc_keeps_what_the_newest_runs_of_each_workflow_use(project):
    root, store, runs = project
    old = keys(run(root))
    newer = run(root, Flow(n=5))
    other = run(root, Other())
    dry = collect(store, runs, keep_runs=1, dry_run=True)
    assert {o.key for o in dry.removed} == old - keys(newer) and dry.freed > 0
    assert set(store.keys()) == old | keys(newer) | keys(other)  # a dry run removes nothing
    done = collect(store, runs, keep_runs=1)
    assert {o.key for o in done.removed} == old - keys(newer)
    assert set(store.keys()) == keys(newer) | keys(other)
    assert done.left == sum(store.size(k) for k in store.keys())
    assert run(root, Flow(n=5)).counts() == {"cached": 2}  # the kept run's rerun: all cached


def test_gc_by_age_and_by_size_removes_the_least_recently_used(project):
    root, store, runs = project
    first = keys(run(root))
    time.sleep(0.05)
    second = keys(run(root, Flow(n=6)))
    assert collect(store, runs, older_than=3600).removed == []
    later = time.time() + 7200
    assert {o.key for o in collect(store, runs, older_than=3600, now=later,
                                   dry_run=True).removed} == first | second
    budget = sum(store.size(k) for k in second)
    by_size = collect(store, runs, max_size=budget)
    assert {o.key for o in by_size.removed} == first and set(store.keys()) == second


def test_gc_never_removes_what_a_run_in_progress_uses_or_stores(project):
    root, store, runs = project
    used = next(iter(store.keys()))
    folder = runs / "20990101-000000-000-aaaaaa"  # a run in progress: this live process
    folder.mkdir()
    (folder / "record.json").write_text(json.dumps({
        "run_id": folder.name, "workflow": "Flow", "status": "running", "pid": os.getpid(),
        "started": time.time(), "nodes": {"Make": {"id": "Make", "kind": "step",
                                                   "status": "pending", "key": None}}}))
    (folder / "events.jsonl").write_text(json.dumps({"event": "node_finished", "node": {
        "id": "Make", "kind": "step", "status": "cached", "key": used}}) + "\n")
    writing = "ff" + "9" * 62
    store.save(writing, [(1, None)], {"node": "Total", "run_id": folder.name})
    result = collect(store, runs, keep_runs=0)
    assert set(store.keys()) == {used, writing} and result.in_use == 2
    dead = json.loads((folder / "record.json").read_text())
    dead["pid"] = 2**22 + 12345  # no such process: the run crashed, nothing is in use
    (folder / "record.json").write_text(json.dumps(dead))
    collect(store, runs, keep_runs=0)
    assert list(store.keys()) == []


def test_gc_needs_a_criterion_and_a_local_store(project, tmp_path):
    root, store, runs = project
    with pytest.raises(ConfigError, match="--older-than AGE, --max-size SIZE or --keep-runs N"):
        collect(store, runs)
    from qflow.store.remote import RemoteStore

    remote = RemoteStore(StoreLocation.of("memory://qflow-tests/store",
                                          cache_dir=tmp_path / "cache"))
    with pytest.raises(StoreError, match="not supported for remote stores yet"):
        collect(remote, runs, keep_runs=1)
    with pytest.raises(StoreError, match="not supported for remote stores yet"):
        verify(remote)
