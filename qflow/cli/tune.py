"""``qflow tune``: search a workflow's parameters with Optuna, reusing the step cache."""

from __future__ import annotations

from typing import Annotated

import typer


def tune(
    workflow: Annotated[str, typer.Option("-w", "--workflow", help="The workflow to tune.")],
    overrides: Annotated[list[str] | None, typer.Argument(
        help="Config overrides, as for run (e.g. parameters.epochs=5 tune.direction=minimize).")] = None,
    n_trials: Annotated[int | None, typer.Option("--n-trials", min=1, help="Finished trials the "
                        "study should hold (default: tune.n_trials).")] = None,
    n_jobs: Annotated[int, typer.Option("--n-jobs", min=1, help="Trials run in parallel.")] = 1,
) -> None:
    """Tune hyperparameters with Optuna; the study resumes where a previous command stopped."""
    from qflow.project.workflows import project_root, workflow_dir
    from qflow.workflows import tune_workflow

    root = project_root()
    tune_workflow(root, workflow_dir(root, workflow), list(overrides or []), n_trials=n_trials,
                  n_jobs=n_jobs)
