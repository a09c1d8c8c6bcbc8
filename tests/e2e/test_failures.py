"""Failing and killed runs: the step is named, nothing finished is lost, reruns resume."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import finished_steps, run_python

FLOW = '''
import time
from pathlib import Path
import qflow


@qflow.step
class Prepare:
    def apply(self, n: int) -> list:
        Path("prepare.count").open("a").write("x")
        return list(range(n))


@qflow.step
class Train:
    delay: float = 0.0

    def apply(self, data: list) -> int:
        time.sleep(self.delay)
        return explode(data)


def explode(data):
    raise RuntimeError("the model diverged")


@qflow.workflow
class Flow:
    delay: float = 0.0

    def run(self, n: int = 5) -> int:
        return Train(delay=self.delay).apply(Prepare().apply(n))


if __name__ == "__main__":
    qflow.launch(Flow)
'''


def records(folder: Path) -> list[dict]:
    return [json.loads((d / "record.json").read_text())
            for d in sorted((folder / ".qflow/runs").iterdir())]


def test_failing_step_names_itself_and_the_fixed_rerun_resumes(tmp_path):
    (tmp_path / "flow.py").write_text(FLOW)
    proc = run_python(["flow.py"], tmp_path)
    assert proc.returncode == 1
    assert "Step 'Train'" in proc.stderr and "RuntimeError: the model diverged" in proc.stderr
    assert "FAILED Train" in proc.stderr
    assert 'flow.py", line 24, in explode' in proc.stderr  # the user's traceback, their frames
    assert "qflow/runtime" not in proc.stderr
    assert (tmp_path / "prepare.count").read_text() == "x"
    [failed] = records(tmp_path)
    assert failed["status"] == "failed" and failed["failed_step"] == "Train"

    (tmp_path / "flow.py").write_text(FLOW.replace('raise RuntimeError("the model diverged")',
                                                   "return sum(data)"))
    proc = run_python(["flow.py"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "prepare.count").read_text() == "x"  # Prepare came from the cache
    fixed = records(tmp_path)[-1]
    assert fixed["result"] == 10 and fixed["nodes"]["Prepare"]["status"] == "cached"
    assert fixed["nodes"]["Train"]["reasons"] == ["code of `explode` changed"]


def test_killed_run_loses_only_the_step_in_flight(tmp_path):
    (tmp_path / "flow.py").write_text(FLOW.replace('raise RuntimeError("the model diverged")',
                                                   "return sum(data)"))
    proc = subprocess.Popen([sys.executable, "flow.py", "delay=60"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline:
        if "Prepare" in finished_steps(tmp_path / ".qflow/runs"):
            break
        time.sleep(0.05)
    time.sleep(0.3)  # let the background commit of Prepare's artifact finish
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    [killed] = records(tmp_path)
    assert killed["status"] == "running"  # the record shows it never finished

    rerun = run_python(["flow.py", "delay=0"], tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert (tmp_path / "prepare.count").read_text() == "x"
    assert records(tmp_path)[-1]["nodes"]["Prepare"]["status"] == "cached"
    assert list((tmp_path / ".qflow/store/tmp").iterdir()) == []


def test_graph_errors_exit_2_without_traceback(tmp_path):
    (tmp_path / "flow.py").write_text(FLOW.replace(
        "return Train(delay=self.delay).apply(Prepare().apply(n))",
        "data = Prepare().apply(n)\n        if data:\n            pass\n        return data"))
    proc = run_python(["flow.py"], tmp_path)
    assert proc.returncode == 2
    assert "Cannot build the workflow graph" in proc.stderr and "flow.py:33: `if data:`" in proc.stderr
    assert "Traceback" not in proc.stderr
