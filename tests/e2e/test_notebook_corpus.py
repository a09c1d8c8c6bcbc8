"""Real-world-shaped notebooks (``tests/data/notebooks/``) through plain papermill and through
``qflow run --notebook``: the same outcome, the same injected values, and QFlow's message names
the cell as the user counts it (1-based, markdown cells included) and the failing line.

Kernels are slow, so every run of the corpus starts at once in one module fixture (separate
processes), and the tests read their results.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
import pytest
import yaml

from tests.conftest import QFLOW, REPO, run_qflow

CORPUS = REPO / "tests/data/notebooks"

def papermill_values(p: list[tuple[str, str]], y: list[str], r: list[tuple[str, str]]) -> dict:
    """The parameters papermill's own command line would pass for ``-y``, ``-p`` and ``-r``."""
    from papermill.cli import _resolve_type
    from papermill.iorw import NoDatesSafeLoader

    values: dict[str, Any] = {}
    for text in y:
        values.update(yaml.load(text, Loader=NoDatesSafeLoader) or {})  # noqa: S506
    values.update({k: _resolve_type(v) for k, v in p})
    values.update(dict(r))
    return values


@dataclass
class Case:
    p: list[tuple[str, str]] = field(default_factory=list)
    y: list[str] = field(default_factory=list)
    r: list[tuple[str, str]] = field(default_factory=list)
    kernel: str = ""
    ok: bool = True
    code: int = 0            # qflow's exit code
    says: tuple[str, ...] = ()  # in qflow's message
    recorded: bool | None = None  # a run record; default: unless refused (exit 2)

    @property
    def started(self) -> bool:
        return self.code != 2 if self.recorded is None else self.recorded

    def qflow_args(self) -> list[str]:
        args = [a for k, v in self.p for a in ("-p", f"{k}={v}")]
        args += [a for text in self.y for a in ("-y", text)]
        args += [a for k, v in self.r for a in ("-r", f"{k}={v}")]
        return args + (["-k", self.kernel] if self.kernel else [])


TYPED = [("learning_rate", "1e-4"), ("epochs", "012"), ("shuffle", "yes"),
         ("start", "2019-01-01"), ("cutoff", "None")]
CASES: dict[str, Case] = {
    "typed_parameters": Case(p=TYPED, y=["label: [1, 2]\nlayers: {a: 1}"], r=[("note", "True")]),
    "injected_offset": Case(p=[("n", "2")], ok=False, code=1,
                            says=("failed in cell 4 of 5, line 2: IndexError: list index out of "
                                  "range",)),
    "markdown_before_failure": Case(ok=False, code=1,
                                    says=("failed in cell 5 of 7, line 2: ValueError: math "
                                          "domain error",)),
    "no_kernelspec": Case(ok=False, code=2, says=("names no kernel", "-k python3")),
    "no_kernelspec[k]": Case(kernel="python3", p=[("n", "3")]),
    "old_nbformat": Case(p=[("n", "5")]),
    "sys_exit_0": Case(p=[("n", "2")]),
    "sys_exit_0[kernel]": Case(kernel="no-such-kernel", ok=False, code=2, recorded=True,
                               says=("No Jupyter kernel named 'no-such-kernel'",)),
    "sys_exit_1": Case(p=[("n", "2")], ok=False, code=1, says=("cell 2 of 3: SystemExit: 1",)),
    "bad_line_magic": Case(p=[("n", "2")], ok=False, code=1,
                           says=("failed in cell 3 of 4: UsageError: Line magic function "
                                 "`%matplotlib_inline_typo` not found.",)),
    "step_failure": Case(p=[("n", "3")], ok=False, code=1,
                         says=("step 'fit' (cell 5 of 5, line 4): IndexError",)),
}


def notebook_of(case: str) -> str:
    return case.split("[")[0]


def _run_corpus(base: Path) -> dict[str, Any]:
    """Every case run by papermill and by qflow, at once; the qflow runs start in a project
    while the notebooks live outside it."""
    run_qflow("init", "-p", "lab", cwd=base)
    project = base / "lab"
    run_qflow("configure", "-c", "tracker=file", cwd=project)
    for side in ("papermill", "qflow"):
        for case in CASES:  # one copy per case: a papermill kernel writes beside its notebook
            (base / side / case).mkdir(parents=True)
            shutil.copy(CORPUS / f"{notebook_of(case)}.ipynb", base / side / case)

    def papermill(case: str) -> dict[str, Any]:
        """Plain papermill, as a user runs it from Python."""
        import papermill as pm

        c = CASES[case]
        source = base / "papermill" / case / f"{notebook_of(case)}.ipynb"
        output = source.with_name("out.ipynb")
        try:  # a user passes a language with a kernel when the notebook names none
            pm.execute_notebook(str(source), str(output), kernel_name=c.kernel or None,
                                parameters=papermill_values(c.p, c.y, c.r),
                                language="python" if c.kernel else None,
                                cwd=str(source.parent), progress_bar=False)
            return {"ok": True, "out": str(output)}
        except pm.PapermillExecutionError as exc:
            return {"ok": False, "ename": exc.ename, "evalue": exc.evalue, "out": str(output)}
        except Exception as exc:
            return {"ok": False, "ename": type(exc).__name__, "evalue": str(exc),
                    "out": str(output)}

    def qflow(case: str) -> dict[str, Any]:
        source = base / "qflow" / case / f"{notebook_of(case)}.ipynb"
        proc = subprocess.run([QFLOW, "run", "--notebook", str(source), *CASES[case].qflow_args()],
                              cwd=project, capture_output=True, text=True, timeout=300,
                              stdin=subprocess.DEVNULL)
        return {"returncode": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}

    # the qflow commands in parallel processes, papermill in this one meanwhile (one import)
    with ThreadPoolExecutor(max_workers=3) as pool:
        qf = {case: pool.submit(qflow, case) for case in CASES}
        pm = {case: papermill(case) for case in CASES}
        return {"project": str(project), "base": str(base), "papermill": pm,
                "qflow": {k: f.result() for k, f in qf.items()}}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The corpus's runs, once per test session even with pytest-xdist (the workers share the
    parent of their temporary folders; the first computes, the others read its results)."""
    from qflow.store.atomic import file_lock

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # popen-gwN/: its parent is this session's
        shared = shared.parent
    results = shared / "notebook-corpus.json"
    with file_lock(shared / "notebook-corpus.lock"):
        if not results.exists():
            base = shared / "notebook-corpus"
            shutil.rmtree(base, ignore_errors=True)
            base.mkdir()
            results.write_text(json.dumps(_run_corpus(base)))
    data = json.loads(results.read_text())
    data["project"], data["base"] = Path(data["project"]), Path(data["base"])
    data["qflow"] = {k: subprocess.CompletedProcess([], v["returncode"], v["stdout"], v["stderr"])
                     for k, v in data["qflow"].items()}
    return data


def executed(proc: subprocess.CompletedProcess) -> Any:
    path = proc.stderr.split("executed notebook: ")[1].split()[0]
    return nbformat.read(path, as_version=4)


def injected(nb: Any) -> str:
    return "".join(c.source for c in nb.cells
                   if "injected-parameters" in c.metadata.get("tags", []))


@pytest.mark.parametrize("case", list(CASES))
def test_the_same_outcome_as_papermill(corpus, case):
    c, pm, proc = CASES[case], corpus["papermill"][case], corpus["qflow"][case]
    assert pm["ok"] is c.ok, pm
    assert proc.returncode == c.code, proc.stderr
    for text in c.says:
        assert text in proc.stderr
    assert "Traceback" not in proc.stderr and "CellExecutionError" not in proc.stderr
    if c.code != 2:  # the kernel ran: the same injected cell, and the same error
        assert injected(executed(proc)) == injected(nbformat.read(pm["out"], as_version=4))
        if not c.ok:
            assert f"{pm['ename']}: {pm['evalue']}".rstrip(": ") in proc.stderr \
                or pm["ename"] == "CellExecutionError"


def test_parameters_are_typed_as_papermill_types_them(corpus):
    proc = corpus["qflow"]["typed_parameters"]
    out = executed(proc).cells[-1].outputs[0]["text"]
    papermill_out = nbformat.read(corpus["papermill"]["typed_parameters"]["out"],
                                  as_version=4).cells[-1].outputs[0]["text"]
    assert out == papermill_out
    seen = json.loads(out)
    assert seen["learning_rate"] == ["float", 0.0001] and seen["epochs"] == ["int", 12]
    assert seen["shuffle"] == ["str", "yes"] and seen["start"] == ["str", "2019-01-01"]
    assert seen["cutoff"] == ["NoneType", None] and seen["note"] == ["str", "True"]
    assert seen["label"] == ["list", [1, 2]] and seen["layers"] == ["dict", {"a": 1}]


def test_every_run_is_recorded_in_the_project_of_the_current_folder(corpus):
    project, base = corpus["project"], corpus["base"]
    runs = [r for r in json.loads(run_qflow("ps", "--json", "--limit", "100", cwd=project).stdout)
            if r["workflow"] in {notebook_of(c) for c in CASES}]  # not the export tests' runs
    expected = [(notebook_of(case), "succeeded" if c.ok else "failed")
                for case, c in CASES.items() if c.started]
    assert sorted((r["workflow"], r["status"]) for r in runs) == sorted(expected)
    assert not list((base / "qflow").glob("*/.qflow"))  # nothing in the notebooks' folders
    table = run_qflow("ps", cwd=project).stdout
    assert "WORKFLOW" in table.splitlines()[0] and "sys_exit_1" in table
    assert "failed (fit)" in run_qflow("ps", "-w", "step_failure", cwd=project).stdout


@pytest.mark.parametrize(("args", "says"), [
    (["-p", "alpha=1", "-y", "beta: [1"], "-y 'beta: [1' is not valid YAML"),
    (["-f", "missing.yaml"], "Cannot read the parameters file -f missing.yaml"),
    (["-y", "- 1"], "is not a mapping of parameter names to values"),
    (["-p", "alpha"], "Cannot read the parameter -p 'alpha'"),
])
def test_parameter_mistakes_are_clear_errors(corpus, args, says):
    nb = corpus["base"] / "qflow/typed_parameters/typed_parameters.ipynb"
    proc = run_qflow("run", "--notebook", str(nb), *args, cwd=corpus["project"], code=2)
    assert says in proc.stderr and "Traceback" not in proc.stderr


def test_a_parameters_cell_that_does_not_parse_names_the_file_and_line(corpus, tmp_path):
    nb = CORPUS / "bad_parameters.ipynb"
    proc = run_qflow("run", "--notebook", str(nb), cwd=tmp_path, code=2)
    assert f"{nb}: the parameters cell (cell 1) does not parse" in proc.stderr
    assert "line 2" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_qflow("export", str(nb), "-w", "bad", cwd=corpus["project"], code=2)
    assert "does not parse" in proc.stderr and "line 2" in proc.stderr
    assert not (corpus["project"] / "workflows/bad").exists()


def test_export_keeps_computed_parameters_computed(corpus):
    project = corpus["project"]
    run_qflow("export", str(CORPUS / "computed_parameters.ipynb"), "-w", "computed", cwd=project)
    config = yaml.safe_load((project / "workflows/computed/config.yaml").read_text())
    assert config["parameters"] == {"a": 3, "scale": 0.001}
    proc = run_qflow("run", "-w", "computed", "parameters.a=4", cwd=project)
    out = executed(proc).cells[-1].outputs[0]["text"]
    assert json.loads(out) == {"a": 4, "d": False, "scale": 0.001}
    refused = run_qflow("export", str(CORPUS / "computed_parameters.ipynb"), "-w", "computed_py",
                        "--to", "py", cwd=project, code=2)
    assert "line 2 of the parameters cell, `d = a == 3`, is computed" in refused.stderr
    assert not (project / "workflows/computed_py").exists()


def test_export_normalises_an_older_nbformat(corpus):
    project = corpus["project"]
    run_qflow("export", str(CORPUS / "old_nbformat.ipynb"), "-w", "old", cwd=project)
    nb = nbformat.read(project / "workflows/old/workflow.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat_minor >= 5 and all(c.get("id") for c in nb.cells)
    assert "result: 14" in run_qflow("run", "-w", "old", "parameters.n=4", cwd=project).stdout


def test_exported_notebooks_keep_their_relative_paths(corpus):
    project = corpus["project"]
    (project / "data/raw").mkdir(parents=True)
    (project / "data/raw/numbers.csv").write_text("value\n1.5\n2.5\n")
    shutil.copy(CORPUS / "relative_paths.ipynb", project / "notebooks/reader.ipynb")
    run_qflow("export", "notebooks/reader.ipynb", "-w", "reader", cwd=project)
    run_qflow("export", "notebooks/reader.ipynb", "-w", "reader_py", "--to", "py", cwd=project)
    for args in (["-w", "reader"], ["-w", "reader", "--no-cache"], ["-w", "reader_py"],
                 ["-w", "reader_py", "--no-cache"]):
        assert "result: 4.0" in run_qflow("run", *args, cwd=project / "workflows").stdout, args
    # --cwd as papermill means it: the kernel's folder, relative to the current one
    shutil.copy(CORPUS / "relative_paths.ipynb", project / "reader_top.ipynb")
    proc = run_qflow("run", "--notebook", "reader_top.ipynb", "--cwd", "notebooks", "--no-cache",
                     cwd=project)
    assert "result: 4.0" in proc.stdout
