"""Cache keys change exactly when what a step's output is made of changes."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qflow.graph.build import build
from qflow.graph.keys import canonical, components, components_text, digest, value_digest

BASE = '''
import qflow
import helpers
from helpers import deep_scale

THRESHOLD = 0.5


def local_helper(x):
    """Doubles x."""
    return x * 2


def unused(x):
    return x - 1


@qflow.step
class Prepare:
    def apply(self, data: list) -> list:
        return [local_helper(v) for v in data]


@qflow.step
class Fit:
    alpha: float = 1.0

    def apply(self, prepared: list) -> float:
        # a comment
        return deep_scale(sum(prepared)) * self.alpha + THRESHOLD


@qflow.step
class Report:
    def apply(self, score: float) -> str:
        return helpers.describe(score)


@qflow.workflow
class W:
    alpha: float = 1.0

    def run(self, data: list = [1, 2, 3]) -> str:
        prepared = Prepare().apply(data)
        score = Fit(alpha=self.alpha).apply(prepared)
        return Report().apply(score)
'''

HELPERS = '''
def scale(x):
    return x * 10


def deep_scale(x):
    return scale(x) + 1


def describe(score):
    return f"score={score}"
'''


def keys_of(tmp_path: Path, name: str, source: str = BASE, helpers: str = HELPERS,
            **params: object) -> dict[str, str]:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "flow.py").write_text(textwrap.dedent(source))
    (folder / "helpers.py").write_text(textwrap.dedent(helpers))
    for module in ("flow", "helpers"):
        sys.modules.pop(module, None)
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module("flow")
        graph = build(module.W(**params))
        keys: dict[str, str] = {}
        for node in graph.nodes.values():
            made_of = components(node, keys, [None] * len(node.outputs))
            text = components_text(made_of)  # as runs make it: each step class's text reused
            assert text == canonical(made_of)
            keys[node.id] = digest(made_of, text)
        return keys
    finally:
        sys.path.remove(str(folder))
        for module_name in ("flow", "helpers"):
            sys.modules.pop(module_name, None)


def changed(a: dict[str, str], b: dict[str, str]) -> set[str]:
    return {n for n in a if a[n] != b[n]}


@pytest.fixture
def base(tmp_path: Path) -> dict[str, str]:
    return keys_of(tmp_path, "base")


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("return [local_helper(v) for v in data]", "return [local_helper(v) + 0 for v in data]",
         {"Prepare", "Fit", "Report"}),
        ("return x * 2", "return x * 3", {"Prepare", "Fit", "Report"}),  # helper, same module
        ("THRESHOLD = 0.5", "THRESHOLD = 0.6", {"Fit", "Report"}),  # module constant
        ("# a comment", "# another comment", set()),  # comments do not count
        ('"""Doubles x."""', '"""Doubles x, documented."""', set()),  # nor docstrings
        ("return x - 1", "return x - 2", set()),  # an unreachable function does not count
        ("alpha: float = 1.0\n", "alpha: float = 1.0\n    beta: int = 0\n", {"Fit", "Report"}),
    ],
)
def test_code_edits_change_exactly_the_affected_keys(tmp_path, base, old, new, expected):
    assert old in BASE
    edited = keys_of(tmp_path, "edited", BASE.replace(old, new))
    assert changed(base, edited) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("return x * 10", "return x * 11", {"Fit", "Report"}),  # two calls deep, other module
        ("return scale(x) + 1", "return scale(x) + 2", {"Fit", "Report"}),
        ('f"score={score}"', 'f"score: {score}"', {"Report"}),  # used through the module
    ],
)
def test_helper_edits_in_another_module(tmp_path, base, old, new, expected):
    edited = keys_of(tmp_path, "edited", helpers=HELPERS.replace(old, new))
    assert changed(base, edited) == expected


def test_settings_and_inputs_change_their_node_and_everything_downstream(tmp_path, base):
    assert changed(base, keys_of(tmp_path, "alpha", alpha=0.5)) == {"Fit", "Report"}
    default = BASE.replace("data: list = [1, 2, 3]", "data: list = [1, 2, 4]")
    assert changed(base, keys_of(tmp_path, "data", default)) == {"data", "Prepare", "Fit", "Report"}


def test_same_code_same_keys(tmp_path, base):
    assert keys_of(tmp_path, "again") == base


def test_a_steps_key_text_is_its_canonical_json_whatever_changes_between_calls():
    import qflow
    from qflow.dsl.proxy import Proxy
    from qflow.graph.graph import Node

    def step_class(version: str | None) -> type:
        @qflow.step(version=version)
        class Odd:
            alpha: float = 1.0
            tags: dict = {}

            def apply(self, a: int, b: list) -> int:
                return a

        return Odd

    keys = {"up": "a" * 64, "other": "b" * 64}
    inputs = {"a": Proxy("up"), "b": [Proxy("other", 1), 3, "\0 text"]}
    for version, factory, settings in [(None, None, {}), (None, None, {"alpha": 0.5}),
                                       ("2", None, {"tags": {"z": [1], "a": None}}),
                                       ("2", "json@1", {"alpha": float("inf")})]:
        step = step_class(version)(**settings)
        made_of = components(Node(id="Odd", kind="step", obj=step, inputs=inputs), keys, [factory])
        assert components_text(made_of) == canonical(made_of)


def test_keys_are_stable_across_processes_and_hash_seeds(tmp_path):
    script = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from tests.unit.graph.test_keys import keys_of;"
        "from pathlib import Path;"
        "print(json.dumps(keys_of(Path(sys.argv[2]), 'p')))"
    )
    out = []
    for seed, folder in (("0", "a"), ("12345", "b")):
        (tmp_path / folder).mkdir()
        proc = subprocess.run([sys.executable, "-c", script, str(Path.cwd()), str(tmp_path / folder)],
                              capture_output=True, text=True, env={"PYTHONHASHSEED": seed,
                                                                   "PATH": "/usr/bin:/bin"},
                              cwd=Path(__file__).resolve().parents[3])
        assert proc.returncode == 0, proc.stderr
        out.append(json.loads(proc.stdout))
    assert out[0] == out[1]


def test_library_versions_are_part_of_the_fingerprint():
    import numpy as np

    from qflow.graph.fingerprint import code_fingerprint

    def uses_numpy(x):
        return np.sum(x)

    assert code_fingerprint(uses_numpy)["lib:numpy"] == np.__version__


@pytest.mark.parametrize("top", ["numpy", "yaml", "pydantic", "sklearn", "dateutil"])
def test_a_library_counts_by_the_version_of_the_distribution_that_installs_it(top):
    from importlib import metadata

    from qflow.graph.fingerprint import library_version

    [dist, *_] = metadata.packages_distributions()[top]  # yaml: PyYAML, sklearn: scikit-learn
    assert library_version(top) == metadata.version(dist)


def test_closure_values_count():
    from qflow.graph.fingerprint import code_fingerprint

    def make(factor):
        def scaled(x):
            return x * factor
        return scaled

    assert code_fingerprint(make(2)) != code_fingerprint(make(3))
    assert code_fingerprint(make(2)) == code_fingerprint(make(2))


def test_value_digests_are_canonical():
    import numpy as np
    import pandas as pd

    assert value_digest({"a": 1, "b": 2}) == value_digest({"b": 2, "a": 1})
    assert value_digest({1, 2, 3}) == value_digest({3, 2, 1})
    assert value_digest([1, 2]) != value_digest((1, 2))
    assert value_digest(np.arange(3)) == value_digest(np.arange(3))
    assert value_digest(np.arange(3)) != value_digest(np.arange(3, dtype="int32"))
    frame = pd.DataFrame({"a": [1, 2]})
    assert value_digest(frame) == value_digest(frame.copy())
    assert value_digest(frame) != value_digest(frame.rename(columns={"a": "b"}))
    assert value_digest(1) != value_digest("1") != value_digest(1.0)


def test_an_array_is_digested_in_place_by_its_contents_dtype_and_shape():
    import tracemalloc

    import numpy as np

    array = np.arange(4_000_000, dtype="float64")  # 32 MB
    tracemalloc.start()
    try:
        first = value_digest(array)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000  # no copy of the buffer
    assert first == value_digest(array.copy())
    assert first != value_digest(array.reshape(2000, 2000))
    changed = array.copy()
    changed[-1] += 1
    assert first != value_digest(changed)
    grid = np.arange(12.0).reshape(3, 4)
    assert value_digest(grid.T) == value_digest(np.ascontiguousarray(grid.T))
    assert value_digest(b"ab") == value_digest(bytearray(b"ab")) != value_digest(b"ba")


def test_keys_of_another_scheme_say_so_when_a_step_reruns():
    from qflow.graph.explain import explain
    from qflow.graph.keys import SCHEME

    assert SCHEME == 2  # arrays, bytes and pickles by XXH3-128: see the module's docstring
    old = {"scheme": 1, "kind": "input", "value": "a" * 64}
    assert explain(old, {**old, "scheme": SCHEME, "value": "b" * 64}, {}) == [
        "value changed", "cache scheme changed"]


def test_libraries_imported_inside_a_function_count_by_version():
    import numpy as np

    from qflow.graph.fingerprint import code_fingerprint

    def imports_inside(x):
        import numpy
        from pandas import DataFrame  # noqa: F401

        return numpy.sum(x)

    found = code_fingerprint(imports_inside)
    assert found["lib:numpy"] == np.__version__ and "lib:pandas" in found


LOGGING_STEP = textwrap.dedent('''
    import logging

    import qflow
    from qflow.graph.fingerprint import code_fingerprint


    @qflow.step
    class Report:
        def apply(self, x: int) -> int:
            logging.getLogger(__name__).info("x=%s", x)
            return x

    FINGERPRINT = code_fingerprint(Report)
''')


def test_a_step_reading_its_module_name_has_one_key_under_every_entry_point(tmp_path):
    import runpy

    from qflow.graph.fingerprint import code_fingerprint
    from qflow.project.workflows import FILE_MODULE_PREFIX

    path = tmp_path / "train" / "workflow.py"
    path.parent.mkdir()
    path.write_text(LOGGING_STEP)
    as_script = runpy.run_path(str(path), run_name="__main__")["FINGERPRINT"]  # python workflow.py
    name = f"{FILE_MODULE_PREFIX}train_workflow"  # how `qflow run -w train` imports it
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        as_import = code_fingerprint(module.Report)
    finally:
        del sys.modules[name]
    assert "workflow:__name__" in as_script
    assert as_script == as_import
