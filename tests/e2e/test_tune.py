"""`qflow tune`: Optuna trials as QFlow runs that share the step cache."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import QFLOW, run_qflow

WORKFLOW = '''
import time
from pathlib import Path
from typing import Generator

import qflow


@qflow.step
class Prepare:
    size: int = 50

    def apply(self, seed: int) -> list[float]:
        with open(Path(__file__).parent / "prepare.count", "a") as f:
            f.write("x")
        time.sleep(0.3)  # the expensive part, computed once for the whole study
        return [((i * 37 + seed) % 100) / 100 for i in range(self.size)]


@qflow.step
class Fit:
    alpha: float = 0.5
    depth: int = 3
    kind: str = "a"
    delay: float = 0.0

    def apply(self, data: list[float]) -> Generator[qflow.RuntimeInfo, None, float]:
        score = 1.0 - (self.alpha - 0.3) ** 2 - 0.01 * abs(self.depth - 6)
        score += 0.05 if self.kind == "b" else -2.0
        for epoch in range(3):
            time.sleep(self.delay)
            yield qflow.Metric(name="val", value=score * (epoch + 1) / 3, step=epoch)
        return score


@qflow.workflow
class Tuned:
    alpha: float = 0.5
    depth: int = 3
    kind: str = "a"
    delay: float = 0.0

    def run(self, seed: int = 0) -> Generator[qflow.RuntimeInfo, None, float]:
        data = Prepare().apply(seed)
        fit = Fit(alpha=self.alpha, depth=self.depth, kind=self.kind, delay=self.delay)
        return (yield from qflow.label_info(fit, val="val").apply(data))


if __name__ == "__main__":
    qflow.launch(Tuned)
'''

CONFIG = '''defaults:
  - project
  - _self_
inputs: {}
parameters:
  delay: DELAY
tune:
  objective: result
  direction: maximize
  n_trials: 12
  sampler: SAMPLER
  intermediate: val
  params:
    alpha: {type: float, low: 0.0, high: 1.0}
    depth: {type: int, low: 2, high: 12}
    kind: {type: categorical, choices: [a, b]}
'''


def qflow(*args: str, cwd: Path, code: int = 0) -> subprocess.CompletedProcess:
    return run_qflow(*args, cwd=cwd, code=code)


def make_project(base: Path, name: str = "tuned", delay: float = 0.0,
                 sampler: str = "tpe") -> Path:
    qflow("init", "-p", "lab", cwd=base)
    root = base / "lab"
    qflow("configure", "-c", "tracker=file", cwd=root)
    folder = root / "workflows" / name
    folder.mkdir()
    (folder / "workflow.py").write_text(WORKFLOW)
    (folder / "config.yaml").write_text(CONFIG.replace("DELAY", str(delay))
                                        .replace("SAMPLER", sampler))
    return root


def study(root: Path, name: str = "tuned"):
    import optuna

    return optuna.load_study(study_name=f"lab/{name}",
                             storage=f"sqlite:///{root / '.qflow/tuner/optuna/optuna.db'}")


def test_trials_share_the_expensive_step_and_the_best_is_confirmed(tmp_path):
    root = make_project(tmp_path)
    proc = qflow("tune", "-w", "tuned", cwd=root)
    assert (root / "workflows/tuned/prepare.count").read_text() == "x"  # once for 12 trials
    trials = study(root).trials
    assert len(trials) == 12 and all(t.state.is_finished() for t in trials)
    best = study(root).best_trial
    command = proc.stdout.split("Run the workflow with them: ")[1].strip()
    assert command.startswith("qflow run -w tuned parameters.")
    direct = qflow(*command.split()[1:], cwd=root)
    assert float(direct.stdout.split("result: ")[1]) == pytest.approx(best.value)
    runs = json.loads(qflow("ps", "-w", "tuned", "--json", "--limit", "50", cwd=root).stdout)
    assert len(runs) == 13  # 12 trials and the confirming run
    for trial in trials:
        assert (root / ".qflow/runs" / trial.user_attrs["qflow_run_id"] / "record.json").exists()


def test_bad_intermediate_values_are_pruned_not_failed(tmp_path):
    import optuna

    root = make_project(tmp_path, sampler="random")
    qflow("tune", "-w", "tuned", cwd=root)
    states = [t.state for t in study(root).trials]
    assert optuna.trial.TrialState.PRUNED in states
    assert optuna.trial.TrialState.FAIL not in states
    runs = json.loads(qflow("ps", "-w", "tuned", "--json", "--limit", "50", cwd=root).stdout)
    assert "pruned" in {r["status"] for r in runs}


def test_an_interrupted_study_resumes_to_the_requested_total(tmp_path):
    root = make_project(tmp_path, delay=0.2)
    proc = subprocess.Popen([QFLOW, "tune", "-w", "tuned", "--n-trials", "8"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    runs = root / ".qflow/runs"
    deadline = time.time() + 120
    while time.time() < deadline:
        done = [p for p in runs.glob("*/record.json") if '"status":"running"' not in p.read_text()]
        if len(done) >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    before = len([t for t in study(root).trials if t.state.is_finished()])
    assert 3 <= before < 8
    resumed = qflow("tune", "-w", "tuned", "--n-trials", "8", cwd=root)
    assert f"{before} trials done" in resumed.stderr
    assert len([t for t in study(root).trials if t.state.is_finished()]) == 8


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_a_resumed_study_never_repeats_earlier_values(tmp_path, sampler):
    root = make_project(tmp_path, sampler=sampler)
    qflow("tune", "-w", "tuned", "--n-trials", "4", cwd=root)
    qflow("tune", "-w", "tuned", "--n-trials", "8", cwd=root)
    alphas = [t.params["alpha"] for t in study(root).trials]
    assert len(alphas) == 8 and len(set(alphas)) == 8, alphas


def test_parallel_trials_lose_nothing(tmp_path):
    import optuna

    root = make_project(tmp_path)
    qflow("tune", "-w", "tuned", "--n-trials", "10", "--n-jobs", "2", cwd=root)
    trials = study(root).trials
    assert len(trials) == 10 and all(t.state.is_finished() for t in trials)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    for trial in complete:
        record = json.loads((root / ".qflow/runs" / trial.user_attrs["qflow_run_id"] /
                             "record.json").read_text())
        assert record["status"] == "succeeded" and record["result"] == pytest.approx(trial.value)
    assert (root / "workflows/tuned/prepare.count").read_text() in ("x", "xx")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("    alpha: {type: float, low: 0.0, high: 1.0}", "    alpah: {type: float, low: 0.0, high: 1.0}",
     "unknown key 'tune.params.alpah'"),
    ("low: 0.0, high: 1.0", "low: 2.0, high: 1.0", "low (2.0) is greater than high (1.0)"),
    ("choices: [a, b]", "choices: []", "non-empty list of choices"),
])
def test_search_space_mistakes_are_clear_errors(tmp_path, old, new, message):
    root = make_project(tmp_path)
    path = root / "workflows/tuned/config.yaml"
    path.write_text(path.read_text().replace(old, new))
    proc = qflow("tune", "-w", "tuned", cwd=root, code=2)
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert not (root / ".qflow/tuner").exists()


def test_failing_trials_are_recorded_and_the_study_goes_on(tmp_path):
    import optuna

    root = make_project(tmp_path)
    path = root / "workflows/tuned/workflow.py"
    path.write_text(path.read_text().replace(
        "        for epoch in range(3):\n",
        "        if self.depth % 2:\n            raise ValueError('odd depth')\n"
        "        for epoch in range(3):\n", 1))
    proc = subprocess.run([sys.executable, "workflows/tuned/workflow.py", "tune"], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    states = [t.state for t in study(root).trials]
    assert len(states) == 12 and optuna.trial.TrialState.FAIL in states
    assert optuna.trial.TrialState.COMPLETE in states
    assert "FAILED in step Fit" in proc.stderr and "Best trial" in proc.stdout


def test_mlflow_nests_trials_under_the_study_run(tmp_path):
    root = make_project(tmp_path)
    qflow("configure", "-c", "tracker=mlflow", cwd=root)
    qflow("tune", "-w", "tuned", "--n-trials", "3", cwd=root)
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{root / '.qflow/tracker/mlflow/mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["lab/tuned"])
    parents = runs[runs["tags.qflow.study"] == "lab/tuned"]
    assert len(parents) == 1 and parents.iloc[0]["status"] == "FINISHED"
    parent = parents.iloc[0]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert len(children) == 3
    assert float(parent["tags.qflow.best_value"]) == max(
        float(v) for v in children["tags.qflow.result"].dropna())


def test_trials_run_on_a_dask_cluster_two_at_a_time_and_prune(tmp_path):
    import optuna

    root = make_project(tmp_path, sampler="random")
    qflow("configure", "-c", "launcher=dask", "--set", "n_workers=2", cwd=root)
    proc = qflow("tune", "-w", "tuned", "--n-trials", "8", "--n-jobs", "2", cwd=root)
    trials = study(root).trials
    assert len(trials) == 8 and all(t.state.is_finished() for t in trials)
    assert optuna.trial.TrialState.FAIL not in {t.state for t in trials}
    assert optuna.trial.TrialState.PRUNED in {t.state for t in trials}, proc.stderr
    assert (root / "workflows/tuned/prepare.count").read_text() in ("x", "xx")
    for trial in trials:
        record = json.loads((root / ".qflow/runs" / trial.user_attrs["qflow_run_id"] /
                             "record.json").read_text())
        assert record["status"] in ("succeeded", "pruned")
