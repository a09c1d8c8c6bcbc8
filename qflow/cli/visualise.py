"""``qflow visualise``: draw a workflow's graph (built, never run) with Graphviz.

With ``--run-id`` it draws that run's graph as its record keeps it: the settings it ran with,
and each node's status.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

FORMATS = ("svg", "png", "dot")


def visualise(
    workflow: Annotated[str, typer.Option("-w", "--workflow", help="The workflow to draw.")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="File to write "
                      "(default: .qflow/graphs/NAME.FORMAT).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="svg, png or dot.")] = "svg",
    run_id: Annotated[str | None, typer.Option("--run-id", help="Draw this run: its settings, "
                                               "nodes coloured by their status.")] = None,
    overrides: Annotated[list[str] | None, typer.Argument(help="Config overrides, as for run.")] = None,
) -> None:
    """Visualise workflow execution graph: steps, providers, inputs and the artifacts between them."""
    from qflow.config.loader import load_config
    from qflow.config.paths import Paths
    from qflow.errors import ConfigError
    from qflow.graph.build import build
    from qflow.graph.render import PICTURE_LIMIT, render_picture
    from qflow.notebook import read, step_graph
    from qflow.project.workflows import is_notebook_workflow, prepare, project_root, workflow_dir
    from qflow.runtime.record import effective_status, read_record

    if fmt not in FORMATS:
        raise ConfigError(f"Unknown format {fmt!r}; formats: {', '.join(FORMATS)}.")
    root = project_root()
    folder = workflow_dir(root, workflow)
    notebook = is_notebook_workflow(folder)
    if notebook or run_id:  # a run's graph comes from its record, not from today's code
        config, instance, inputs = load_config(root, folder, list(overrides or [])), None, {}
    else:
        config, instance, inputs = prepare(root, folder, list(overrides or []))
    paths = Paths(root, config.settings.paths.data)
    statuses = None
    record = None
    if run_id:
        try:
            record = read_record(paths.runs, run_id)
        except (OSError, ValueError):
            raise ConfigError(f"No run {run_id!r} in {paths.runs}.",
                              hint=f"List the runs with `qflow ps -w {workflow}`.") from None
        if record.get("workflow") != workflow:
            raise ConfigError(f"Run {run_id} is a run of {record.get('workflow')!r}, not {workflow!r}.")
        statuses = {nid: n["status"] for nid, n in record["nodes"].items()}
        if effective_status(record) == "crashed":
            statuses = {k: ("crashed" if v in ("pending", "running") else v) for k, v in statuses.items()}
    if record and record.get("graph"):
        graph = record["graph"]
    elif notebook:
        graph = step_graph(read(folder / "workflow.ipynb"), workflow)
    else:
        graph = build(instance, inputs).to_dict()
    target = output or paths.data / "graphs" / f"{workflow}.{fmt}"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        written = render_picture(graph, statuses, target.with_suffix(f".{fmt}"))
    except RuntimeError as exc:
        raise ConfigError(f"Graphviz failed to render the graph: {exc}") from None
    if written.suffix != f".{fmt}" and len(graph["nodes"]) > PICTURE_LIMIT:
        typer.echo(f"The graph has {len(graph['nodes'])} nodes, too many to lay out (over "
                   f"{PICTURE_LIMIT}), so it is written as DOT.", err=True)
    elif written.suffix != f".{fmt}":
        typer.echo("Graphviz's `dot` program is not installed, so the graph is written as DOT. "
                   "Install graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew "
                   "install graphviz) to get SVG or PNG.", err=True)
    typer.echo(f"Wrote {written}")
