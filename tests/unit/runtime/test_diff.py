"""Two run records side by side: only what differs, in the words of "why it ran"."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Generator

import qflow
from qflow.runtime.diff import diff_runs
from qflow.runtime.record import read_record


@qflow.step
class Make:
    n: int = 3

    def apply(self, seed: int) -> list:
        return list(range(seed, seed + self.n))


@qflow.step
class Score:
    scale: float = 1.0

    def apply(self, values: list) -> Generator[qflow.RuntimeInfo, None, float]:
        yield qflow.Metric(name="total", value=sum(values) * self.scale)
        return sum(values) * self.scale


@qflow.workflow
class Flow:
    scale: float = 1.0

    def run(self, seed: int = 1) -> Generator[qflow.RuntimeInfo, None, float]:
        values = Make().apply(seed)
        return (yield from qflow.label_info(Score(scale=self.scale), score="total").apply(values))


def record(root: Path, **parameters) -> dict:
    state = qflow.run(Flow(**parameters), root=root, console=False, tracker=None)
    return read_record(root / ".qflow" / "runs", state.run_id)


def rows(diff, section: str) -> dict[str, tuple]:
    return {r.name: (r.a, r.b) for r in diff.differences() if r.section == section}


def test_a_parameter_change_shows_in_parameters_settings_metrics_and_artifacts(tmp_path):
    a, b = record(tmp_path), record(tmp_path, scale=2.0)
    diff = diff_runs(a, b)
    assert rows(diff, "parameters") == {"scale": (1.0, 2.0)}
    assert rows(diff, "settings") == {"Score.scale": (1.0, 2.0)}
    assert rows(diff, "metrics") == {"score": (6.0, 12.0)}
    assert set(rows(diff, "artifacts")) == {"Score"}  # Make has the same key: the same artifact
    assert rows(diff, "code") == {} and rows(diff, "libraries") == {}
    text = diff.describe()
    assert a["run_id"] in text and b["run_id"] in text and "Score.scale" in text
    assert "Make" not in text  # only what differs
    assert "Make" in diff.describe(every=True) and "pydantic" in diff.describe(every=True)
    data = diff.to_dict()
    assert data["sections"]["parameters"] == [{"name": "scale", "a": 1.0, "b": 2.0, "same": False}]
    assert data["sections"]["libraries"] == [] and not data["same"]
    assert diff_runs(a, a).describe().startswith(f"Runs {a['run_id']} and {a['run_id']} do not differ")


def test_code_and_library_changes_name_the_function_and_the_version(tmp_path):
    a = record(tmp_path)
    b = copy.deepcopy(a)
    b["run_id"] = "other"
    code = b["nodes"]["Score"]["components"]["code"]
    own = next(k for k in code if k.endswith(":Score"))
    code[own] = "0" * 16
    code["test_diff:helper"] = "1" * 16
    for node in ("Make", "Score"):
        b["nodes"][node]["components"]["python"] = "cpython-3.99"
        b["nodes"][node]["components"]["code"]["lib:pydantic"] = "9.9.9"
    diff = diff_runs(a, b)
    notes = {r.name: r.note for r in diff.differences() if r.section == "code"}
    assert notes == {"Score": "code now uses `helper`; code of `Score` changed"}
    libraries = rows(diff, "libraries")
    assert libraries["pydantic"][1] == "9.9.9" and libraries["Python"][1] == "cpython-3.99"
    assert "code now uses `helper`" in diff.describe()


def test_steps_only_one_run_has_show_as_absent(tmp_path):
    a = record(tmp_path)
    b = copy.deepcopy(a)
    b["nodes"]["Extra"] = {"id": "Extra", "kind": "step", "status": "ran", "key": "ab" * 32,
                           "components": {"code": {"m:Extra": "x"}}}
    diff = diff_runs(a, b)
    assert rows(diff, "artifacts") == {"Extra": (None, "ab" * 32)}
    assert rows(diff, "code")["Extra"][0] is None
    assert "Extra" in diff.describe() and " - " in diff.describe()
