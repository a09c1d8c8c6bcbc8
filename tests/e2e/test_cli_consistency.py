"""`qflow` says the same thing everywhere, and a user's mistake is one clear message (exit 2).

A provider's status in the console, the run record, the summary and the tracker; bare
parameters on the command line; teardown without a terminal; `visualise --run-id`;
`api.inspect_run` on the project's tracker; unknown component choices.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qflow import api
from tests.conftest import new_project, run_qflow

WORKFLOW = '''
from pathlib import Path

import qflow
from qflow import providers


@qflow.step
class Split:
    frac: float = 0.5

    def apply(self, data: list) -> tuple[list, list]:
        n = int(len(data) * self.frac)
        return data[:n], data[n:]


@qflow.step
class Fit:
    C: float = 1.0

    def apply(self, train: list) -> float:
        return self.C * sum(train)


@qflow.workflow
class Model:
    C: float = 1.0

    def run(self, data: list = providers.factory_load(Path("data/numbers"))) -> float:
        train, _ = Split().apply(data)
        return Fit(C=self.C).apply(train)


if __name__ == "__main__":
    qflow.launch(Model)
'''


def qflow(*args: str, cwd: Path, code: int | None = 0) -> subprocess.CompletedProcess:
    return run_qflow(*args, cwd=cwd, code=code, timeout=120)


def records(project: Path) -> list[dict]:
    found = [json.loads(p.read_text()) for p in (project / ".qflow/runs").glob("*/record.json")]
    return sorted(found, key=lambda r: r["started"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = new_project(tmp_path, "shop", "model", WORKFLOW)
    code = "import qflow; qflow.save([1.0, 2.0, 3.0, 4.0], 'data/numbers')"
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)
    return root


def test_a_missing_provider_file_stops_the_run_before_any_step(project):
    (project / "workflows/model/workflow.py").write_text(
        WORKFLOW.replace("data/numbers", "data/nowhere"))
    proc = qflow("run", "-w", "model", cwd=project, code=2)
    assert "The provider 'data' (factory_load) reads data/nowhere, which does not exist" \
        in proc.stderr
    assert "Traceback" not in proc.stderr and "Split" not in proc.stderr
    assert not (project / ".qflow/runs").exists() or not records(project)


def test_an_uncached_provider_has_one_status_everywhere(project):
    proc = qflow("run", "-w", "model", cwd=project)
    assert "  inline data" in proc.stderr and "(2 ran, 0 cached, 1 inline)" in proc.stderr
    [record] = records(project)
    assert record["nodes"]["data"]["status"] == "inline"
    assert record["counts"] == {"inline": 1, "ran": 2}
    view = api.inspect_run(run_id=record["run_id"], root=project)  # the configured tracker
    assert view.tracker == "file" and view.steps["data"]["status"] == "inline"
    tags = [json.loads(line) for line in
            (project / f".qflow/tracker/file/{record['run_id']}.jsonl").read_text().splitlines()]
    status_tags = {k: v for e in tags if e["event"] == "tags" for k, v in e["tags"].items()
                   if k.endswith(".status")}
    assert status_tags["qflow.step.data.status"] == "inline"


def test_a_bare_name_on_the_command_line_is_a_parameter(project):
    proc = qflow("run", "-w", "model", "C=0.1", cwd=project)
    assert "result: 0.30000000000000004" in proc.stdout or "result: 0.3" in proc.stdout
    script = subprocess.run([sys.executable, "workflows/model/workflow.py", "C=0.1"],
                            cwd=project, capture_output=True, text=True)
    assert script.returncode == 0 and "cached Fit" in script.stderr  # the same run
    wrong = qflow("run", "-w", "model", "D=0.1", cwd=project, code=2)
    assert "the command line: unknown key 'parameters.D'" in wrong.stderr
    assert "config.yaml" not in wrong.stderr.splitlines()[1] and "Traceback" not in wrong.stderr


def test_visualise_a_run_draws_its_settings(project):
    qflow("run", "-w", "model", "C=0.1", cwd=project)
    [record] = records(project)
    qflow("visualise", "-w", "model", "--run-id", record["run_id"], "-f", "dot", "-o", "run.dot",
          cwd=project)
    dot = (project / "run.dot").read_text()
    assert "C=0.1" in dot and "C=1.0" not in dot and "[ran]" in dot and "[inline]" in dot
    qflow("visualise", "-w", "model", "-f", "dot", "-o", "now.dot", cwd=project)
    assert "C=1.0" in (project / "now.dot").read_text()  # without a run: today's defaults


def test_teardown_without_a_terminal_needs_yes(project):
    qflow("configure", "-c", "tracker=mlflow", cwd=project)
    qflow("run", "-w", "model", cwd=project)
    qflow("sync", cwd=project)
    before = (project / "configs/project.yaml").read_text()
    refused = qflow("teardown", "-c", "tracker", cwd=project, code=2)
    assert "--yes" in refused.stderr and "nothing was changed" in refused.stderr
    assert "removed configs/tracker/mlflow.yaml" in refused.stderr  # what it would do
    assert (project / "configs/project.yaml").read_text() == before
    assert (project / "configs/tracker/mlflow.yaml").exists()
    assert (project / ".qflow/tracker/mlflow").exists()
    done = qflow("teardown", "-c", "tracker", "--yes", cwd=project)
    assert "default tracker is now file" in done.stdout and "Deleted .qflow/tracker/mlflow" \
        in done.stdout
    again = qflow("teardown", "-c", "tracker=mlflow", cwd=project)
    assert "Nothing to tear down for tracker mlflow" in again.stdout


def test_mlflow_runs_are_found_from_what_qflow_run_prints(project):
    qflow("configure", "-c", "tracker=mlflow", cwd=project)
    proc = qflow("run", "-w", "model", cwd=project)
    line = next(x for x in proc.stderr.splitlines() if x.startswith("mlflow: experiment"))
    run_id = proc.stdout.split("run_id: ")[1].split()[0]
    assert line == (f"mlflow: experiment 'shop/model', run {run_id} (syncing in the background; "
                    "`qflow sync` waits for it)")
    view = api.inspect_run(run_id=run_id, root=project)  # waits for the sync
    for experiment in (None, "shop/model", view.experiment_id):
        view = api.inspect_run(experiment=experiment, run_id=run_id, root=project)
        assert view.tracker == "mlflow" and view.run_id == run_id
        assert view.steps["data"]["status"] == "inline"
    with pytest.raises(Exception, match="no experiment 'shop/modle'"):
        api.inspect_run("mlflow", "shop/modle", run_id=run_id, root=project)
    code = ("from qflow import api\n"
            f"print(api.inspect_run(run_id={run_id!r}).status)")
    quiet = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                           text=True)
    assert quiet.stdout.strip() == "succeeded", quiet.stderr
    assert "Downloading artifacts" not in quiet.stderr and "%|" not in quiet.stderr


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("configs/project.yaml", "- tracker: file", "- tracker: mlfow"),
         "configs/project.yaml: defaults: `- tracker: mlfow`: unknown tracker 'mlfow' "
         "(no configs/tracker/mlfow.yaml); choices: file, mlflow."),
        (("workflows/model/config.yaml", "  - _self_", "  - _self_\n  - override launcher: dsk"),
         "unknown launcher 'dsk'"),
    ],
)
def test_an_unknown_component_choice_names_the_file(project, edit, message):
    path, old, new = edit
    text = (project / path).read_text()
    assert old in text
    (project / path).write_text(text.replace(old, new))
    proc = qflow("run", "-w", "model", cwd=project, code=2)
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert "Could not" not in proc.stderr  # not Hydra's own words


def test_small_messages(project, tmp_path):
    evil = qflow("new", "-w", "../evil", cwd=project, code=2)
    assert "workflows/" in evil.stderr
    bad = qflow("init", "-p", "other", "-a", "123", cwd=tmp_path, code=2)
    assert "an account id has 12 digits" in bad.stderr


def test_templates_live_at_the_top_of_the_repository():
    from qflow.project.scaffold import TEMPLATES

    repo = Path(__file__).resolve().parents[2]
    assert (repo / "templates/project/configs/project.yaml.j2").is_file()
    assert not (repo / "qflow/templates").exists()
    assert TEMPLATES == repo / "templates"
