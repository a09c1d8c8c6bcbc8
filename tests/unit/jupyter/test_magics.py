"""The magics in a real IPython shell: caching, stale steps, overrides, errors, widgets."""

from __future__ import annotations

from pathlib import Path

import pytest
from IPython.core.interactiveshell import InteractiveShell

from jupyter_ext import magics


@pytest.fixture
def shell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    ip = InteractiveShell.instance()
    ip.reset()
    magics._SESSIONS.pop(id(ip), None)
    ip.run_line_magic("load_ext", "qflow")
    ip.extension_manager.loaded.discard("qflow")  # so the next test's load_ext runs again
    yield ip
    magics.unload(ip)


def run(ip: InteractiveShell, source: str, capsys: pytest.CaptureFixture) -> tuple[object, str]:
    result = ip.run_cell(source)
    out = capsys.readouterr()
    return result, out.out + out.err


def session(ip: InteractiveShell):
    return magics._SESSIONS[id(ip)]


def test_a_step_runs_once_then_loads_from_cache(shell, capsys):
    run(shell, "x = 2", capsys)
    result, out = run(shell, "%%qflow_step double\ny = x * 2\ny + 1", capsys)
    assert result.success and result.result == 5 and shell.user_ns["y"] == 4
    step = session(shell).steps["double"]
    assert step.status == "ran" and step.inputs == ["x"] and step.outputs == ["y"]

    shell.user_ns.pop("y")
    result, out = run(shell, "%%qflow_step double\ny = x * 2\ny + 1", capsys)
    assert "double: loaded from cache (y)" in out and result.result == 5
    assert shell.user_ns["y"] == 4 and step.status == "cached"

    run(shell, "x = 3", capsys)  # a plain value is hashed: a new value, a new key
    result, out = run(shell, "%%qflow_step double\ny = x * 2\ny + 1", capsys)
    assert "loaded from cache" not in out and shell.user_ns["y"] == 6


def test_cache_survives_a_new_session_like_a_kernel_restart(shell, capsys):
    run(shell, "import math\nbase = 10", capsys)
    run(shell, "%%qflow_step roots\nvalues = [math.sqrt(v) for v in range(base)]", capsys)
    magics._SESSIONS.pop(id(shell))
    shell.reset()
    shell.register_magics(magics.QFlowMagics)
    run(shell, "import math\nbase = 10", capsys)
    _, out = run(shell, "%%qflow_step roots\nvalues = [math.sqrt(v) for v in range(base)]", capsys)
    assert "roots: loaded from cache (values)" in out and shell.user_ns["values"][4] == 2.0


def test_downstream_steps_go_stale_and_rerun_stale_recomputes_them(shell, capsys):
    run(shell, "%%qflow_step source\ndata = [1, 2, 3]", capsys)
    run(shell, "%%qflow_step total\ns = sum(data)", capsys)
    run(shell, "%%qflow_step report\ntext = f'sum={s}'", capsys)
    steps = session(shell).steps
    assert steps["total"].upstream == {"data": "source"}
    run(shell, "%%qflow_step source\ndata = [1, 2, 3, 4]", capsys)
    assert steps["total"].status == "stale" and steps["report"].status == "stale"
    _, out = run(shell, "%qflow rerun-stale", capsys)
    assert "re-ran total, report" in out
    assert shell.user_ns["text"] == "sum=10" and steps["report"].status == "ran"
    _, out = run(shell, "%qflow rerun-stale", capsys)
    assert "nothing is stale" in out


def test_outputs_of_a_step_rebound_by_a_plain_cell_are_hashed_by_value(shell, capsys):
    run(shell, "%%qflow_step make\nn = 5", capsys)
    run(shell, "n = 7", capsys)  # no longer the step's output
    run(shell, "%%qflow_step use\nm = n + 1", capsys)
    assert session(shell).steps["use"].upstream == {} and shell.user_ns["m"] == 8


def test_explicit_inputs_outputs_and_no_cache(shell, capsys):
    run(shell, "a = 1\nb = 2", capsys)
    run(shell, "%%qflow_step pick --inputs a --outputs c\nc = a + 1\nd = 5", capsys)
    step = session(shell).steps["pick"]
    assert step.inputs == ["a"] and step.outputs == ["c"]
    run(shell, "%%qflow_step always --no-cache\ncount = globals().get('count', 0) + 1", capsys)
    _, out = run(shell, "%%qflow_step always --no-cache\ncount = globals().get('count', 0) + 1",
                 capsys)
    assert "loaded from cache" not in out and shell.user_ns["count"] == 2


def test_in_place_change_of_an_upstream_output_never_corrupts_it(shell, capsys):
    run(shell, "%%qflow_step make\nd = {'a': 1}", capsys)
    _, out = run(shell, "%%qflow_step change\nd['a'] = d['a'] * 10", capsys)
    assert "change changes `d` in place, an output of step 'make'" in out
    assert session(shell).steps["change"].outputs == ["d"] and shell.user_ns["d"] == {"a": 10}
    # the edited cell starts again from what `make` left, not from its own last result
    _, out = run(shell, "%%qflow_step change\nd['a'] = d['a'] * 100", capsys)
    assert "`d` is back as step 'make' left it" in out and shell.user_ns["d"] == {"a": 100}
    # and the same for a Kedro-style function that returns what it changed
    run(shell, "def add(frame):\n    frame['n'] = frame.get('n', 0) + 1\n    return frame", capsys)
    run(shell, "%%qflow_step make2\ne = {'n': 0}", capsys)
    run(shell, "%%qflow_step use\ne = add(e)", capsys)
    run(shell, "%%qflow_step use\ne = add(e)\ne['edited'] = True", capsys)
    assert shell.user_ns["e"] == {"n": 1, "edited": True}
    make2 = session(shell).steps["make2"]
    assert session(shell).store.load(make2.key, 0) == {"n": 0}


def test_imports_are_reimported_not_pickled(shell, capsys):
    run(shell, "%%qflow_step tools\nimport json\nfrom os.path import join", capsys)
    shell.user_ns.pop("json")
    shell.user_ns.pop("join")
    _, out = run(shell, "%%qflow_step tools\nimport json\nfrom os.path import join", capsys)
    assert "loaded from cache" in out
    import json
    import os.path

    assert shell.user_ns["json"] is json and shell.user_ns["join"] is os.path.join


def test_a_failing_step_raises_once_and_is_marked_failed(shell, capsys):
    result, out = run(shell, "%%qflow_step broken\nvalue = 1 / 0", capsys)
    assert not result.success and isinstance(result.error_in_exec.error, ZeroDivisionError)
    assert session(shell).steps["broken"].status == "failed"
    assert out.count("ZeroDivisionError") >= 1
    # the user's frames only: not the magic call with the cell's source, not QFlow's frames
    assert "run_cell_magic" not in out and "qflow/notebook" not in out and "jupyter_ext" not in out
    import re

    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "value = 1 / 0" in plain and plain.count("Traceback") <= 1, plain


def test_bad_arguments_are_usage_errors(shell, capsys):
    for line in ("%%qflow_step 1bad\nx = 1", "%%qflow_step s --inputs a-b\nx = 1"):
        result, out = run(shell, line, capsys)
        assert not result.success or "UsageError" in out
        assert "UsageError" in out or "Invalid" in out or "Not a variable" in out
    result, out = run(shell, "%%qflow_step\nx = 1", capsys)  # no name: the usage, nothing runs
    assert out.startswith("Usage: %%qflow_step NAME") and "x" not in shell.user_ns
    _, out = run(shell, "%qflow frobnicate", capsys)
    assert "Unknown %qflow command" in out


def test_graph_status_runs_and_inspect(shell, capsys):
    run(shell, "%%qflow_step one\nv = 1", capsys)
    run(shell, "%%qflow_step two\nw = v + 1", capsys)
    import html

    from jupyter_ext.widgets import LiveView

    view = LiveView(live=False)  # what %qflow graph shows, followed without a display
    view.start(session(shell).run)
    drawn = view.html()
    assert 'class="node qflow-node qflow-ran"' in drawn and 'id="qflow-node-two"' in drawn
    session(shell).add_view(view)
    run(shell, "v = 5", capsys)
    run(shell, "%%qflow_step two\nw = v + 1", capsys)
    assert '"two": "ran"' in html.unescape(view.html())
    shell.run_line_magic("qflow", "graph")
    assert f"run {session(shell).run.run_id} running" in capsys.readouterr().out
    _, out = run(shell, "%qflow status", capsys)
    assert "one" in out and "two" in out
    table = shell.run_line_magic("qflow", "runs")
    assert session(shell).run.run_id in table._repr_html_()
    view = shell.run_line_magic("qflow", f"inspect {session(shell).run.run_id}")
    assert view.run_id == session(shell).run.run_id  # a RunView, shown by show_run


def test_progress_bar_in_a_step_cell_is_shown(shell, capsys):
    from qflow.runtime.events import Observer

    shown = []

    class Seen(Observer):
        def node_info(self, *, node, info, **_):
            shown.append((node.id, info.done))

    run(shell, "%qflow status", capsys)
    session(shell).add_view(Seen())
    run(shell, "%%qflow_step train\nimport qflow\nbar = qflow.ProgressBar(name='epoch', total=3)\n"
               "for _ in range(3):\n    bar.update(1)", capsys)
    assert shown == [("train", 1), ("train", 2), ("train", 3)]


def test_run_views_display_as_the_inspector(shell, capsys, tmp_path):
    import qflow

    @qflow.step
    class Twice:
        def apply(self, x: int) -> int:
            return 2 * x

    @qflow.workflow
    class W:
        def run(self, x: int = 4) -> int:
            return Twice().apply(x)

    state = qflow.run(W(), root=tmp_path, console=False)
    from qflow import api

    view = api.inspect_run(tracker="file", run_id=state.run_id, root=tmp_path)
    from jupyter_ext.inspector import inspector

    box = inspector(view)
    tabs = box.children[1]
    assert [tabs.get_title(i) for i in range(4)] == ["Parameters", "Metrics", "Artifacts", "Graph"]
    assert "8" in tabs.children[2].value  # the artifact of Twice
    from IPython.utils.capture import capture_output

    with capture_output() as shown:  # displayed: the inspector as HTML, and no widget
        shell.display_formatter.format(view)
    [output] = shown.outputs
    assert "qflow-inspector" in output.data["text/html"] and "Twice" in output.data["text/html"]
    assert "application/vnd.jupyter.widget-view+json" not in output.data
    assert output.data["text/plain"] == f"QFlow run {view.run_id} of W: succeeded"


def test_a_second_cell_cannot_take_a_steps_name_but_the_same_cell_edited_can(shell, capsys):
    # JupyterLab sends each cell's id with its code; IPython passes it to pre_run_cell
    first = shell.run_cell("%%qflow_step load\na = 1", cell_id="cell-a")
    assert first.success
    other = shell.run_cell("%%qflow_step load\nb = 2", cell_id="cell-b")
    out = capsys.readouterr()
    assert not other.success and "b" not in shell.user_ns
    assert "Step 'load' is already the name of another cell" in out.out + out.err
    edited = shell.run_cell("%%qflow_step load\na = 3", cell_id="cell-a")
    assert edited.success and shell.user_ns["a"] == 3
