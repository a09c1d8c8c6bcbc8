"""A notebook as QFlow reads it: its ``parameters`` cell and its ``%%qflow_step`` cells.

Reading needs ``nbformat`` (imported here, when a notebook is read); nothing runs.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError

STEP_MAGIC = "%%qflow_step"


@dataclass
class StepSource:
    """A ``%%qflow_step`` cell: its name, the options after it, and its code."""

    index: int
    name: str
    options: str
    code: str


def read(path: Path) -> Any:
    """The notebook at ``path`` (``nbformat`` v4), validated; a clear error if it is not one."""
    import nbformat

    try:
        nb = nbformat.read(str(path), as_version=4)
        nbformat.validate(nb)
    except FileNotFoundError:
        raise ConfigError(f"The notebook {path} does not exist.") from None
    except (nbformat.reader.NotJSONError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path} is not a valid notebook: {first[:300]}.",
                          hint="Open it in Jupyter and save it again, or restore it.") from None
    except nbformat.ValidationError as exc:
        raise ConfigError(f"{path} is not a valid notebook: {exc.message}.") from None
    return nb


def parameters_cell(nb: Any) -> Any | None:
    """The code cell tagged ``parameters`` (papermill's convention), if any."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def parameters(nb: Any, path: Path | None = None) -> dict[str, Any]:
    """The names and literal values the ``parameters`` cell assigns."""
    cell = parameters_cell(nb)
    if cell is None:
        return {}
    try:
        tree = ast.parse(cell.source)
    except SyntaxError as exc:
        raise ConfigError(f"{path or 'The notebook'}: the parameters cell does not parse: "
                          f"{exc.msg} (line {exc.lineno}).") from None
    out: dict[str, Any] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and node.value is not None:
                    try:
                        out[target.id] = ast.literal_eval(node.value)
                    except ValueError:
                        out[target.id] = ast.unparse(node.value)
    return out


def step_cells(nb: Any) -> list[StepSource]:
    """The notebook's ``%%qflow_step`` cells, in order."""
    found = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not cell.source.startswith(STEP_MAGIC):
            continue
        first, _, code = cell.source.partition("\n")
        words = first[len(STEP_MAGIC):].split()
        if not words:
            continue
        found.append(StepSource(index, words[0], " ".join(words[1:]), code))
    return found


def step_of_cell(nb: Any, index: int) -> str | None:
    """The step name of cell ``index``, if it is a ``%%qflow_step`` cell."""
    for step in step_cells(nb):
        if step.index == index:
            return step.name
    return None


def step_graph(nb: Any, name: str) -> dict[str, Any]:
    """The step cells as a graph (the run record's shape): an edge where a cell reads what an
    earlier step cell bound."""
    from qflow.cells import analyse

    producers: dict[str, str] = {}
    nodes = []
    for step in step_cells(nb):
        try:
            found = analyse(step.code)
        except SyntaxError:
            continue
        upstream = sorted({producers[n] for n in found.refs if n in producers})
        nodes.append({"id": step.name, "kind": "step", "title": step.name, "upstream": upstream})
        producers.update({n: step.name for n in found.outputs})
    return {"name": name, "nodes": nodes}
