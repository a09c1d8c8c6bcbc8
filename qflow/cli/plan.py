"""``qflow plan``: what a run of a workflow would do — which steps it would compute and why,
which come from the cache, and about how long it would take — running nothing."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def plan(
    workflow: Annotated[str, typer.Option("-w", "--workflow", help="The workflow to plan.")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Overrides, as for `qflow run`: parameters.alpha=0.3 inputs.n=10.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Plan a run with caching off.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Say which steps `qflow run` would run and why, and which come from the cache.

    The reasons are the ones the run would record; the time is the median of each step's
    past computations. Nothing runs, no run is recorded and the store is only read.
    """
    from qflow.project.workflows import project_root, workflow_dir
    from qflow.workflows import plan_workflow

    root = project_root()
    result = plan_workflow(root, workflow_dir(root, workflow), list(overrides or []),
                           cache=not no_cache)
    typer.echo(json.dumps(result.to_dict(), indent=1, default=repr) if as_json
               else result.describe())
