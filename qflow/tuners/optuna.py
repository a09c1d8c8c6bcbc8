"""Tuning with Optuna: each trial is a normal QFlow run, so trials share every cached step.

The study lives in an Optuna RDB storage (an SQLite file under ``.qflow/tuner/optuna`` by
default, any URL by configuration) and is named ``<project>/<workflow>``: running the command
again resumes it until it holds the requested number of finished trials. Steps that do not
depend on the tuned parameters keep their keys, so they compute once for the whole study.
A metric promoted to the ``intermediate`` label is reported to the trial at its step index,
and Optuna's pruner may stop the trial there; pruned trials are recorded as pruned. Ctrl-C
lets the trial in flight finish (a second Ctrl-C stops at once), so the storage is never
interrupted mid-write.
"""

from __future__ import annotations

import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

from qflow.config.schema import Distribution, TuneSettings
from qflow.errors import ConfigError, StepError
from qflow.launchers.base import Launcher
from qflow.runtime.console import summarise
from qflow.runtime.events import NodeRun, Observer, RunState, StopRun
from qflow.runtime.info import Metric, RuntimeInfo


class _Pruning(Observer):
    """Reports the intermediate metric to the trial; stops the run when Optuna prunes it."""

    def __init__(self, trial: Any, label: str | None) -> None:
        self.trial = trial
        self.label = label

    def node_info(self, *, run: RunState, node: NodeRun, info: RuntimeInfo, **_: Any) -> None:
        if self.label is None or not isinstance(info, Metric) or info.step is None:
            return
        labels = run.graph.nodes[node.id].labels
        if labels.get(self.label) != info.name:
            return
        self.trial.report(float(info.value), info.step)
        if self.trial.should_prune():
            raise StopRun("pruned", f"pruned at step {info.step} ({self.label}={info.value:g})")


@dataclass
class TuneRequest:
    """What to tune: the workflow, its base parameters and inputs, and where runs go."""

    name: str
    study: str
    cls: type
    parameters: dict[str, Any]
    inputs: dict[str, Any]
    settings: TuneSettings
    launcher: Launcher
    """Computes every trial (the configured one: local, or Dask for trials on a cluster)."""
    storage: str | None = None


def suggest(trial: Any, name: str, dist: Distribution) -> Any:
    """Ask ``trial`` for a value of ``name`` from ``dist``."""
    if dist.type == "categorical":
        return trial.suggest_categorical(name, dist.choices)
    if dist.type == "int":
        return trial.suggest_int(name, int(dist.low), int(dist.high), step=int(dist.step or 1),
                                 log=dist.log)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)


class OptunaTuner:
    """Runs an Optuna study over a workflow's parameters."""

    def __init__(self, request: TuneRequest, *, console: bool = True) -> None:
        self.request = request
        self.console = console
        self._lock = threading.Lock()
        self._parent: str | None = None

    def _say(self, text: str) -> None:
        if self.console:
            print(text, file=sys.stderr, flush=True)

    def storage_url(self) -> str:
        """The configured storage, or the SQLite file under ``.qflow/tuner/optuna``."""
        if self.request.storage:
            return self.request.storage
        folder = self.request.launcher.paths.data / "tuner" / "optuna"
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(folder / 'optuna.db').resolve()}"

    def _study(self) -> Any:
        import optuna

        settings = self.request.settings
        url = self.storage_url()
        engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine)
        pruner = optuna.pruners.NopPruner() if settings.pruner == "none" \
            else optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
        study = optuna.create_study(study_name=self.request.study, storage=storage,
                                    direction=settings.direction, pruner=pruner,
                                    load_if_exists=True)
        # Seeded by how many trials the study holds: reproducible, yet a resumed study draws
        # new values (a sampler seeded alike on every resume re-proposes trial 0's values).
        seed = len(study.get_trials(deepcopy=False))
        study.sampler = optuna.samplers.RandomSampler(seed=seed) if settings.sampler == "random" \
            else optuna.samplers.TPESampler(seed=seed)
        for trial in study.get_trials(deepcopy=False):  # left RUNNING by an interrupted study
            if trial.state == optuna.trial.TrialState.RUNNING:
                storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        return study

    def objective(self, trial: Any) -> float:
        """One trial: a QFlow run with the suggested parameters."""
        import optuna

        request, settings = self.request, self.request.settings
        suggested = {name: suggest(trial, name, dist) for name, dist in settings.params.items()}
        workflow = request.cls(**{**request.parameters, **suggested})
        shown = ", ".join(f"{k}={v!r}" for k, v in suggested.items())
        try:
            run = request.launcher.launch(workflow, request.inputs, name=request.name,
                                          observers=[_Pruning(trial, settings.intermediate)])
        except StopRun as stop:
            trial.set_user_attr("qflow_run_id", stop.run_id)
            self._say(f"  trial {trial.number}: pruned ({stop.reason}) {shown}")
            raise optuna.TrialPruned(stop.reason) from None
        except StepError as exc:
            trial.set_user_attr("qflow_run_id", exc.run_id)
            self._say(f"  trial {trial.number}: FAILED in step {exc.step} {shown}")
            raise
        trial.set_user_attr("qflow_run_id", run.run_id)
        value = run.result if settings.objective == "result" else run.metrics.get(settings.objective)
        if not isinstance(value, (int, float)):
            raise ConfigError(
                f"The tuning objective {settings.objective!r} of run {run.run_id} is "
                f"{value!r}, not a number.",
                hint="Return a number from run(), or set tune.objective to a labelled metric.")
        self._say(f"  trial {trial.number}: {settings.objective}={value:.6g} {shown} "
                  f"(run {run.run_id}: {summarise(run.counts())})")
        return float(value)

    def tune(self, n_trials: int | None = None, n_jobs: int = 1) -> Any:
        """Run the study until it has ``n_trials`` finished trials; return the study."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        settings = self.request.settings
        wanted = n_trials or settings.n_trials
        study = self._study()
        finished = [t for t in study.trials if t.state.is_finished()]
        remaining = max(wanted - len(finished), 0)
        self._say(f"Study {self.request.study}: {len(finished)} trials done, running {remaining} "
                  f"more ({settings.direction} {settings.objective}; storage {self.storage_url()})")
        if remaining:
            self._parent = self._start_parent(study)
            self.request.launcher.tracker_settings["parent"] = self._parent
            self.request.launcher.defer_trackers = False  # trials nest under the live parent
            interrupted: list[bool] = []

            def on_interrupt(signum: int, frame: Any) -> None:
                if interrupted:  # a second Ctrl-C: stop at once
                    raise KeyboardInterrupt
                interrupted.append(True)
                self._say("Interrupted: stopping after the trial in flight (Ctrl-C again to "
                          "stop now); run the command again to resume.")
                study.stop()

            main = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGINT, on_interrupt) if main else None
            try:
                study.optimize(self.objective, n_trials=remaining, n_jobs=n_jobs,
                               timeout=settings.timeout, catch=(StepError,))
            finally:
                if main:
                    signal.signal(signal.SIGINT, previous)
                self._end_parent(study)
            if interrupted:
                raise KeyboardInterrupt
        return study

    def _start_parent(self, study: Any) -> str | None:
        """A tracker run for the study, under which trials' runs are nested."""
        from qflow.runtime.record import new_run_id
        from qflow.trackers import create

        launcher = self.request.launcher
        if not launcher.tracker:
            return None
        self._parent_tracker = create(launcher.tracker, launcher.paths,
                                      launcher.tracker_settings, announce=False)
        state = RunState(run_id=f"study-{new_run_id()}", workflow=self.request.name,
                         parameters={}, graph=None, nodes={}, root=launcher.paths.root)
        self._parent_tracker.start_run(state, {"qflow.study": self.request.study,
                                               "qflow.workflow": self.request.name})
        return self._parent_tracker.native_run_id

    def _end_parent(self, study: Any) -> None:
        tracker = getattr(self, "_parent_tracker", None)
        if tracker is None:
            return
        try:
            best = study.best_trial
            tracker.log_params({f"best.{k}": str(v) for k, v in best.params.items()})
            tracker.set_tags({"qflow.best_value": str(best.value),
                              "qflow.best_trial": str(best.number)})
        except ValueError:  # no completed trial
            pass
        tracker.end_run("FINISHED", None)
