"""``qflow run``: compute a workflow of the project."""

from __future__ import annotations

from typing import Annotated

import typer


def run(
    workflow: Annotated[str, typer.Option("-w", "--workflow", help="The workflow to run.")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Hydra-style overrides: parameters.alpha=0.3 tracker=file inputs.n=10.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every step.")] = False,
) -> None:
    """Run a workflow: every step runs or comes from the cache, and the run is recorded."""
    from qflow.cli.workflows import project_root, run_workflow, workflow_dir

    root = project_root()
    state = run_workflow(root, workflow_dir(root, workflow), list(overrides or []),
                         cache=not no_cache)
    typer.echo(f"run_id: {state.run_id}")
    typer.echo(f"result: {state.result!r}")
