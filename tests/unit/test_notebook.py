"""Reading notebooks as papermill runs them: typed values, cell numbers, failing lines."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from qflow.errors import ConfigError
from qflow.notebook import (
    cell_error,
    failing_line,
    parameter_list,
    parameter_names,
    parameters,
    source_index,
    typed,
)


@pytest.mark.parametrize(("raw", "value"), [
    ("True", True), ("False", False), ("None", None), ("012", 12), ("-3", -3), ("1e-4", 0.0001),
    ("0.5", 0.5), ("yes", "yes"), ("2019-01-01", "2019-01-01"), ("true", "true"), ("", ""),
    ("[1, 2]", "[1, 2]"),
])
def test_values_are_typed_as_papermill_types_them(raw, value):
    from papermill.cli import _resolve_type

    assert typed(raw) == value and type(typed(raw)) is type(value)
    assert typed(raw) == _resolve_type(raw)


def notebook(*cells):
    return new_notebook(cells=list(cells))


def params(source):
    cell = new_code_cell(source)
    cell.metadata["tags"] = ["parameters"]
    return cell


def test_papermill_indices_map_to_the_cells_the_user_sees():
    def md():
        return new_markdown_cell("# t")

    def code():
        return new_code_cell("x")

    nb = notebook(md(), params("a = 1"), md(), code(), code())
    # papermill runs: md, params, INJECTED, md, code, code
    assert [source_index(nb, i, injected=True) for i in range(6)] == [0, 1, None, 2, 3, 4]
    assert [source_index(nb, i, injected=False) for i in range(5)] == [0, 1, 2, 3, 4]
    no_params = notebook(md(), code())  # injected first
    assert [source_index(no_params, i, injected=True) for i in range(3)] == [None, 0, 1]
    old = new_code_cell("a = 2")
    old.metadata["tags"] = ["injected-parameters"]
    rerun = notebook(params("a = 1"), old, code())  # papermill replaces its old cell in place
    assert [source_index(rerun, i, injected=True) for i in range(3)] == [0, None, 2]


def test_the_failing_line_comes_from_the_cell_s_own_frame():
    traceback = ["\x1b[36mCell\x1b[39m \x1b[32mIn[2]\x1b[39m\x1b[32m, line 7\x1b[39m",  # a helper
                 "Cell In[4], line 3", "Cell In[2], line 7"]
    assert failing_line(traceback, 4, step=False) == 3
    step = ["Cell In[4], line 1", "File magics.py:62", "Cell In[5], line 2"]
    assert failing_line(step, 4, step=True) == 3  # line 1 is the %%qflow_step line
    assert failing_line(["SystemExit: 1"], 4, step=False) is None


def test_an_error_ipython_only_prints_is_named():
    cell = new_code_cell("%nosuch")
    cell.outputs = [nbformat.v4.new_output(
        "stream", name="stderr", text="UsageError: Line magic function `%nosuch` not found.\n")]
    assert cell_error(cell) == ("UsageError", "Line magic function `%nosuch` not found.")
    assert cell_error(new_code_cell("x"))[1] == "the cell failed without an error message"


def test_computed_parameters_are_not_values():
    nb = notebook(params("%matplotlib inline\na = 3\nd = a == 3\nname: str = 'x'"))
    assert parameters(nb) == {"a": 3, "name": "x"}
    assert parameter_names(nb) == ["a", "d", "name"]
    [computed] = [p for p in parameter_list(nb) if p.computed]
    assert (computed.name, computed.value, computed.line) == ("d", "a == 3", 3)


def test_a_parameters_cell_that_does_not_parse_names_the_line(tmp_path):
    nb = notebook(new_markdown_cell("# t"), params("a = 1\nb = [1,\nc = 2"))
    with pytest.raises(ConfigError) as caught:
        parameters(nb, tmp_path / "nb.ipynb")
    assert f"{tmp_path / 'nb.ipynb'}: the parameters cell (cell 2) does not parse" \
        in caught.value.message
    assert "line 2" in caught.value.message
