"""``qflow tune``: tune a workflow's parameters (Optuna)."""

from __future__ import annotations

from typing import Annotated

import typer

from qflow.errors import ConfigError


def tune(
    workflow: Annotated[str, typer.Option("-w", "--workflow", help="The workflow to tune.")],
) -> None:
    """Tune hyperparameters of a workflow with Optuna (not in this version yet)."""
    raise ConfigError("Tuning is not available in this version of QFlow yet.",
                      hint=f"Run the workflow with `qflow run -w {workflow}` and chosen parameters.")
