"""A notebook as QFlow reads it: its ``parameters`` cell and its ``%%qflow_step`` cells.

Reading needs ``nbformat`` (imported here, when a notebook is read); nothing runs.
"""

from __future__ import annotations

import ast
import re
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


@dataclass
class Parameter:
    """One assignment of the ``parameters`` cell: a literal ``value``, or ``computed`` code."""

    name: str
    value: Any
    line: int          # 1-based, in the cell
    computed: bool     # True: ``value`` is the expression's source, not a value


def _without_ipython(source: str) -> str:
    """The cell with IPython-only lines (``%magic``, ``!shell``) blanked, lines kept in place."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.splitlines())


def parameter_list(nb: Any, path: Path | None = None) -> list[Parameter]:
    """What the ``parameters`` cell assigns, in order; a ConfigError naming the line if it
    does not parse."""
    cell = parameters_cell(nb)
    if cell is None:
        return []
    try:
        tree = ast.parse(_without_ipython(cell.source))
    except SyntaxError as exc:
        index = nb.cells.index(cell) + 1
        text = (exc.text or "").strip()
        raise ConfigError(f"{path or 'The notebook'}: the parameters cell (cell {index}) does not "
                          f"parse: {exc.msg} at line {exc.lineno}"
                          + (f": `{text}`" if text else "") + ".",
                          hint="Fix that line in the notebook: the parameters cell must be "
                               "Python assignments such as `alpha = 0.1`.") from None
    out: list[Parameter] = []
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if not isinstance(target, ast.Name):
                    continue
                try:
                    out.append(Parameter(target.id, ast.literal_eval(node.value), node.lineno,
                                         False))
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    out.append(Parameter(target.id, ast.unparse(node.value), node.lineno, True))
    return out


def parameters(nb: Any, path: Path | None = None) -> dict[str, Any]:
    """The names and literal values the ``parameters`` cell assigns (computed ones left out)."""
    return {p.name: p.value for p in parameter_list(nb, path) if not p.computed}


def parameter_names(nb: Any, path: Path | None = None) -> list[str]:
    """Every name the ``parameters`` cell assigns, literal or computed."""
    return list(dict.fromkeys(p.name for p in parameter_list(nb, path)))


def typed(raw: str) -> Any:
    """A ``-p KEY=VALUE`` value typed as papermill types it: ``True``, ``False``, ``None``,
    else an int, else a float, else the string itself (``1e-4`` is 0.0001, ``012`` is 12,
    ``yes`` and ``2019-01-01`` stay strings)."""
    if raw in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[raw]
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def source_index(nb: Any, executed: int, injected: bool) -> int | None:
    """The index in ``nb`` (the notebook as saved) of cell ``executed`` of papermill's run.

    With parameters (``injected``), papermill replaces the first ``injected-parameters`` cell,
    else inserts one after the ``parameters`` cell (or first), so its indices are shifted from
    the user's after that point. ``None`` for the injected cell itself.
    """
    tags = [c.get("metadata", {}).get("tags", []) for c in nb.cells]
    at = next((i for i, t in enumerate(tags) if "injected-parameters" in t), None)
    if not injected or at is not None:
        if injected and executed == at:
            return None
        return executed if 0 <= executed < len(nb.cells) else None
    at = next((i + 1 for i, t in enumerate(tags) if "parameters" in t), 0)
    if executed == at:
        return None
    position = executed if executed < at else executed - 1
    return position if 0 <= position < len(nb.cells) else None


_FRAME = re.compile(r"Cell In\[(\d+)\], line (\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def failing_line(traceback: list[str], exec_count: int | None, step: bool) -> int | None:
    """The line of the failing cell that raised, from an IPython traceback (1-based, in the
    cell as written: a step cell's ``%%qflow_step`` line is line 1)."""
    frames = [(int(m.group(1)), int(m.group(2)))
              for entry in traceback for m in _FRAME.finditer(_ANSI.sub("", entry))]
    if step:  # the magic compiles the body as the next input; its line 1 is the cell's line 2
        body = [line for number, line in frames if exec_count is not None and number > exec_count]
        if body:
            return body[-1] + 1
    own = [line for number, line in frames if number == exec_count]
    return own[-1] if own else None


def cell_error(cell: Any) -> tuple[str, str]:
    """The error name and text a failed cell shows when the kernel reported no error
    (IPython prints a ``UsageError`` to stderr)."""
    text = "".join(o.get("text", "") for o in cell.get("outputs", [])
                   if o.get("output_type") == "stream" and o.get("name") == "stderr")
    lines = [line for line in _ANSI.sub("", text).splitlines() if line.strip()]
    if not lines:
        return "CellExecutionError", "the cell failed without an error message"
    name, sep, rest = lines[-1].partition(": ")
    return (name, rest) if sep and name.isidentifier() else ("Error", lines[-1])


def working_folder(nb: Any, path: Path) -> Path:
    """Where a kernel runs the notebook at ``path``: the folder ``qflow export`` noted in its
    metadata (``qflow.cwd``, relative to the notebook), else the notebook's own folder."""
    noted = nb.metadata.get("qflow", {}).get("cwd")
    if not noted:
        return path.parent
    folder = (path.parent / noted).resolve()
    if not folder.is_dir():
        raise ConfigError(f"{path}: the folder its metadata `qflow.cwd` names ({noted!r}, "
                          f"{folder}) does not exist; the notebook's relative paths start there.",
                          hint="Restore that folder, or edit `metadata.qflow.cwd` in the notebook "
                               "(Edit > Notebook metadata in JupyterLab) to the folder its "
                               "relative paths start from.")
    return folder


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
    earlier step cell bound, labelled with the names it reads."""
    from qflow.notebook.cells import analyse

    producers: dict[str, str] = {}
    nodes = []
    for step in step_cells(nb):
        try:
            found = analyse(step.code)
        except SyntaxError:
            continue
        reads: dict[str, list[str]] = {}
        for n in sorted(found.refs):
            if n in producers:
                reads.setdefault(producers[n], []).append(n)
        upstream = sorted(reads)
        nodes.append({"id": step.name, "kind": "step", "title": step.name, "upstream": upstream,
                      "inputs": [{"from": up, "label": ", ".join(reads[up])} for up in upstream]})
        producers.update({n: step.name for n in found.outputs})
    return {"name": name, "nodes": nodes}
