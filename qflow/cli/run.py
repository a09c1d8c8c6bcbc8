"""``qflow run``: compute a workflow of the project, or any notebook."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def run(
    workflow: Annotated[str | None, typer.Option("-w", "--workflow", help="The workflow to run.")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Hydra-style overrides: parameters.alpha=0.3 tracker=file inputs.n=10.")] = None,
    notebook: Annotated[Path | None, typer.Option("--notebook", "-n", help="Run this notebook "
                        "headlessly (papermill) instead of a workflow.")] = None,
    parameter: Annotated[list[str] | None, typer.Option(
        "-p", "--parameter", help="With --notebook: a parameter as KEY=VALUE (repeatable).")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Recompute every step.")] = False,
) -> None:
    """Run a workflow: every step runs or comes from the cache, and the run is recorded."""
    from qflow.errors import ConfigError
    from qflow.project.workflows import project_root, workflow_dir
    from qflow.workflows import run_notebook, run_workflow

    if notebook is not None:
        state = run_notebook(notebook, _parameters(list(parameter or [])))
    elif workflow is None:
        raise ConfigError("Say what to run: -w WORKFLOW, or --notebook PATH.")
    else:
        root = project_root()
        state = run_workflow(root, workflow_dir(root, workflow), list(overrides or []),
                             cache=not no_cache)
    typer.echo(f"run_id: {state.run_id}")
    typer.echo(f"result: {state.result!r}")


def _parameters(items: list[str]) -> dict[str, Any]:
    """``-p KEY=VALUE`` options as notebook parameters."""
    from qflow.config.loader import parse_value
    from qflow.errors import ConfigError

    values = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.isidentifier():
            raise ConfigError(f"Cannot read the parameter {item!r}.", hint="Write -p KEY=VALUE.")
        values[key] = parse_value(raw)
    return values
