"""Workflows with the artifact store at an S3 URL (moto's server on 127.0.0.1)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import new_project, run_qflow

WORKFLOW = '''
from pathlib import Path

import numpy as np
import qflow

LOG = Path(__file__).parent / "log"


def note(name: str) -> None:
    with open(LOG, "a") as f:
        f.write(name + "\\n")


@qflow.step
class Make:
    n: int = 1000

    def apply(self, seed: int) -> np.ndarray:
        note("Make")
        return np.arange(self.n, dtype="float64") + seed


@qflow.step
class Stats:
    def apply(self, values: np.ndarray) -> tuple[float, list]:
        note("Stats")
        return float(values.mean()), [float(values.min()), float(values.max())]


@qflow.step
class Report:
    scale: float = 1.0

    def apply(self, mean: float, bounds: list) -> dict:
        note("Report")
        return {"mean": mean * self.scale, "span": (bounds[1] - bounds[0]) * self.scale}


@qflow.workflow
class Remote:
    scale: float = 1.0

    def run(self, seed: int = 1) -> dict:
        mean, bounds = Stats().apply(Make().apply(seed))
        return Report(scale=self.scale).apply(mean, bounds)
'''


def make_project(base: Path) -> Path:
    return new_project(base, "lab", "remote", WORKFLOW)


def ran(root: Path) -> list[str]:
    log = root / "workflows/remote/log"
    names = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return names


def record(root: Path, proc) -> dict:
    run_id = proc.stdout.split("run_id: ")[1].split()[0]
    return json.loads((root / ".qflow/runs" / run_id / "record.json").read_text())


def test_a_run_stores_its_artifacts_in_s3_and_a_rerun_takes_them_from_there(tmp_path, s3_url):
    import fsspec

    root = make_project(tmp_path)
    store = f"++paths.store={s3_url}"
    first = run_qflow("run", "-w", "remote", store, cwd=root)
    assert ran(root) == ["Make", "Stats", "Report"]
    assert "result: {'mean': 500.5, 'span': 999.0}" in first.stdout
    assert record(root, first)["store"] == s3_url
    fs = fsspec.filesystem("s3")
    objects = fs.find(s3_url.removeprefix("s3://") + "/objects")
    assert any(p.endswith("manifest.json") for p in objects)  # the tuple output: a folder
    assert not (root / ".qflow/store/objects").exists()  # nothing in the local store

    shutil.rmtree(root / ".qflow/cache")  # a fresh machine: only the bucket has the artifacts
    second = run_qflow("run", "-w", "remote", store, cwd=root)
    assert ran(root) == []
    assert "result: {'mean': 500.5, 'span': 999.0}" in second.stdout
    assert {n["status"] for n in record(root, second)["nodes"].values()
            if n["kind"] == "step"} == {"cached"}

    from qflow import api

    view = api.inspect_run("file", run_id=record(root, first)["run_id"], root=root)
    assert view.artifacts["Make"][-1] == 1000.0  # read back from the bucket
    assert view.artifacts["Stats"] == (500.5, [1.0, 1000.0])


def test_a_truncated_object_in_s3_is_detected_and_recomputed(tmp_path, s3_url):
    import fsspec

    root = make_project(tmp_path)
    store = f"++paths.store={s3_url}"
    first = run_qflow("run", "-w", "remote", store, cwd=root)
    ran(root)
    key = record(root, first)["nodes"]["Stats"]["key"]
    fs = fsspec.filesystem("s3")
    folder = f"{s3_url.removeprefix('s3://')}/objects/{key[:2]}/{key}"
    data = next(p for p in fs.find(folder) if "/out1/" in p)
    fs.pipe(data, fs.cat(data)[:-3])  # cut short after it was committed
    shutil.rmtree(root / ".qflow/cache")
    second = run_qflow("run", "-w", "remote", store, "parameters.scale=2.0", cwd=root)
    assert ran(root) == ["Stats", "Report"]  # Report must run, so Stats is loaded, found bad
    assert "result: {'mean': 1001.0, 'span': 1998.0}" in second.stdout
    reasons = record(root, second)["nodes"]["Stats"]["reasons"]
    assert "corrupt" in reasons[0], reasons


def test_steps_on_a_dask_cluster_share_the_s3_store(tmp_path, s3_url):
    root = make_project(tmp_path)
    run_qflow("configure", "-c", "launcher=dask", "--set", "n_workers=2", cwd=root)
    store = f"++paths.store={s3_url}"
    first = run_qflow("run", "-w", "remote", store, cwd=root)
    assert sorted(ran(root)) == ["Make", "Report", "Stats"]
    assert "result: {'mean': 500.5, 'span': 999.0}" in first.stdout
    again = run_qflow("run", "-w", "remote", store, "launcher=local", cwd=root)
    assert ran(root) == []
    assert "result: {'mean': 500.5, 'span': 999.0}" in again.stdout
