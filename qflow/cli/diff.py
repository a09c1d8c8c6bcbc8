"""``qflow diff``: two runs side by side, from their records."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def diff(
    run_a: Annotated[str, typer.Argument(help="A run id (`qflow ps` lists them).")],
    run_b: Annotated[str, typer.Argument(help="Another run id.")],
    every: Annotated[bool, typer.Option("--all", help="Show what is the same too.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Compare two runs: parameters, step settings, code and library versions, metrics and
    artifacts; only what differs unless --all.

    A step's code row names the functions and helpers that changed; an artifact row differs
    when the step's output has another key (the same key is the same artifact).
    """
    from qflow.config.loader import project_paths
    from qflow.runtime.diff import diff_runs
    from qflow.runtime.record import find_record

    runs = project_paths().runs
    result = diff_runs(find_record(runs, run_a), find_record(runs, run_b))
    typer.echo(json.dumps(result.to_dict(every=every), indent=1, default=repr) if as_json
               else result.describe(every=every))
