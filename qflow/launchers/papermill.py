"""The papermill launcher: a notebook runs headlessly on a real kernel, as one QFlow run.

Parameters are injected after the cell tagged ``parameters``. The kernel's ``%%qflow_step``
cells use the project's store and the same keys as interactive sessions, so a step computed
in the notebook is not computed again headlessly, and the reverse. They emit their node
events to a file (``QFLOW_EVENTS``; the run id and workflow name reach the kernel through its
environment too), which the launcher replays, as they come, to the run's observers: the run
recorder, the console and the tracker see a notebook run as they see a workflow run. The
executed notebook is kept in the run's folder and attached to the tracker run. A notebook
with no step cells is a run of one node, ``notebook``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from qflow.config.paths import Paths
from qflow.errors import ConfigError, QFlowError, StepError
from qflow.graph.described import DescribedGraph, DescribedNode
from qflow.launchers.base import Launcher
from qflow.notebook import (
    cell_error,
    failing_line,
    parameter_names,
    parameters,
    read,
    source_index,
    step_of_cell,
)
from qflow.runtime.events import NodeRun, Observers, RunState
from qflow.runtime.record import KERNEL_EVENTS, new_run_id
from qflow.runtime.stream import Replay, follow
from qflow.store.location import open_store


class PapermillLauncher(Launcher):
    """Runs notebooks with papermill and records them like any workflow run."""

    name = "papermill"

    def __init__(self, paths: Paths | None = None, *, kernel: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(paths, **kwargs)
        self.kernel = kernel

    def _say(self, text: str) -> None:
        if self.console:
            print(text, file=sys.stderr, flush=True)

    def launch(self, target: Path, inputs: dict[str, Any] | None = None, *,
               name: str | None = None, observers: list[Any] | None = None,
               source: str = "the command line", cwd: Path | None = None) -> RunState:
        """Execute the notebook ``target`` with the parameter values ``inputs`` injected.

        ``source`` names where the values came from, for errors; the kernel runs in ``cwd``
        (default: the notebook's folder). Returns the finished run.
        """
        if observers:
            raise ConfigError("The papermill launcher takes no per-run observers yet: a "
                              "notebook's steps report from its kernel.")
        notebook, values, name = target, dict(inputs or {}), name or target.stem
        nb = read(notebook)
        known = parameters(nb, notebook)
        names = parameter_names(nb, notebook)
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(f"{source}: the notebook {notebook} has no parameter "
                              f"{unknown[0]!r} (parameters: {', '.join(names) or 'none'}).",
                              hint="Parameters are the names its cell tagged `parameters` sets.")
        if not self.kernel and not nb.metadata.get("kernelspec", {}).get("name"):
            raise ConfigError(f"The notebook {notebook} names no kernel (its metadata has no "
                              "`kernelspec`), so QFlow cannot tell which kernel runs it.",
                              hint="With --notebook, pass one with -k, e.g. `-k python3` "
                                   "(`jupyter kernelspec list` lists them), or open the notebook "
                                   "in Jupyter, pick a kernel and save it.")
        cwd = (cwd or notebook.parent).resolve()
        if not cwd.is_dir():
            raise ConfigError(f"The working folder {cwd} for {notebook} does not exist.",
                              hint="Pass an existing folder with --cwd.")
        location = self.paths.store_location()
        run = RunState(run_id=new_run_id(), workflow=name, parameters={**known, **values},
                       graph=DescribedGraph(name=name), nodes={}, root=self.paths.root,
                       store=location.url, kind="notebook")
        folder = self.paths.runs / run.run_id
        folder.mkdir(parents=True, exist_ok=True)
        output = folder / "notebook.ipynb"
        watching = Observers(self.run_observers())
        watching.run_started(run=run)
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            with self._kernel_events(run, folder / KERNEL_EVENTS, watching):
                self._execute(notebook, output, values, run, cwd)
            run.status = "succeeded"
        except KeyboardInterrupt as exc:
            run.status, run.error, error = "killed", "interrupted", exc
        except QFlowError as exc:
            run.status, run.error, error = "failed", exc.message, exc
        except Exception as exc:  # recorded as failed, never left `running`, never a traceback
            run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
            run.failed_step = run.failed_step or "kernel"
            error = StepError(f"The notebook {notebook} could not run: {run.error}",
                              step=run.failed_step, run_id=run.run_id,
                              hint="Run with `qflow --debug run ...` to see where it failed.")
            error.__cause__ = exc
        finally:
            self._settle(run, notebook, watching, time.perf_counter() - started)
            run.result = self._result(run)
            run.ended = time.time()
            watching.run_finished(run=run)
        self._say(f"Run {run.run_id}: executed notebook: {output}")
        if error is not None:
            raise error
        return run

    @contextmanager
    def _kernel_events(self, run: RunState, path: Path, watching: Observers) -> Iterator[None]:
        """Replay the kernel's step-cell events (``QFLOW_EVENTS``) to this run's observers
        while the notebook runs, on a thread; the launcher starts and ends the run itself."""
        saved = os.environ.get("QFLOW_EVENTS")
        os.environ["QFLOW_EVENTS"] = str(path)
        done = threading.Event()
        replay = Replay(watching, run, skip=frozenset({"run_started", "run_finished"}))

        def forward() -> None:
            for event in follow(path, poll=0.05, stop=done.is_set):
                replay.apply(event)

        thread = threading.Thread(target=forward, name="qflow-kernel-events", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(timeout=30)
            if saved is None:
                os.environ.pop("QFLOW_EVENTS", None)
            else:
                os.environ["QFLOW_EVENTS"] = saved

    def _settle(self, run: RunState, notebook: Path, watching: Observers, took: float) -> None:
        """Nodes the kernel left running failed with the run; a notebook without step cells
        is a run of one node, ``notebook``."""
        if not run.nodes:
            run.graph = DescribedGraph(name=run.workflow, nodes={"notebook": DescribedNode(
                id="notebook", title=notebook.name)})
            run.nodes["notebook"] = NodeRun(id="notebook", kind="step", duration=took,
                                            reasons=["a plain notebook runs every time"])
            watching.graph_changed(run=run)
            node = run.nodes["notebook"]
            node.status = "ran" if run.status == "succeeded" else "failed"
            node.error = run.error if node.status == "failed" else None
            watching.node_finished(run=run, node=node)
            return
        for node in run.nodes.values():
            if node.status in ("running", "pending") and run.status != "succeeded":
                node.status, node.error = "failed", run.error
                watching.node_finished(run=run, node=node)

    def _execute(self, notebook: Path, output: Path, values: dict[str, Any], run: RunState,
                 cwd: Path) -> None:
        import papermill
        from jupyter_client.kernelspec import NoSuchKernel
        from nbclient.exceptions import DeadKernelError

        saved = {k: os.environ.get(k) for k in ("QFLOW_RUN_ID", "QFLOW_WORKFLOW", "QFLOW_NO_CACHE",
                                                "QFLOW_ROOT", "QFLOW_NOTEBOOK")}
        # the kernel's steps are this run's, and use the store of this project wherever it runs
        os.environ.update(QFLOW_RUN_ID=run.run_id, QFLOW_WORKFLOW=run.workflow,
                          QFLOW_ROOT=str(self.paths.root), QFLOW_NOTEBOOK=str(notebook.resolve()))
        if not self.cache:
            os.environ["QFLOW_NO_CACHE"] = "1"
        try:
            papermill.execute_notebook(str(notebook), str(output), parameters=values,
                                       kernel_name=self.kernel, language=self._language(),
                                       cwd=str(cwd),
                                       progress_bar=False, log_output=False)
        except NoSuchKernel as exc:
            raise ConfigError(f"No Jupyter kernel named {exc.name!r} to run {notebook}.",
                              hint="List kernels with `jupyter kernelspec list`; set the notebook's "
                                   "kernel, or install one with `python -m ipykernel install "
                                   "--user --name NAME`.") from None
        except papermill.PapermillExecutionError as exc:
            raise self._cell_failure(notebook, output, run, exc, bool(values)) from None
        except DeadKernelError as exc:
            run.failed_step = "kernel"
            raise StepError(f"The kernel running {notebook} died ({exc}); out of memory?",
                            step="kernel", run_id=run.run_id,
                            hint=f"The executed notebook, up to that point, is {output}.") from None
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def _language(self) -> str | None:
        """The language of the kernel named with ``-k``, which papermill needs to inject values
        into a notebook whose metadata names none."""
        if not self.kernel:
            return None
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        try:
            return KernelSpecManager().get_kernel_spec(self.kernel).language or None
        except NoSuchKernel:
            return None  # papermill then says there is no such kernel

    def _cell_failure(self, notebook: Path, output: Path, run: RunState, exc: Any,
                      injected: bool) -> StepError:
        """The failure as the user sees their notebook: step, cell number, line, error."""
        nb = read(notebook)
        index = source_index(nb, exc.cell_index, injected)
        step = step_of_cell(nb, index) if index is not None else None
        ename, evalue = exc.ename, exc.evalue
        if not evalue and ename == "CellExecutionError":
            try:
                executed = read(output)
                failed = next(c for c in executed.cells
                              if c.get("metadata", {}).get("papermill", {}).get("exception"))
                ename, evalue = cell_error(failed)
            except (ConfigError, StopIteration):
                pass
        line = failing_line(exc.traceback, exc.exec_count, step is not None)
        where = ("the injected parameters cell" if index is None
                 else f"cell {index + 1} of {len(nb.cells)}")
        where += f", line {line}" if line else ""
        what = f"step '{step}' ({where})" if step else where
        run.failed_step = step or (f"cell {index + 1}" if index is not None else "parameters")
        return StepError(f"The notebook {notebook} failed in {what}: {ename}: {evalue}".rstrip(": "),
                         step=run.failed_step, run_id=run.run_id,
                         hint=f"The executed notebook, up to the failure, is {output}.")

    def _result(self, run: RunState) -> Any:
        """The value of the last step cell's last expression, from the store."""
        from qflow.notebook.session import RESULT

        for node in reversed(list(run.nodes.values())):
            if node.key and node.status in ("ran", "cached"):
                store = open_store(self.paths.store_location())
                try:
                    names = store.manifest(node.key).get("names", [])
                    if RESULT in names:
                        return store.load(node.key, names.index(RESULT))
                except Exception:  # the result is a convenience; the run stands without it
                    return None
                return None
        return None
