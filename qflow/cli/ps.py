"""``qflow ps``: the runs of the project (or of one workflow), newest first, from the run
records alone."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer

from qflow.runtime.record import effective_status


def _row(record: dict[str, Any]) -> dict[str, Any]:
    counts = record.get("counts") or {}
    return {
        "run_id": record["run_id"],
        "workflow": record.get("workflow"),
        "status": effective_status(record),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["started"])),
        "duration": record.get("duration"),
        "ran": counts.get("ran", 0),
        "cached": counts.get("cached", 0),
        "result": record.get("result"),
        "metrics": record.get("metrics") or {},
        "failed_step": record.get("failed_step"),
    }


def _table(rows: list[dict[str, Any]], workflows: bool = False) -> str:
    header = ["RUN ID", *(["WORKFLOW"] if workflows else []), "STATUS", "STARTED", "DURATION", "RAN", "CACHED", "RESULT", "METRICS"]
    lines = [header]
    for r in rows:
        duration = "-" if r["duration"] is None else f"{r['duration']:.2f}s"
        result = "-" if r["result"] is None else repr(r["result"])
        if len(result) > 24:
            result = result[:21] + "..."
        metrics = " ".join(f"{k}={v:.4g}" if isinstance(v, (int, float)) else f"{k}={v}"
                           for k, v in r["metrics"].items())
        status = r["status"] + (f" ({r['failed_step']})" if r["failed_step"] else "")
        lines.append([r["run_id"], *([str(r["workflow"])] if workflows else []), status, r["started"], duration, str(r["ran"]),
                      str(r["cached"]), result, metrics or "-"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


def ps(
    workflow: Annotated[str | None, typer.Option(
        "-w", "--workflow", help="Only this workflow's runs (a notebook's runs go by its name).")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many runs.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List runs, newest first: id, status, start, duration, steps ran/cached, result, metrics.

    Without -w, every run of the project (or, outside a project, of the working folder),
    `qflow run --notebook` runs included.
    """
    from qflow.config.paths import Paths, find_project_root
    from qflow.project.workflows import workflow_dir
    from qflow.runtime.record import list_records

    paths = Paths.discover()
    records = list_records(paths.runs, workflow)
    root = find_project_root()
    if workflow is not None and not records and root is not None:
        workflow_dir(root, workflow)  # an unknown name is an error that lists the workflows
    rows = [_row(r) for r in records[:limit]]
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
    elif not rows and workflow is not None:
        typer.echo(f"No runs of {workflow} yet: `qflow run -w {workflow}`.")
    elif not rows:
        typer.echo(f"No runs in {paths.runs} yet: `qflow run -w NAME` or "
                   "`qflow run --notebook PATH`.")
    else:
        typer.echo(_table(rows, workflows=workflow is None))
