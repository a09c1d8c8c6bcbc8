"""Config inputs of a project's workflow: `{path: ...}` files and `{path, load, args}` loaders."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from qflow.errors import ConfigError
from qflow.project.scaffold import init_project, new_workflow
from qflow.workflows import run_workflow

WORKFLOW = textwrap.dedent('''
    import qflow


    @qflow.step
    class Count:
        def apply(self, companies: object) -> list:
            return [type(companies).__name__, len(companies), list(companies.columns)]


    @qflow.workflow
    class Companies:
        def run(self, companies: object = None) -> list:
            return Count().apply(companies)
''')


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Path]:
    root = init_project("demo", tmp_path)
    folder = new_workflow(root, "companies")
    (folder / "workflow.py").write_text(WORKFLOW)
    (root / "data").mkdir()
    (root / "data/companies.csv").write_text("id;rating\n1;0.5\n2;0.9\n")
    return root, folder


def configure(folder: Path, inputs: str) -> None:
    (folder / "config.yaml").write_text(
        "defaults:\n  - project\n  - override tracker: file\n  - _self_\n"
        f"inputs:\n  {inputs}\nparameters: {{}}\n")


def run(root: Path, folder: Path):
    return run_workflow(root, folder, [], console=False)


def test_a_config_input_names_its_loader_and_is_keyed_by_the_file(project):
    root, folder = project
    configure(folder, "companies: {path: data/companies.csv, load: pandas.read_csv, "
                      "args: {sep: ';'}}")
    first = run(root, folder)
    assert first.result == ["DataFrame", 2, ["id", "rating"]]
    assert first.nodes["Count"].status == "ran"
    assert run(root, folder).nodes["Count"].status == "cached"
    csv = root / "data/companies.csv"
    csv.write_text(csv.read_text() + "3;0.1\n")
    os.utime(csv, ns=(csv.stat().st_atime_ns, csv.stat().st_mtime_ns + 10**9))
    third = run(root, folder)
    assert third.result[1] == 3 and third.nodes["Count"].reasons == ["upstream `companies` changed"]
    configure(folder, "companies: {path: data/companies.csv, load: 'pandas.io.parsers:read_csv', "
                      "args: {sep: ';', usecols: [rating]}}")
    assert run(root, folder).result == ["DataFrame", 3, ["rating"]]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{path: data/companies.csv, load: pandas.read_nothing}",
         "'inputs.companies.load': cannot use 'pandas.read_nothing' as a loader"),
        ("{path: data/companies.csv, load: nopackage.read}",
         "'inputs.companies.load': cannot use 'nopackage.read' as a loader: no module named"),
        ("{path: data/companies.csv, load: pandas.__version__}", "not a callable"),
        ("{path: data/companies.csv, args: {sep: ';'}}", "'inputs.companies.load' must name"),
        ("{path: data/companies.csv, load: pandas.read_csv, args: [1]}",
         "'inputs.companies.args' must be a mapping"),
        ("{path: data/companies.csv, type: pandas.CSVDataset}",
         "unknown key 'inputs.companies.type': a file input takes path, load, args"),
    ],
)
def test_a_bad_loader_names_the_config_file_and_key(project, spec, message):
    root, folder = project
    configure(folder, f"companies: {spec}")
    with pytest.raises(ConfigError) as info:
        run(root, folder)
    assert str(folder / "config.yaml") in info.value.message
    assert message in info.value.message
