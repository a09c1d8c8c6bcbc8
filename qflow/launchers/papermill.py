"""The papermill launcher: a notebook runs headlessly on a real kernel, as one QFlow run.

Parameters are injected after the cell tagged ``parameters``. The kernel's ``%%qflow_step``
cells use the project's store and the same keys as interactive sessions, so a step computed
in the notebook is not computed again headlessly, and the reverse; they also write the run's
per-step record (the run id and workflow name reach the kernel through its environment).
The executed notebook is kept in the run's folder and attached to the tracker run. A
notebook with no step cells is a run of one node, ``notebook``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from qflow.config.paths import Paths
from qflow.errors import ConfigError, QFlowError, StepError
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
from qflow.runtime.events import RunState
from qflow.runtime.record import new_run_id, read_record, summary
from qflow.store.atomic import atomic_write_bytes
from qflow.trackers import create as create_tracker
from qflow.trackers.base import STATUS, MetricPoint, flatten


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
        tracker = create_tracker(self.tracker, self.paths, self.tracker_settings,
                                 announce=self.console) if self.tracker else None
        run = RunState(run_id=new_run_id(), workflow=name, parameters={**known, **values},
                       graph=None, nodes={}, root=self.paths.root, store=self.paths.store)
        folder = self.paths.runs / run.run_id
        folder.mkdir(parents=True, exist_ok=True)
        output = folder / "notebook.ipynb"
        if tracker is not None:
            tracker.start_run(run, {"qflow.workflow": name, "qflow.run_id": run.run_id,
                                    "qflow.notebook": str(notebook)})
            params = flatten("", run.parameters, {})
            if params:
                tracker.log_params(params)
        self._say(f"Run {run.run_id} of {name} (notebook {notebook})")
        error: BaseException | None = None
        try:
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
            run.ended = time.time()
            record = self._finish(run, notebook, output)
            if tracker is not None:
                self._track(tracker, run, record, output, folder / "record.json")
        self._report(run, record, output)
        if error is not None:
            raise error
        return run

    def _execute(self, notebook: Path, output: Path, values: dict[str, Any], run: RunState,
                 cwd: Path) -> None:
        import papermill
        from jupyter_client.kernelspec import NoSuchKernel
        from nbclient.exceptions import DeadKernelError

        saved = {k: os.environ.get(k)
                 for k in ("QFLOW_RUN_ID", "QFLOW_WORKFLOW", "QFLOW_NO_CACHE", "QFLOW_ROOT")}
        # the kernel records the run and uses the store of this project, wherever it runs
        os.environ.update(QFLOW_RUN_ID=run.run_id, QFLOW_WORKFLOW=run.workflow,
                          QFLOW_ROOT=str(self.paths.root))
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

    def _finish(self, run: RunState, notebook: Path, output: Path) -> dict[str, Any]:
        """Complete the record the kernel wrote (or write one for a plain notebook)."""
        try:
            record = read_record(self.paths.runs, run.run_id)
        except (OSError, ValueError):
            status = {"succeeded": "ran", "failed": "failed"}.get(run.status, "failed")
            record = {"nodes": {"notebook": {"id": "notebook", "kind": "step", "status": status,
                                             "key": None, "duration": run.duration,
                                             "reasons": ["a plain notebook runs every time"],
                                             "metrics": []}},
                      "graph": {"name": run.workflow, "nodes": [
                          {"id": "notebook", "kind": "step", "title": notebook.name,
                           "upstream": []}]}}
        for node in record["nodes"].values():
            if node["status"] == "done":
                node["status"] = "ran"
            if run.status != "succeeded" and node["status"] in ("running", "pending"):
                node["status"] = "failed"
        counts: dict[str, int] = {}
        for node in record["nodes"].values():
            counts[node["status"]] = counts.get(node["status"], 0) + 1
        run.result = self._result(record)
        record.update(run_id=run.run_id, workflow=run.workflow, kind="notebook",
                      status=run.status, started=run.started, ended=run.ended,
                      duration=run.duration, pid=os.getpid(), root=str(self.paths.root),
                      store=str(self.paths.store), parameters=run.parameters, metrics={},
                      result=summary(run.result), error=run.error, failed_step=run.failed_step, counts=counts,
                      notebook=str(notebook), executed_notebook=str(output))
        atomic_write_bytes(self.paths.runs / run.run_id / "record.json",
                           json.dumps(record, default=repr).encode())
        return record

    def _result(self, record: dict[str, Any]) -> Any:
        """The value of the last step cell's last expression, from the store."""
        from qflow.store.local import Store

        for node in reversed(list(record["nodes"].values())):
            if node.get("key") and node["status"] in ("ran", "cached"):
                store = Store(self.paths.store)
                try:
                    names = store.manifest(node["key"]).get("names", [])
                    if "__result__" in names:
                        return store.load(node["key"], names.index("__result__"))
                except Exception:  # the result is a convenience; the run stands without it
                    return None
                return None
        return None

    def _track(self, tracker: Any, run: RunState, record: dict[str, Any], output: Path,
               record_path: Path) -> None:
        now = int(time.time() * 1000)
        tracker.log_metrics([MetricPoint(f"{n}.duration_s", float(node.get("duration") or 0),
                                         0, now) for n, node in record["nodes"].items()])
        tracker.set_tags({f"qflow.step.{n}.status": node["status"]
                          for n, node in record["nodes"].items()})
        if run.error:
            tracker.set_tags({"qflow.error": run.error[:5000],
                              "qflow.failed_step": run.failed_step or ""})
        for path in (record_path, output):
            if path.exists():
                tracker.log_artifact(path)
        tracker.end_run(STATUS.get(run.status, "FAILED"), run.error)

    def _report(self, run: RunState, record: dict[str, Any], output: Path) -> None:
        for name, node in record["nodes"].items():
            duration = f"  {node.get('duration') or 0:.2f} s" if node["status"] == "ran" else ""
            self._say(f"  {node['status']:6} {name}{duration}")
        counts = record.get("counts", {})
        self._say(f"Run {run.run_id} {run.status} in {run.duration:.2f} s "
                  f"({counts.get('ran', 0)} ran, {counts.get('cached', 0)} cached); "
                  f"executed notebook: {output}")
