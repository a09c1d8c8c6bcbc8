"""``qflow export``: a notebook of ``%%qflow_step`` cells becomes a workflow of the project.

``workflows/NAME/workflow.ipynb`` is the notebook with outputs cleared and a ``parameters``
cell; ``config.yaml``'s ``parameters`` are that cell's values. With ``to_py``,
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

from qflow.cells import analyse
from qflow.errors import ConfigError
from qflow.notebook import STEP_MAGIC, parameters, parameters_cell, read, step_cells
from qflow.project.names import check_name


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Step"


def clean(nb: Any) -> Any:
    """Outputs cleared, papermill's injected cells dropped, a ``parameters`` cell present."""
    import nbformat

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
    if step_cells(nb) and not any("%load_ext qflow" in c.source for c in nb.cells):
        nb.cells.insert(0, nbformat.v4.new_code_cell("%load_ext qflow"))
    nbformat.validate(nb)
    return nb


def to_python(nb: Any, origin: str) -> str:
    """The class-DSL module that computes what the notebook's step cells compute."""
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
             "from __future__ import annotations", "", "from typing import Any", "", "import qflow",
             ""]
    for source in plain:
        lines += ["", *[("# " + line if line.lstrip().startswith(("%", "!")) else line)
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
        lines += [("        " + line) if line.strip() else "" for line in body.splitlines()]
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
    nb = clean(read(notebook))
    python = to_python(nb, notebook.stem) if to_py else None
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
