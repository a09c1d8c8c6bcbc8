"""The local launcher: every node computes in this process, so breakpoints in ``apply()`` work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qflow.config.paths import Paths
from qflow.dsl.decorators import WorkflowBase
from qflow.launchers.base import GraphLauncher
from qflow.runtime.driver import InProcess
from qflow.runtime.events import RunState


class LocalLauncher(GraphLauncher):
    """Computes a workflow's nodes one after the other in this process; values stay in memory."""

    name = "local"
    in_process = True

    def runner(self, store: Any) -> InProcess:  # noqa: D102
        return InProcess(store)


def run(workflow: WorkflowBase, *, inputs: dict[str, Any] | None = None, cache: bool = True,
        console: bool = True, tracker: str | None = "file", root: Path | str | None = None
        ) -> RunState:
    """Compute ``workflow`` (an instance) in this process and return the finished run.

    Args:
        inputs: values or providers for ``run()``'s inputs, overriding its defaults.
        cache: ``False`` recomputes every step and stores nothing.
        console: print a line per step and progress bars.
        tracker: the tracker to record the run in (``None`` for none).
        root: the project (or folder) whose ``.qflow/`` to use; found from the working folder
            by default.

    Raises:
        StepError: a step failed; the run record says which and keeps what finished.
    """
    launcher = LocalLauncher(Paths.discover(root), tracker=tracker, console=console, cache=cache)
    return launcher.launch(workflow, inputs)
