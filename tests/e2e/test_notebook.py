"""The example notebook on a real kernel (nbclient): computed once, then loaded from the cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

STEPS = ["load", "split", "scale", "fit", "evaluate"]


def execute(folder: Path, edit: tuple[str, str, str] | None = None) -> dict[str, str]:
    """Run digits.ipynb in ``folder`` in a fresh kernel; return each step cell's text output."""
    nb = nbformat.read(folder / "digits.ipynb", as_version=4)
    if edit is not None:
        step, old, new = edit
        cell = next(c for c in nb.cells if c.source.startswith(f"%%qflow_step {step}\n"))
        assert old in cell.source
        cell.source = cell.source.replace(old, new)
    NotebookClient(nb, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": str(folder)}}).execute()
    out = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.startswith("%%qflow_step "):
            name = cell.source.split()[1]
            out[name] = "\n".join(o.get("text", "") or o.get("data", {}).get("text/plain", "")
                                  for o in cell.outputs)
    return out


def loaded(outputs: dict[str, str]) -> set[str]:
    return {name for name, text in outputs.items() if "loaded from cache" in text}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copy(REPO / "notebooks/digits.ipynb", tmp_path / "digits.ipynb")
    return tmp_path


def test_notebook_computes_then_loads_everything_then_reruns_what_changed(folder):
    first = execute(folder)
    assert loaded(first) == set() and set(first) == set(STEPS)
    assert "trained for 15 epochs" in first["fit"]
    accuracy = float(first["evaluate"].strip().splitlines()[-1])
    assert 0.9 < accuracy <= 1.0

    second = execute(folder)  # a new kernel: nothing in memory, everything from the store
    assert loaded(second) == set(STEPS)
    # the expensive cell did not run: what it printed when it ran is replayed, marked as such
    assert second["fit"].index("replayed below") < second["fit"].index("trained for 15 epochs")
    assert float(second["evaluate"].strip().splitlines()[-1]) == accuracy

    third = execute(folder, edit=("fit", "random_state=0", "random_state=1"))
    assert loaded(third) == {"load", "split", "scale"}
    assert "trained for 15 epochs" in third["fit"]


def test_a_parameter_change_reruns_only_its_dependents(folder):
    execute(folder)
    nb = nbformat.read(folder / "digits.ipynb", as_version=4)
    parameters = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    parameters.source = parameters.source.replace("epochs = 15", "epochs = 5")
    nbformat.write(nb, folder / "digits.ipynb")
    changed = execute(folder)
    assert loaded(changed) == {"load", "split", "scale"}
    assert "trained for 5 epochs" in changed["fit"]
