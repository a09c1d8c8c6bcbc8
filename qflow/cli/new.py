"""``qflow new``: add a workflow to the project."""

from __future__ import annotations

from typing import Annotated

import typer


def new(
    workflow: Annotated[str, typer.Option("-w", "--workflow", help="Name of the workflow "
                                          "(a Python identifier).")],
    notebook: Annotated[bool, typer.Option("--notebook", help="A notebook workflow "
                                           "(workflow.ipynb, run with papermill).")] = False,
) -> None:
    """Create a new workflow: workflows/NAME/workflow.py and config.yaml, ready to run."""
    from qflow.project.scaffold import new_workflow
    from qflow.project.workflows import project_root

    root = project_root()
    folder = new_workflow(root, workflow, notebook=notebook)
    typer.echo(f"Created workflow {workflow} in {folder}")
    typer.echo(f"  qflow run -w {workflow}")
