"""``qflow export``: a notebook of ``%%qflow_step`` cells becomes a workflow of the project.

``workflows/NAME/workflow.ipynb`` is the notebook with outputs cleared and a ``parameters``
cell; ``config.yaml``'s ``parameters`` are that cell's literal values (a computed line such as
``d = a == 3`` moves to a cell of its own right after, so it stays computed from the injected
values). Its metadata ``qflow.cwd`` names the folder it was exported from, relative to the
workflow folder: kernels run there, so the notebook's relative paths still hold. With ``to_py``,
``workflow.py`` is the same computation in the class DSL: one ``@qflow.step`` per step cell
(the parameters it reads become its settings, the outputs later cells read its outputs), and a
workflow whose result is the last step cell's last expression.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError
from qflow.notebook import (
    STEP_MAGIC,
    parameter_list,
    parameters,
    parameters_cell,
    read,
    step_cells,
)
from qflow.notebook.cells import analyse
from qflow.project.names import check_name


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Step"


def _normalise(nb: Any) -> Any:
    """``nb`` upgraded to the current nbformat minor version (cell ids), so cells QFlow adds
    validate beside the old ones."""
    import nbformat

    if nb.nbformat_minor < nbformat.v4.nbformat_minor:
        nb = nbformat.v4.upgrade(nb, from_version=4, from_minor=nb.nbformat_minor)
    return nb


def _split_parameters(nb: Any) -> None:
    """Move what the ``parameters`` cell computes (``d = a == 3``, imports, calls) to a cell
    right after it, so papermill's injected values come before it and it stays computed."""
    import nbformat

    cell = parameters_cell(nb)
    if cell is None:
        return
    literal = {p.line for p in parameter_list(nb) if not p.computed}
    lines = cell.source.splitlines()
    blank = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in lines)
    moved: set[int] = set()
    for node in ast.parse(blank).body:
        simple = (isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
                  and all(isinstance(t, ast.Name)
                          for t in (node.targets if isinstance(node, ast.Assign) else [node.target])))
        if not (simple and node.lineno in literal):
            moved.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    if not moved:
        return
    cell.source = "\n".join(line for n, line in enumerate(lines, 1) if n not in moved).rstrip()
    computed = nbformat.v4.new_code_cell(
        "# computed from the parameters (moved here by `qflow export`)\n"
        + "\n".join(line for n, line in enumerate(lines, 1) if n in moved))
    nb.cells.insert(nb.cells.index(cell) + 1, computed)


def clean(nb: Any) -> Any:
    """Outputs cleared, papermill's injected cells dropped, a ``parameters`` cell present that
    holds only literal values, the current nbformat minor version."""
    import nbformat

    nb = _normalise(nb)
    nb.cells = [c for c in nb.cells
                if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if parameters_cell(nb) is None:
        cell = nbformat.v4.new_code_cell("# parameters")
        cell.metadata["tags"] = ["parameters"]
        at = next((i + 1 for i, c in enumerate(nb.cells) if "%load_ext qflow" in c.source), 0)
        nb.cells.insert(at, cell)
    _split_parameters(nb)
    if step_cells(nb) and not any("%load_ext qflow" in c.source for c in nb.cells):
        nb.cells.insert(0, nbformat.v4.new_code_cell("%load_ext qflow"))
    nbformat.validate(nb)
    return nb


def _has_code(source: str) -> bool:
    """Whether a cell has a statement once its IPython lines are commented out."""
    try:
        return bool(ast.parse("\n".join("" if line.lstrip().startswith(("%", "!")) else line
                                         for line in source.splitlines())).body)
    except SyntaxError:
        return True


def to_python(nb: Any, origin: str, cwd: str = ".") -> str:
    """The class-DSL module that computes what the notebook's step cells compute.

    Its cells run in ``cwd`` (relative to the module's folder), where the notebook's relative
    paths hold.
    """
    params = parameters(nb)
    steps = step_cells(nb)
    if not steps:
        raise ConfigError("The notebook has no %%qflow_step cell to turn into a step.")
    for step in steps:
        for line in step.code.splitlines():
            if line.lstrip().startswith(("%", "!")):
                raise ConfigError(f"Step '{step.name}' (cell {step.index}) uses IPython syntax "
                                  f"(`{line.strip()}`), which a Python file cannot run.",
                                  hint="Rewrite that line in plain Python, or export without --to py.")
    names = [analyse(step.code) for step in steps]
    needed_later = [set().union(*(n.refs for n in names[i + 1:])) for i in range(len(steps))]
    produced: dict[str, str] = {}
    plain = [c.source for c in nb.cells if c.cell_type == "code" and
             not c.source.startswith(STEP_MAGIC) and c is not parameters_cell(nb) and
             c.source.strip() != "%load_ext qflow"]
    lines = [f'"""Workflow exported from the notebook {origin}.ipynb by `qflow export`."""', "",
             "from __future__ import annotations", "", "import contextlib",
             "from pathlib import Path", "from typing import Any", "", "import qflow", "",
             "# the notebook's folder: its relative paths (data files) start there",
             f"_NOTEBOOK_DIR = Path(__file__).resolve().parent / {cwd!r}", ""]
    for source in plain:
        if not _has_code(source):  # only IPython lines: kept as comments
            lines += ["", *("# " + line for line in source.splitlines()), ""]
            continue
        lines += ["", "with contextlib.chdir(_NOTEBOOK_DIR):",
                  *[("    # " + line if line.lstrip().startswith(("%", "!")) else "    " + line)
                    for line in source.splitlines()], ""]
    calls = []
    result = None
    for i, (step, found) in enumerate(zip(steps, names, strict=True)):
        last = i == len(steps) - 1
        inputs = sorted(n for n in found.refs if n in produced)
        settings = sorted(n for n in found.refs if n in params and n not in produced)
        outputs = sorted(n for n in found.outputs if n in needed_later[i])
        body = step.code.rstrip()
        tree = ast.parse(body) if body.strip() else ast.Module(body=[], type_ignores=[])
        if last and tree.body and isinstance(tree.body[-1], ast.Expr):
            expr = tree.body[-1]
            body_lines = body.splitlines()
            head = body_lines[:expr.lineno - 1]
            tail = body_lines[expr.lineno - 1:]
            body = "\n".join(head + [f"_result = {tail[0].strip()}", *tail[1:]])
            outputs, result = ["_result"], "_result"
        cls = _pascal(step.name)
        lines += ["", "@qflow.step", f"class {cls}:", f'    """The `{step.name}` cell."""', ""]
        for setting in settings:
            lines.append(f"    {setting}: {type(params[setting]).__name__} = {params[setting]!r}")
        args = ", ".join(f"{n}: Any" for n in inputs) or "origin: str"
        ret = "None" if not outputs else "Any" if len(outputs) == 1 else \
            f"tuple[{', '.join(['Any'] * len(outputs))}]"
        lines += ["" if settings else "", f"    def apply(self, {args}) -> {ret}:"]
        lines += [f"        {s} = self.{s}" for s in settings]
        lines.append("        with contextlib.chdir(_NOTEBOOK_DIR):")
        lines += [("            " + line) if line.strip() else "" for line in body.splitlines()]
        if not tree.body:
            lines.append("            pass")
        if outputs:
            lines.append(f"        return {', '.join(outputs)}")
        for out in outputs:
            produced[out] = step.name
        call_settings = ", ".join(f"{s}=self.{s}" for s in settings)
        call = f"{cls}({call_settings}).apply({', '.join(inputs) or 'origin'})"
        target = ", ".join(outputs)
        calls.append(f"        {target} = {call}" if outputs else f"        {call}")
    workflow = _pascal(origin) + "Workflow"
    lines += ["", "", "@qflow.workflow", f"class {workflow}:",
              f'    """The notebook {origin}.ipynb as a workflow; fields are its parameters."""', ""]
    for name, value in params.items():
        lines.append(f"    {name}: {type(value).__name__} = {value!r}")
    lines += ["", f"    def run(self, origin: str = {origin!r}) -> Any:", *calls,
              f"        return {result or 'None'}", "", "", 'if __name__ == "__main__":',
              f"    qflow.launch({workflow})", ""]
    text = "\n".join(lines)
    compile(text, f"{origin}.py", "exec")  # generated code must at least be valid Python
    return text


def export(root: Path, notebook: Path, name: str, *, to_py: bool = False) -> Path:
    """Create ``workflows/<name>/`` from ``notebook``; nothing is written on error."""
    import nbformat
    import yaml

    check_name("workflow", name)
    target = root / "workflows" / name
    if target.exists():
        raise ConfigError(f"{target} already exists; QFlow will not overwrite it.",
                          hint="Choose another name, or remove the folder first.")
    original = read(notebook)
    computed = [p for p in parameter_list(original, notebook) if p.computed]
    if to_py and computed:
        first = computed[0]
        raise ConfigError(f"{notebook}: line {first.line} of the parameters cell, "
                          f"`{first.name} = {first.value}`, is computed, and a workflow's "
                          "parameters are values.",
                          hint="Move that line to a cell after the parameters cell (it then runs "
                               "in a step or at import), or export without --to py.")
    cwd = Path(os.path.relpath(notebook.resolve().parent, target.resolve())).as_posix()
    nb = clean(original)
    nb.metadata.setdefault("qflow", {})["cwd"] = cwd
    python = to_python(nb, notebook.stem, cwd) if to_py else None
    config = {"defaults": ["project", "_self_"], "inputs": {}, "parameters": parameters(nb)}
    tmp = target.with_name(f".{name}.qflow-tmp-{os.getpid()}")
    try:
        tmp.mkdir(parents=True)
        nbformat.write(nb, str(tmp / "workflow.ipynb"))
        (tmp / "config.yaml").write_text(
            f"# Exported from {notebook.name}; parameters are its parameters cell.\n"
            + yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False))
        if python is not None:
            (tmp / "workflow.py").write_text(python)
        os.rename(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
