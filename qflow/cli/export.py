"""``qflow export``: turn a notebook of step cells into a workflow of the project."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    notebook: Annotated[Path, typer.Argument(help="The notebook to export.")],
    workflow: Annotated[str, typer.Option("-w", "--workflow", help="Name of the new workflow.")],
    to: Annotated[str, typer.Option("--to", help="`ipynb` (default), or `py` to also write "
                                    "workflow.py in the class DSL.")] = "ipynb",
) -> None:
    """Export a notebook as a workflow: workflows/NAME/workflow.ipynb and config.yaml."""
    from qflow.errors import ConfigError
    from qflow.project.export import export as export_notebook
    from qflow.project.workflows import project_root

    if to not in ("ipynb", "py"):
        raise ConfigError(f"Unknown --to {to!r}: use ipynb or py.")
    root = project_root()
    folder = export_notebook(root, notebook.resolve(), workflow, to_py=to == "py")
    typer.echo(f"Exported {notebook} to {folder}")
    typer.echo(f"  qflow run -w {workflow}")
