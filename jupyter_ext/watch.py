"""``%qflow watch RUN_ID``: follow a run started elsewhere in the notebook's live view.

A run started in a terminal (``qflow run``), by papermill or on a Dask cluster logs its
events to ``<runs>/<run_id>/events.jsonl`` (:mod:`qflow.runtime.stream`). Watching tails that
file and replays each event into a :class:`~jupyter_ext.widgets.LiveView` and the console
lines, so the cell shows what a ``qflow.run(...)`` cell shows, live, until the run ends; it
then holds the picture of the final states. A run that has already ended shows that picture
at once. Interrupting the kernel stops watching, not the run.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from jupyter_ext.widgets import LiveView
from qflow.runtime.console import Console
from qflow.runtime.events import Observers
from qflow.runtime.record import effective_status, read_record
from qflow.runtime.stream import Replay, follow
from qflow.store.atomic import process_alive

if TYPE_CHECKING:
    from qflow.runtime.events import RunState


def watch(runs: Path, run_id: str, *, poll: float = 0.1) -> RunState:
    """Show run ``run_id`` of the runs folder ``runs`` live until it ends; return its state.

    Raises:
        UsageError: there is no such run, or it was recorded without an event log.
    """
    from IPython.core.error import UsageError

    folder = Path(runs) / run_id
    try:
        record = read_record(runs, run_id)
    except (OSError, ValueError):
        raise UsageError(f"No run {run_id!r} in {runs}: `%qflow runs` lists the runs there "
                         "(and `qflow ps` in a terminal).") from None
    log = folder / "events.jsonl"
    status = effective_status(record)
    if not log.exists() and status != "running":
        raise UsageError(f"Run {run_id} has no event log ({log}): it was recorded by an older "
                         f"QFlow. `%qflow inspect {run_id}` shows it.")
    pid = record.get("pid")

    def alive() -> bool:
        return bool(pid) and process_alive(int(pid))

    if status != "running":
        return _finished(log, status)
    view = LiveView()
    replay = Replay(Observers([view, Console(sys.stdout, bars=False)]))
    try:
        for event in follow(log, poll=poll, alive=alive):
            replay.apply(event)
    except KeyboardInterrupt:
        print(f"[qflow] stopped watching run {run_id}; the run goes on "
              f"(`%qflow watch {run_id}` follows it again).")
    run = replay.run
    if run is None:
        raise UsageError(f"Run {run_id} ended before it logged any event ({log}).")
    if run.status == "running" and not alive():
        run.status = "crashed"  # its process is gone and never logged the end
        print(f"[qflow] run {run_id} ended without finishing: its process is gone.")
    view.freeze()
    return run


def _finished(log: Path, status: str) -> RunState:
    """Show the picture of a run that has ended, then its console lines."""
    from IPython.core.error import UsageError

    lines = io.StringIO()
    view = LiveView(live=False)
    replay = Replay(Observers([view, Console(lines, bars=False)]))
    for event in follow(log, alive=lambda: False):
        replay.apply(event)
    run = replay.run
    if run is None:
        raise UsageError(f"Run {log.parent.name} logged no event ({log}).")
    if run.status == "running":
        run.status = status  # "crashed": the process ended without logging the end
    view.show()
    print(lines.getvalue(), end="")
    return run
