"""Planning a run: the same keys, cache decisions and reasons as the run, computing nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import qflow
from qflow.config.paths import Paths
from qflow.launchers.local import LocalLauncher
from qflow.runtime.plan import step_durations

RAN: list[str] = []


@qflow.step
class Load:
    n: int = 3

    def apply(self, seed: int) -> list:
        RAN.append("Load")
        return list(range(seed, seed + self.n))


@qflow.step
class Fit:
    alpha: float = 1.0

    def apply(self, values: list) -> float:
        RAN.append("Fit")
        return self.alpha * sum(values)


@qflow.step(cache=False)
class Shuffle:
    def apply(self, values: list) -> list:
        RAN.append("Shuffle")
        return values[::-1]


@qflow.step
class Report:
    def apply(self, score: float) -> str:
        RAN.append("Report")
        return f"score={score}"


@qflow.workflow
class Flow:
    alpha: float = 1.0
    n: int = 3

    def run(self, seed: int = 1) -> str:
        score = Fit(alpha=self.alpha).apply(Load(n=self.n).apply(seed))
        return Report().apply(score)


@qflow.workflow
class Shuffled:
    def run(self, seed: int = 1) -> float:
        return Fit().apply(Shuffle().apply(Load().apply(seed)))


def launcher(root: Path, cache: bool = True) -> LocalLauncher:
    return LocalLauncher(Paths.discover(root), tracker=None, console=False, cache=cache)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder`` with its size and modification time."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [*dirnames, *filenames]:
            path = Path(dirpath, name)
            st = path.stat()
            out[str(path.relative_to(folder))] = (st.st_size, st.st_mtime_ns)
    return out


def ran(state) -> dict[str, list[str]]:
    return {nid: node.reasons for nid, node in state.nodes.items() if node.status == "ran"}


def test_a_first_plan_runs_everything_and_touches_nothing(tmp_path):
    plan = launcher(tmp_path).plan(Flow())
    assert plan.to_run == ["Load", "Fit", "Report"]
    assert all(n.reasons == ["never computed"] for n in plan.nodes.values() if n.status == "run")
    assert plan.unknown == ["Load", "Fit", "Report"] and plan.estimate == 0
    assert "estimated time: unknown" in plan.describe()
    assert not (tmp_path / ".qflow").exists()  # no store created, no run recorded


def test_the_plan_is_what_the_next_run_does_with_the_same_reasons(tmp_path):
    first = launcher(tmp_path).launch(Flow())
    before = snapshot(tmp_path / ".qflow")
    plan = launcher(tmp_path).plan(Flow(alpha=2.0))
    assert snapshot(tmp_path / ".qflow") == before  # read only: no record, no store change
    assert plan.nodes["Load"].status == "cached"
    assert {n: plan.nodes[n].reasons for n in plan.to_run} == {
        "Fit": ["setting `alpha` 1.0 → 2.0"], "Report": ["upstream `Fit` changed"]}
    assert plan.nodes["Fit"].estimate == first.nodes["Fit"].duration  # the median of one run
    RAN.clear()
    second = launcher(tmp_path).launch(Flow(alpha=2.0))
    assert RAN == ["Fit", "Report"]
    assert ran(second) == {n: plan.nodes[n].reasons for n in plan.to_run}
    assert {n: second.nodes[n].key for n in plan.to_run} == \
        {n: plan.nodes[n].key for n in plan.to_run}
    assert launcher(tmp_path).plan(Flow(alpha=2.0)).to_run == []
    assert "Nothing to run (0 to run, 3 cached)" in launcher(tmp_path).plan(Flow(alpha=2.0)).describe()


def test_a_missing_artifact_and_caching_off_are_planned_as_runs_record_them(tmp_path):
    launcher(tmp_path).launch(Flow())
    fit_key = launcher(tmp_path).plan(Flow()).nodes["Fit"].key
    launcher(tmp_path).launch(Flow())
    store = Paths.discover(tmp_path).store
    from qflow.store.local import Store

    assert Store(store).remove(fit_key)
    plan = launcher(tmp_path).plan(Flow())
    assert plan.to_run == ["Fit"] and plan.nodes["Fit"].reasons == ["artifact missing from the store"]
    assert ran(launcher(tmp_path).launch(Flow())) == {"Fit": ["artifact missing from the store"]}
    off = launcher(tmp_path, cache=False).plan(Flow())
    assert off.to_run == ["Load", "Fit", "Report"]
    assert {tuple(n.reasons) for n in off.nodes.values() if n.status == "run"} == {("caching is off",)}


def test_steps_after_an_uncached_step_are_undecided(tmp_path):
    launcher(tmp_path).launch(Shuffled())
    plan = launcher(tmp_path).plan(Shuffled())
    assert plan.nodes["Load"].status == "cached"
    assert plan.nodes["Shuffle"].status == "run"
    assert plan.nodes["Shuffle"].reasons == ["caching is off for this step"]
    assert plan.nodes["Fit"].status == "undecided" and plan.nodes["Fit"].key is None
    assert "`Shuffle`" in plan.nodes["Fit"].reasons[0]
    assert "maybe  Fit" in plan.describe() and "1 undecided" in plan.describe()
    assert plan.to_dict()["counts"] == {"cached": 1, "run": 1, "undecided": 1}


def test_estimates_are_medians_of_past_ran_durations():
    def record(**durations):
        return {"nodes": {n: {"status": "ran" if d is not None else "cached",
                              "duration": d or 0.0} for n, d in durations.items()}}

    records = [record(Fit=1.0, Load=None), record(Fit=3.0), record(Fit=10.0, Load=2.0)]
    assert step_durations(records) == {"Fit": 3.0, "Load": 2.0}


@pytest.mark.parametrize("args", [[], ["alpha=3"]])
def test_python_workflow_plan_prints_json(tmp_path, args, capsys, monkeypatch):
    import json

    monkeypatch.chdir(tmp_path)
    result = qflow.launch(Flow, ["plan", *args, "--json"])
    data = json.loads(capsys.readouterr().out)
    assert data["run"] == ["Load", "Fit", "Report"] == result.to_run
    assert data["parameters"]["alpha"] == (3 if args else 1.0)
    assert not (tmp_path / ".qflow" / "runs").exists()
