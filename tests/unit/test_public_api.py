"""The public surface: `qflow.__all__`, and what `import qflow` costs."""

from __future__ import annotations

import json
import subprocess
import sys

import qflow

HEAVY = ["numpy", "pandas", "pyarrow", "mlflow", "optuna", "papermill", "nbclient", "dask",
         "distributed", "hydra", "ipywidgets", "IPython", "wandb", "tqdm", "cloudpickle",
         "sklearn", "fsspec", "s3fs", "botocore", "graphviz"]


def test_all_is_sorted_and_exported():
    assert qflow.__all__ == sorted(qflow.__all__)
    assert set(qflow.__all__) == {*qflow._EXPORTS, "__version__"}
    for name in qflow.__all__:
        assert hasattr(qflow, name), name


def test_import_qflow_loads_no_heavy_library():
    code = ("import sys, json, qflow; "
            f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout) == []


def test_building_a_graph_loads_no_heavy_library():
    code = '''
import sys, json, qflow
from qflow.graph.build import build

@qflow.step
class S:
    def apply(self, x: int) -> int:
        return x

@qflow.workflow
class W:
    def run(self, x: int = 1) -> int:
        return S().apply(x)

build(W())
print(json.dumps([m for m in HEAVY if m in sys.modules]))
'''
    proc = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{code}"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_a_broken_plugin_is_a_clear_error():
    import pytest

    from qflow.errors import ConfigError
    from qflow.plugins import Registry

    registry = Registry("qflow.trackers", {"ghost": "qflow_no_such_module:Tracker"})
    assert "ghost" in registry.names()
    with pytest.raises(ConfigError, match="plugin 'ghost'.*cannot be loaded"):
        registry.get("ghost")
    with pytest.raises(ConfigError, match="Unknown tracker 'nope'"):
        registry.get("nope")
