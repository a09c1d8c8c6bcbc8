"""The `qflow` command as a user runs it: init → new → run → ps → visualise → configure → teardown."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, run_qflow


def qflow(*args: str, cwd: Path, ok: bool = True) -> subprocess.CompletedProcess:
    return run_qflow(*args, cwd=cwd, code=0 if ok else None, timeout=120)


def ps(project: Path, workflow: str) -> list[dict]:
    return json.loads(qflow("ps", "-w", workflow, "--json", cwd=project).stdout)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    qflow("init", "-p", "demo", cwd=tmp_path)
    return tmp_path / "demo"


def test_help_lists_the_commands_and_every_command_has_help(tmp_path):
    out = qflow("--help", cwd=tmp_path).stdout
    for command, text in [("cache", "Inspect, verify and clean the artifact store"),
                          ("diff", "Compare two runs"),
                          ("plan", "Show what a run would do, running nothing"),
                          ("configure", "Configure new component for Qflow project"),
                          ("init", "Create a new Qflow project"), ("new", "Create a new workflow"),
                          ("ps", "List runs for the workflow"), ("run", "Run a workflow"),
                          ("sync", "Sync finished runs into their tracker"),
                          ("teardown", "Tear down selected configuration"),
                          ("tune", "Tune hyperparameters"),
                          ("visualise", "Visualise workflow execution graph")]:
        assert command in out and text in out
    assert qflow("-V", cwd=tmp_path).stdout.strip() == "qflow 0.1.0"
    assert qflow("--version", cwd=tmp_path).stdout.strip() == "qflow 0.1.0"
    for command, option in [("init", "--project"), ("new", "--workflow"), ("run", "--workflow"),
                            ("ps", "--limit"), ("configure", "--component"),
                            ("teardown", "--yes"), ("visualise", "--run-id"), ("tune", "--workflow"),
                            ("plan", "--json"), ("diff", "--all"), ("cache", "gc")]:
        assert option in qflow(command, "-h", cwd=tmp_path).stdout
    assert "-a" in qflow("init", "--help", cwd=tmp_path).stdout


def test_help_imports_no_heavy_library():
    code = ("import sys\nsys.argv = ['qflow', '--help']\nfrom qflow.cli.main import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = ['pydantic', 'hydra', 'jinja2', 'mlflow', 'optuna', 'papermill', 'dask', "
            "'distributed', 'fsspec', 'ipywidgets', 'numpy', 'pandas', 'qflow.dsl', 'qflow.cli.run', "
            "'qflow.cli.cache', 'qflow.cache', 'qflow.runtime']\n"
            "print([m for m in heavy if m in sys.modules], file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stderr.strip().splitlines()[-1] == "[]", proc.stderr


def test_project_life_cycle(project):
    layout = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert {"configs/project.yaml", "configs/tracker/file.yaml", "configs/launcher/local.yaml",
            "configs/tuner/optuna.yaml", "configs/paths/default.yaml", "notebooks/starter.ipynb",
            "src/demo/__init__.py", "src/demo/tests/test_example.py", "pyproject.toml",
            ".gitignore", "workflows/example/workflow.py", "workflows/example/config.yaml"} <= layout
    assert ".qflow/" in (project / ".gitignore").read_text()
    project_yaml = (project / "configs/project.yaml").read_text()
    for line in ("- _self_", "- paths: default", "- launcher: local", "- tuner: optuna",
                 "- tracker: mlflow", "project_name: demo"):
        assert line in project_yaml
    notebook = json.loads((project / "notebooks/starter.ipynb").read_text())
    assert notebook["nbformat"] == 4 and notebook["cells"]

    assert "Created workflow train" in qflow("new", "-w", "train", cwd=project).stdout
    config = (project / "workflows/train/config.yaml").read_text()
    assert "defaults:" in config and "inputs:" in config and "parameters:" in config

    first = qflow("run", "-w", "train", cwd=project)
    assert "result: [2.0, 4.0, 6.0]" in first.stdout and "never computed" in first.stderr
    assert "MLflow: mlflow ui --backend-store-uri sqlite:///" in first.stderr  # the default
    assert "(syncing in the background; `qflow sync` waits for it)" in first.stderr
    assert qflow("sync", cwd=project).stdout.strip() in (
        "Synced 1 run to mlflow.", "Nothing to sync: every run is in its tracker.")
    assert (project / ".qflow/tracker/mlflow/mlflow.db").is_file()
    second = qflow("run", "-w", "train", cwd=project / "workflows")  # from a sub-folder
    assert "cached Scale" in second.stderr and "0 ran, 1 cached" in second.stderr
    third = qflow("run", "-w", "train", "parameters.factor=3", cwd=project)
    assert "result: [3.0, 6.0, 9.0]" in third.stdout
    assert "setting `factor` 2.0 → 3.0" in third.stderr
    script = subprocess.run([sys.executable, "workflows/train/workflow.py", "factor=3"],
                            cwd=project, capture_output=True, text=True)
    assert script.returncode == 0, script.stderr
    assert "cached Scale" in script.stderr  # `python workflow.py` shares qflow run's cache

    runs = ps(project, "train")
    assert [r["status"] for r in runs] == ["succeeded"] * 4
    assert [(r["ran"], r["cached"]) for r in runs] == [(0, 1), (1, 0), (0, 1), (1, 0)]
    assert runs[1]["result"] == "[3.0, 6.0, 9.0]"
    table = qflow("ps", "-w", "train", "--limit", "2", cwd=project).stdout.splitlines()
    assert table[0].split()[:3] == ["RUN", "ID", "STATUS"] and len(table) == 3

    qflow("visualise", "-w", "train", cwd=project)
    svg = (project / ".qflow/graphs/train.svg").read_text()
    assert "<svg" in svg and "Scale" in svg and "values" in svg
    qflow("visualise", "-w", "train", "--run-id", runs[-1]["run_id"], "--format", "dot",
          "-o", "graph.dot", cwd=project)
    dot = (project / "graph.dot").read_text()
    assert 'qflow-ran"' in dot and "[ran]" in dot

    qflow("configure", "-c", "tracker=file", cwd=project)
    assert "- tracker: file" in (project / "configs/project.yaml").read_text()
    qflow("run", "-w", "train", cwd=project)
    assert (project / ".qflow/tracker/file").is_dir()
    qflow("configure", "-c", "tracker=mlflow", "--set", "tracking_uri=sqlite:///x.db", cwd=project)
    assert "- tracker: mlflow" in (project / "configs/project.yaml").read_text()
    assert "sqlite:///x.db" in (project / "configs/tracker/mlflow.yaml").read_text()
    refused = qflow("teardown", "-c", "tracker=mlflow", cwd=project, ok=False)  # no terminal
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert (project / "configs/tracker/mlflow.yaml").exists()
    removed = qflow("teardown", "-c", "tracker=mlflow", "--yes", cwd=project)
    assert "default tracker is now file" in removed.stdout
    assert "removed configs/tracker/mlflow.yaml" in removed.stdout
    assert "Deleted .qflow/tracker/mlflow" in removed.stdout
    assert not (project / "configs/tracker/mlflow.yaml").exists()
    assert "- tracker: file" in (project / "configs/project.yaml").read_text()
    assert not (project / ".qflow/tracker/mlflow").exists()
    gone = qflow("teardown", "-c", "tracker=mlflow", cwd=project)
    assert "Nothing to tear down for tracker mlflow" in gone.stdout
    kept = qflow("teardown", "-c", "tracker", cwd=project, ok=False)  # file, the fallback
    assert kept.returncode == 2 and "delete .qflow/tracker/file" in kept.stderr
    assert (project / "configs/tracker/file.yaml").exists() and (project / ".qflow/tracker/file").exists()

    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=project, capture_output=True, text=True, timeout=120)
    assert tests.returncode == 0, tests.stdout + tests.stderr  # the new project's own tests


def test_example_workflow_runs_out_of_the_box(project):
    out = qflow("run", "-w", "example", cwd=project)
    assert "train_loss" in out.stderr and float(out.stdout.split("result: ")[1]) == \
        pytest.approx(1.0, abs=0.2)


def test_codeartifact_settings(tmp_path):
    out = qflow("init", "-p", "shop", "-a", "123456789012", cwd=tmp_path).stdout
    assert "aws codeartifact login --tool pip --domain ml --domain-owner 123456789012" in out
    pip_conf = (tmp_path / "shop/pip.conf").read_text()
    assert "index-url = https://ml-123456789012.d.codeartifact.us-east-1." in pip_conf
    assert "[[tool.uv.index]]" in (tmp_path / "shop/pyproject.toml").read_text()
    bad = qflow("init", "-p", "other", "-a", "12ab", cwd=tmp_path, ok=False)
    assert bad.returncode == 2 and "12 digits" in bad.stderr
    assert not (tmp_path / "other").exists()


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else b"/"
            for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["init", "-p", "../x"], "it is a path"),
        (["init", "-p", "/abs"], "it is a path"),
        (["init", "-p", "1abc"], "must be a Python identifier"),
        (["init", "-p", "class"], "Python keyword"),
        (["init", "-p", "json"], "a module of that name already exists"),
        (["init", "-p", "{{7*7}}"], "must be a Python identifier"),
        (["init", "-p", "demo"], "already exists"),
        (["new", "-w", "../escape"], "it is a path"),
        (["new", "-w", "example"], "already exists"),
        (["new", "-w", "with-dash"], "must be a Python identifier"),
        (["run", "-w", "nope"], "has no workflow 'nope'"),
        (["run", "-w", "example", "parameters.n_sample=3"], "unknown key 'parameters.n_sample'"),
        (["run", "-w", "example", "parameters.seed=abc"], "'seed': input should be a valid integer"),
        (["run", "-w", "example", "tracker=nope"], "unknown tracker 'nope'"),
        (["new", "-w", "../evil"], "in the project's workflows/ folder"),
        (["configure", "-c", "trackr=file"], "Unknown component 'trackr'"),
        (["configure", "-c", "tracker=nope"], "Unknown tracker 'nope'"),
        (["visualise", "-w", "example", "--format", "gif"], "Unknown format 'gif'"),
    ],
)
def test_bad_input_is_a_clear_error_and_changes_nothing(project, args, message):
    cwd = project.parent if args[0] == "init" else project
    before = snapshot(project.parent)
    proc = qflow(*args, cwd=cwd, ok=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(project.parent) == before


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("configs/project.yaml", "run_id: null", "run_id: null\ntrackr: file"),
         "configs/project.yaml: unknown key 'trackr'"),
        (("workflows/example/config.yaml", "  seed: 0", "  seed: zero"),
         "workflows/example/config.yaml: Example: field 'seed'"),
        (("workflows/example/config.yaml", "  noise: 0.05", "  noise: {path: data/missing.csv}"),
         "'inputs.noise.path': data/missing.csv does not exist"),
        (("workflows/example/config.yaml", "  noise: 0.05", "  noise: 0.05\n  extra: 1"),
         "unknown key 'inputs.extra'"),
        (("workflows/example/config.yaml", "parameters:", "parameters: [oops"),
         "workflows/example/config.yaml:10:12: the YAML cannot be read"),
        (("configs/tracker/file.yaml", "name: file", "name: file\n  bad: indent"),
         "configs/tracker/file.yaml:3:"),
    ],
)
def test_config_mistakes_name_the_file_and_key(project, edit, message):
    path, old, new = edit
    text = (project / path).read_text()
    assert old in text
    (project / path).write_text(text.replace(old, new))
    before = snapshot(project)
    proc = qflow("run", "-w", "example", cwd=project, ok=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(project) == before


def test_failing_step_exits_1_naming_it(project):
    path = project / "workflows/example/workflow.py"
    path.write_text(path.read_text().replace("        slope = 0.0\n",
                                             "        slope = 0.0\n        1 / 0\n"))
    proc = qflow("run", "-w", "example", cwd=project, ok=False)
    assert proc.returncode == 1
    assert "Step 'Fit'" in proc.stderr and "ZeroDivisionError" in proc.stderr
    assert ps(project, "example")[0]["status"] == "failed"


def test_outside_a_project(tmp_path):
    proc = qflow("run", "-w", "train", cwd=tmp_path, ok=False)
    assert proc.returncode == 2 and "No QFlow project" in proc.stderr


@pytest.mark.slow
def test_the_wheel_ships_the_templates(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist),
                            str(REPO)], capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stdout + build.stderr
    [wheel] = dist.glob("qflow-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    cli = str(venv / "bin/qflow")
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    env.pop("PYTHONPATH", None)
    for args, cwd in [(["init", "-p", "wheeled"], tmp_path), (["new", "-w", "train"], None),
                      (["run", "-w", "train"], None), (["run", "-w", "example"], None),
                      (["ps", "-w", "train"], None)]:
        proc = subprocess.run([cli, *args], cwd=cwd or tmp_path / "wheeled", capture_output=True,
                              text=True, env=env, timeout=300)
        assert proc.returncode == 0, f"{args}: {proc.stdout}\n{proc.stderr}"
    assert "succeeded" in proc.stdout
    assert shutil.which("qflow", path=str(venv / "bin"))
