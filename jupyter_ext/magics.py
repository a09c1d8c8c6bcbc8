"""The ``%%qflow_step`` cell magic and the ``%qflow`` line magic.

``%%qflow_step NAME [--inputs a,b] [--outputs c,d] [--no-cache]`` makes the cell a step: its
inputs and outputs are inferred from its code (the options override them), its outputs are
cached under its key, and a cell whose key is stored loads them instead of running.

``%qflow graph`` shows the live graph of the notebook's steps; ``%qflow status`` lists them;
``%qflow rerun-stale`` runs the stale ones again; ``%qflow runs`` lists the project's runs;
``%qflow inspect RUN_ID [--tracker NAME]`` opens the run inspector; ``%qflow watch RUN_ID``
follows a run started elsewhere live (``jupyter_ext.watch``).
"""

from __future__ import annotations

import html
import shlex
import time
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from jupyter_ext.session import NotebookSession
from jupyter_ext.widgets import GraphView, ProgressBars, live_view
from qflow.runtime.views import add_view, remove_view

_SESSIONS: dict[int, NotebookSession] = {}
USAGE = ("Usage: %qflow graph | status | rerun-stale | runs [WORKFLOW] | "
         "inspect RUN_ID [--tracker NAME] | watch RUN_ID")


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise UsageError(f"Not a variable name: {bad[0]!r} (give names separated by commas).")
    return names


@magics_class
class QFlowMagics(Magics):
    """QFlow's magics; one :class:`NotebookSession` per shell."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.session = _SESSIONS.setdefault(id(shell), NotebookSession(shell))
        if not self.session.reporters:
            self.session.reporters.append(ProgressBars())

    @magic_arguments()
    @argument("name", help="The step's name (a Python identifier).")
    @argument("--inputs", default=None, help="Comma-separated input names (instead of inferred).")
    @argument("--outputs", default=None, help="Comma-separated output names (instead of inferred).")
    @argument("--no-cache", action="store_true", help="Always run the cell; store nothing.")
    @cell_magic
    def qflow_step(self, line: str, cell: str) -> Any:
        """Run the cell as a QFlow step: cached by its code and inputs."""
        args = parse_argstring(self.qflow_step, line)
        if not args.name.isidentifier():
            raise UsageError(f"Invalid step name {args.name!r}: use a Python identifier.")
        return self.session.run(args.name, cell, inputs=_names(args.inputs),
                                outputs=_names(args.outputs), cache=not args.no_cache)

    @line_magic
    def qflow(self, line: str) -> Any:
        """``%qflow graph | status | rerun-stale | runs [WORKFLOW] | inspect RUN_ID |
        watch RUN_ID``."""
        words = shlex.split(line)
        if not words:
            raise UsageError(USAGE)
        command, rest = words[0], words[1:]
        if command == "graph":
            from IPython.display import display

            display(GraphView(self.session).widget)
            return None
        if command == "status":
            for step in self.session.steps.values():
                print(f"{step.name:20} {step.status:8} {', '.join(step.outputs)}")
            return None
        if command == "rerun-stale":
            done = self.session.rerun_stale()
            print(f"[qflow] re-ran {', '.join(done)}" if done else "[qflow] nothing is stale")
            return None
        if command == "runs":
            return _runs_table(self.session, rest[0] if rest else None)
        if command == "watch":
            if len(rest) != 1:
                raise UsageError("Usage: %qflow watch RUN_ID (`%qflow runs` lists the runs)")
            from jupyter_ext.watch import watch

            watch(self.session.paths.runs, rest[0])
            return None
        if command == "inspect":
            if not rest:
                raise UsageError("Usage: %qflow inspect RUN_ID [--tracker NAME]")
            tracker = rest[rest.index("--tracker") + 1] if "--tracker" in rest else None
            from jupyter_ext.inspector import inspector

            return inspector(_view(self.session, rest[0], tracker))
        raise UsageError(f"Unknown %qflow command {command!r}. {USAGE}")


class _HTML:
    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return "qflow runs table"


def _runs_table(session: NotebookSession, workflow: str | None) -> _HTML:
    from qflow.runtime.record import effective_status, list_records

    rows = []
    for record in list_records(session.paths.runs, workflow)[:30]:
        counts = record.get("counts") or {}
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record["started"]))
        metrics = ", ".join(f"{k}={v:.4g}" for k, v in (record.get("metrics") or {}).items())
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            record["run_id"], record.get("workflow"), effective_status(record), started,
            counts.get("ran", 0), counts.get("cached", 0), repr(record.get("result")), metrics))
            + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("run id", "workflow", "status", "started", "ran",
                                             "cached", "result", "metrics"))
    return _HTML(f"<table class='qflow-runs'><tr>{head}</tr>{''.join(rows)}</table>")


def _view(session: NotebookSession, run_id: str, tracker: str | None) -> Any:
    """The run as a ``RunView``: from the tracker if it has it, else from its run record."""
    from qflow import api
    from qflow.errors import QFlowError
    from qflow.runtime.record import read_record
    from qflow.trackers.base import RunData

    if tracker is not None:
        try:
            return api.inspect_run(tracker=tracker, run_id=run_id, root=session.paths.root)
        except QFlowError as exc:
            raise UsageError(str(exc)) from None
    try:
        record = read_record(session.paths.runs, run_id)
    except OSError:
        raise UsageError(f"No run {run_id!r} in {session.paths.runs}.") from None
    data = RunData(run_id=run_id, status=record.get("status", ""), record=record)
    for name in ("mlflow", "file"):
        try:
            return api.inspect_run(tracker=name, run_id=run_id, root=session.paths.root)
        except Exception:  # the run is not in that tracker (or it is not installed)
            continue
    return api.RunView.from_data(data, "record")


def load(ip: Any) -> None:
    """Register the magics, show ``RunView`` objects as the inspector, and every run as a
    live view."""
    ip.register_magics(QFlowMagics)
    add_view(live_view)
    formatter = ip.display_formatter.ipython_display_formatter

    def show(view: Any) -> None:
        from IPython.display import display

        from jupyter_ext.inspector import inspector

        display(inspector(view))

    from qflow.api import RunView

    formatter.for_type(RunView, show)


def unload(ip: Any) -> None:
    """Remove the magics (IPython has no public way; pop them from the registry)."""
    for kind, name in (("cell", "qflow_step"), ("line", "qflow")):
        ip.magics_manager.magics[kind].pop(name, None)
    _SESSIONS.pop(id(ip), None)
    remove_view(live_view)
