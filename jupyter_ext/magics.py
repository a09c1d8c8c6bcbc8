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
import os
import shlex
import time
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from jupyter_ext.cells import CellRunner, StepCellFailed, notebook_path, replay, show_step_error
from jupyter_ext.widgets import LiveView, ProgressBars, live_view
from qflow.errors import QFlowError
from qflow.notebook.session import Session, project_observers, session_config
from qflow.runtime.events import Observer, RunState
from qflow.runtime.views import add_view, remove_view

_SESSIONS: dict[int, Session] = {}
USAGE = ("Usage: %qflow graph | status | rerun-stale | runs [WORKFLOW] | "
         "inspect RUN_ID [--tracker NAME] | watch RUN_ID | load RUN_ID [STEP ...] | "
         "resume RUN_ID")
STEP_USAGE = ("Usage: %%qflow_step NAME [--inputs a,b] [--outputs c,d] [--no-cache]\n"
              "NAME names the step (a Python identifier); the cell's inputs and outputs are found "
              "from its code, --inputs/--outputs set them instead, --no-cache always runs it.")


def _names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [n.strip() for n in value.split(",") if n.strip()]
    bad = [n for n in names if not n.isidentifier()]
    if bad:
        raise UsageError(f"Not a variable name: {bad[0]!r} (give names separated by commas).")
    return names


def session_of(shell: Any) -> Session:
    """The notebook session of ``shell`` (made on first use, with the project's settings)."""
    session = _SESSIONS.get(id(shell))
    if session is None:
        try:
            config = session_config(os.environ.get("QFLOW_ROOT") or None)
        except QFlowError as exc:
            raise UsageError(exc.message + (f" {exc.hint}" if exc.hint else "")) from None
        name = os.environ.get("QFLOW_WORKFLOW") or \
            Path(os.environ.get("JPY_SESSION_NAME") or "notebook").stem or "notebook"
        session = Session(shell.user_ns, config.paths,
                          observers=lambda s: project_observers(s, config),
                          hidden=set(getattr(shell, "user_ns_hidden", {})),
                          run_id=os.environ.get("QFLOW_RUN_ID"), workflow=name,
                          headless=bool(os.environ.get("QFLOW_EVENTS")))
        session.add_view(ProgressBars())
        session.add_view(Banners(shell))
        _SESSIONS[id(shell)] = session
    return session


class Banners(Observer):
    """Each step cell's status line (``[qflow] fit: ran in 1.2 s``), kept up to date: when an
    upstream cell changes, the line of a cell whose output is now out of date says so."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.handles: dict[str, Any] = {}
        self.shown: dict[str, str] = {}

    def show(self, name: str, text: str) -> None:
        """Show ``text`` as the status line of step ``name`` (in the running cell)."""
        from IPython.display import display

        self.shown[name] = "current"
        self.handles[name] = display(_Banner(text), display_id=True)

    def note(self, name: str, text: str) -> None:
        """Replace the status line of step ``name`` where it was shown."""
        handle = self.handles.get(name)
        if handle is not None:
            handle.update(_Banner(text))

    def graph_changed(self, *, run: RunState, **_: Any) -> None:
        for name, node in run.nodes.items():
            if node.status == "stale" and self.shown.get(name) == "current":
                self.shown[name] = "stale"
                self.note(name, f"{name}: out of date — a step it reads changed since this ran. "
                                 "Run this cell again, or %qflow rerun-stale.")


class _Banner:
    def __init__(self, text: str) -> None:
        self.text = f"[qflow] {text}"

    def __repr__(self) -> str:
        return self.text

    def _repr_html_(self) -> str:
        return f"<pre class='qflow-banner'>{html.escape(self.text)}</pre>"


@magics_class
class QFlowMagics(Magics):
    """QFlow's magics; one :class:`Session` per shell."""

    @property
    def session(self) -> Session:
        """This shell's notebook session."""
        return session_of(self.shell)

    @magic_arguments()
    @argument("name", nargs="?", help="The step's name (a Python identifier).")
    @argument("--inputs", default=None, help="Comma-separated input names (instead of inferred).")
    @argument("--outputs", default=None, help="Comma-separated output names (instead of inferred).")
    @argument("--no-cache", action="store_true", help="Always run the cell; store nothing.")
    @cell_magic
    def qflow_step(self, line: str, cell: str) -> Any:
        """Run the cell as a QFlow step: cached by its code, inputs and the files it reads."""
        args = parse_argstring(self.qflow_step, line)
        if not args.name:
            print(STEP_USAGE)
            return None
        if not args.name.isidentifier():
            raise UsageError(f"Invalid step name {args.name!r}: use a Python identifier.\n"
                             + STEP_USAGE)
        return self.run_step(args.name, cell, line=line, inputs=_names(args.inputs),
                             outputs=_names(args.outputs), cache=not args.no_cache)

    def run_step(self, name: str, cell: str, *, line: str | None = None, **options: Any) -> Any:
        """Run the step cell ``name`` and show its status line (and its replayed output)."""
        session, shell = self.session, self.shell
        banners = next(v for v in session.views if isinstance(v, Banners))
        number = _cell_number(shell)
        label = f"In [{number}]"
        runner = CellRunner(shell, f"%%qflow_step {line if line is not None else name}\n{cell}",
                            number, missing=lambda n: session.missing_name(n, notebook_path()))
        try:
            outcome = session.step(name, shell.transform_cell(cell), runner, source=cell,
                                   cell=label, cell_id=_cell_id(shell), **options)
        except QFlowError as exc:
            raise UsageError(exc.message + (f" {exc.hint}" if exc.hint else "")) from None
        banners.show(name, outcome.message)
        if outcome.replay:
            replay(shell, outcome.replay)
        return outcome.value

    @line_magic
    def qflow(self, line: str) -> Any:
        """``%qflow graph | status | rerun-stale | runs [WORKFLOW] | inspect RUN_ID |
        watch RUN_ID``."""
        words = shlex.split(line)
        if not words:
            raise UsageError(USAGE)
        command, rest = words[0], words[1:]
        if command == "graph":
            # a picture of the session's graph, redrawn in place (by its display id) as
            # later cells run: no widget, so a saved notebook keeps it as it last was; the
            # bars show in the step cells
            view = LiveView(live=False, bars=False)
            view.start(self.session.run)
            view.show()
            self.session.add_view(view)
            return None
        if command == "status":
            for step in self.session.steps.values():
                print(f"{step.name:20} {step.status:8} {step.cell:10} {', '.join(step.outputs)}")
            return None
        if command == "rerun-stale":
            return self._rerun_stale()
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
            return _view(self.session, rest[0], tracker)  # shown by show_run (load())
        if command in ("load", "resume"):
            if not rest or (command == "resume" and len(rest) != 1):
                raise UsageError("Usage: %qflow load RUN_ID [STEP ...] | %qflow resume RUN_ID "
                                 "(`%qflow runs` lists the runs)")
            return self._load(rest[0], rest[1:] or None, resume=command == "resume")
        raise UsageError(f"Unknown %qflow command {command!r}. {USAGE}")

    def _load(self, run_id: str, steps: list[str] | None, *, resume: bool) -> None:
        """Put a past run's outputs into the namespace as its steps' outputs; with ``resume``,
        the steps that did not finish are marked stale, to run again."""
        from qflow import api
        from qflow.runtime.record import find_record, node_entries

        session = self.session
        try:
            outputs = api.load_run(run_id, steps, root=session.paths.root)
            nodes = node_entries(session.paths.runs, find_record(session.paths.runs, run_id))
        except QFlowError as exc:
            raise UsageError(exc.message + (f" {exc.hint}" if exc.hint else "")) from None
        values = {name: outputs[name] for name in outputs}  # numpy arrays stay memory-mapped
        sources = {name: (outputs.slot(name).node, outputs.slot(name).key) for name in outputs}
        unfinished = [nid for nid, node in nodes.items() if node.get("kind") != "input"
                      and node.get("status") not in ("ran", "cached")] if resume else []
        session.adopt(run_id, values, sources, unfinished)
        print(f"[qflow] loaded {', '.join(values) or 'nothing'} from run {run_id}")
        if unfinished:
            print(f"[qflow] did not finish in that run, now stale: {', '.join(unfinished)}. Fix "
                  "the failing cell and run on from it.")

    def _rerun_stale(self) -> None:
        """Run the stale steps again here, upstream first; each stale cell's status line then
        says where its current output is."""
        session = self.session
        banners = next(v for v in session.views if isinstance(v, Banners))
        here = f"In [{_cell_number(self.shell)}]"
        done = []
        unknown = [s.name for s in session.stale() if not s.source]
        while stale := [s for s in session.stale() if s.source]:
            step = stale[0]
            print(f"── {step.name} ({step.cell}) ──")
            cell_id, step.cell_id = step.cell_id, None  # the same cell, run from here
            old = banners.handles.get(step.name)
            self.run_step(step.name, step.source, inputs=step.explicit_inputs,
                          outputs=step.explicit_outputs, cache=step.cache)
            step.cell_id = cell_id
            if old is not None:
                banners.handles[step.name] = old
                banners.note(step.name, f"{step.name}: re-run by %qflow rerun-stale ({here}); "
                                        "its current output is there.")
            done.append(step.name)
        print(f"[qflow] re-ran {', '.join(done)}" if done else "[qflow] nothing is stale"
              if not unknown else "[qflow] nothing re-ran")
        if unknown:
            print(f"[qflow] run these cells yourself ({', '.join(unknown)}): they come from a "
                  "resumed run and have not run in this kernel.")


class _HTML:
    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return "qflow runs table"


def _cell_id(shell: Any) -> str | None:
    """The id of the running cell, when the front end sends it (JupyterLab does)."""
    cell_id, _ = getattr(shell, "_qflow_cell", (None, None))
    return cell_id if isinstance(cell_id, str) else None


def _cell_number(shell: Any) -> int:
    """The running cell's execution count (IPython counts the next cell while one runs)."""
    _, number = getattr(shell, "_qflow_cell", (None, None))
    return number if isinstance(number, int) else shell.execution_count


def _runs_table(session: Session, workflow: str | None) -> _HTML:
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


def _view(session: Session, run_id: str, tracker: str | None) -> Any:
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
    ip.set_custom_exc((StepCellFailed,), show_step_error)
    ip.events.register("pre_run_cell", _remember_cell_id)
    formatter = ip.display_formatter.ipython_display_formatter
    from qflow.api import RunView

    formatter.for_type(RunView, show_run)


def show_run(view: Any) -> None:
    """Display a ``RunView`` (``%qflow inspect``, or a cell ending in ``inspect_run(...)``):
    the inspector's sections as HTML, no widget, so saved notebooks keep it as shown."""
    from jupyter_ext import display
    from jupyter_ext.inspector import static_html

    display.show(None, static_html(view), f"QFlow run {view.run_id} of {view.workflow}: "
                                          f"{view.status}")


def unload(ip: Any) -> None:
    """Remove the magics (IPython has no public way; pop them from the registry)."""
    for kind, name in (("cell", "qflow_step"), ("line", "qflow")):
        ip.magics_manager.magics[kind].pop(name, None)
    ip.set_custom_exc((), None)
    try:
        ip.events.unregister("pre_run_cell", _remember_cell_id)
    except ValueError:
        pass
    remove_view(live_view)
    session = _SESSIONS.pop(id(ip), None)
    if session is not None:
        session.end()


def _remember_cell_id(info: Any) -> None:
    """Keep the running cell's id where :func:`_cell_id` finds it."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:  # the count is already the next cell's when pre_run_cell fires
        shell._qflow_cell = (getattr(info, "cell_id", None), shell.execution_count - 1)
