"""`qflow cache ls | du | verify | gc` as a user runs them, also while a run is in progress."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import QFLOW, new_project, run_qflow

SOURCE = '''\
import os
import time
from pathlib import Path

import numpy as np
import qflow


@qflow.step
class Prepare:
    n: int = 1000

    def apply(self, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).normal(size=self.n)


@qflow.step
class Stats:
    tag: int = 0

    def apply(self, values: np.ndarray) -> dict:
        gate = os.environ.get("QFLOW_TEST_GATE")
        while gate and not Path(gate).exists():  # a slow step, until the test opens the gate
            time.sleep(0.05)
        return {"mean": float(values.mean()), "tag": self.tag}


@qflow.workflow
class Flow:
    tag: int = 0
    n: int = 1000

    def run(self, seed: int = 0) -> dict:
        return Stats(tag=self.tag).apply(Prepare(n=self.n).apply(seed))


if __name__ == "__main__":
    qflow.launch(Flow)
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = new_project(tmp_path, "demo", "flow", SOURCE)
    run_qflow("run", "-w", "flow", cwd=root)
    return root


def ls(root: Path) -> list[dict]:
    return json.loads(run_qflow("cache", "ls", "--json", cwd=root).stdout)


def record(root: Path, run_id: str) -> dict:
    return json.loads((root / ".qflow/runs" / run_id / "record.json").read_text())


def newest(root: Path) -> str:
    return json.loads(run_qflow("ps", "--json", cwd=root).stdout)[0]["run_id"]


def test_ls_and_du_show_objects_by_workflow_and_step(project):
    first = newest(project)
    run_qflow("run", "-w", "flow", "tag=1", cwd=project)
    second = newest(project)
    objects = ls(project)
    assert sorted((o["step"], len(o["runs"])) for o in objects) == [
        ("Prepare", 2), ("Stats", 1), ("Stats", 1)]
    prepare = next(o for o in objects if o["step"] == "Prepare")
    assert prepare["workflow"] == "flow" and prepare["runs"] == [second, first]
    assert prepare["key"] == record(project, first)["nodes"]["Prepare"]["key"]
    assert prepare["size"] > 8000  # 1000 float64
    table = run_qflow("cache", "ls", cwd=project).stdout.splitlines()
    assert table[0].split() == ["WORKFLOW", "STEP", "KEY", "SIZE", "LAST", "USED", "RUNS"]
    assert any(line.split()[:2] == ["flow", "Prepare"] and f"2 (newest {second})" in line
               for line in table)
    du = json.loads(run_qflow("cache", "du", "--json", cwd=project).stdout)
    assert [(r["workflow"], r["step"], r["objects"]) for r in du["rows"]] == [
        ("flow", "Prepare", 1), ("flow", "Stats", 2)]
    assert du["total"] == {"objects": 3, "size": sum(o["size"] for o in objects)}
    assert run_qflow("cache", "du", cwd=project).stdout.splitlines()[-1].split()[:2] == ["total", "3"]


def test_verify_finds_a_corrupted_object_quarantines_it_and_the_next_run_recomputes_it(project):
    ok = run_qflow("cache", "verify", cwd=project)
    assert "Checked 2 objects" in ok.stdout and "every file matches its checksum" in ok.stdout
    prepare = next(o for o in ls(project) if o["step"] == "Prepare")
    array = next((project / ".qflow/store/objects").glob(f"*/{prepare['key']}/array.npy"))
    data = bytearray(array.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes: only the checksum tells
    array.write_bytes(bytes(data))
    bad = run_qflow("cache", "verify", cwd=project, code=1)
    assert "1 damaged, moved to quarantine" in bad.stdout and "Prepare" in bad.stdout
    assert "checksum" in bad.stdout
    assert [p.name.split("-")[0] for p in (project / ".qflow/store/quarantine").iterdir()] == \
        [prepare["key"]]
    again = run_qflow("run", "-w", "flow", cwd=project)
    assert "ran    Prepare" in again.stderr and "cached Stats" in again.stderr
    run_qflow("cache", "verify", cwd=project)


def test_gc_keep_runs_keeps_what_the_last_run_needs_and_removes_the_rest(project):
    first_keys = {o["key"] for o in ls(project)}
    run_qflow("run", "-w", "flow", "n=500", cwd=project)
    last = record(project, newest(project))
    needed = {n["key"] for n in last["nodes"].values() if n["kind"] == "step"}
    dry = run_qflow("cache", "gc", "--keep-runs", "1", "--dry-run", cwd=project).stdout
    assert dry.startswith("Would remove 2 objects") and "Prepare" in dry
    assert {o["key"] for o in ls(project)} == first_keys | needed
    done = json.loads(run_qflow("cache", "gc", "--keep-runs", "1", "--json", cwd=project).stdout)
    assert {o["key"] for o in done["removed"]} == first_keys
    assert {o["key"] for o in ls(project)} == needed
    rerun = run_qflow("run", "-w", "flow", "n=500", cwd=project)
    assert "0 ran, 2 cached" in rerun.stderr
    assert "ran    Prepare" in run_qflow("run", "-w", "flow", cwd=project).stderr
    assert "Say what gc removes" in run_qflow("cache", "gc", cwd=project, code=2).stderr
    assert "Cannot read the size" in run_qflow("cache", "gc", "--max-size", "lots", cwd=project,
                                               code=2).stderr


def test_gc_during_a_run_never_removes_what_the_run_uses(project, tmp_path):
    prepare = next(o["key"] for o in ls(project) if o["step"] == "Prepare")
    gate = tmp_path / "gate"
    proc = subprocess.Popen([QFLOW, "run", "-w", "flow", "tag=7"], cwd=project,
                            env={**os.environ, "QFLOW_TEST_GATE": str(gate)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        started = None
        while started is None:  # Prepare came from the cache; Stats is computing
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
            for events in (project / ".qflow/runs").glob("*/events.jsonl"):
                lines = [json.loads(line) for line in events.read_text().splitlines()]
                if {"event": "node_started", "node": "Stats"} in [
                        {k: e.get(k) for k in ("event", "node")} for e in lines] \
                        and lines[-1]["event"] != "run_finished":
                    started = events.parent.name
        out = run_qflow("cache", "gc", "--keep-runs", "0", cwd=project).stdout
        assert "Removed 1 object (" in out and "1 of them used by runs in progress" in out
        assert {o["key"] for o in ls(project)} == {prepare}
        gate.touch()
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        gate.touch()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    assert "cached Prepare" in stderr and "ran    Stats" in stderr and "'tag': 7" in stdout
    assert record(project, started)["status"] == "succeeded"
    assert len(ls(project)) == 2


def test_remote_stores_are_refused_clearly(project):
    (project / "configs/paths/default.yaml").write_text("data: .qflow\nstore: memory://demo/store\n")
    for command in (["ls"], ["du"], ["verify"], ["gc", "--keep-runs", "1"]):
        proc = run_qflow("cache", *command, cwd=project, code=2)
        assert "not supported for remote stores yet (the store is memory://demo/store)" \
            in proc.stderr
