"""``qflow sync``: record the runs waiting for a deferred tracker (MLflow) now, in the
foreground (``qflow.trackers.sync``)."""

from __future__ import annotations

from typing import Annotated

import typer


def sync(
    run_ids: Annotated[list[str] | None, typer.Argument(
        help="Only these runs (default: every run waiting to be synced).")] = None,
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", help="Return at once if another process is syncing, leaving the runs to "
                          "it (by default, wait for it).")] = False,
) -> None:
    """Sync finished runs into their tracker (MLflow records runs after they end).

    Runs are replayed from their event logs; a sync that was interrupted is resumed without
    duplicates. Exits with 1 if a run could not be synced (it stays waiting).
    """
    from qflow.config.loader import project_paths
    from qflow.trackers.sync import markers
    from qflow.trackers.sync import sync as sync_runs

    paths = project_paths()
    wanted = list(run_ids) if run_ids else None
    if wanted:
        known = {m.run_id for m in markers(paths, run_ids=wanted)}
        for run_id in wanted:
            if run_id not in known:
                typer.echo(f"Run {run_id} is not waiting to be synced (already in its tracker, "
                           f"or not a run of {paths.root}).")
    report = sync_runs(paths, wanted, wait=not no_wait, waiting=lambda: typer.echo(
        "Waiting for the sync in progress in another process...", err=True))
    for line in report.summary():
        typer.echo(line)
    for run_id, error in report.failed.items():
        typer.echo(f"Run {run_id} could not be synced: {error}", err=True)
    if report.failed:
        typer.echo("Hint: fix the cause, then `qflow sync` again: the runs wait "
                   f"(markers in {paths.tracker / 'sync'}).", err=True)
        raise typer.Exit(1)
