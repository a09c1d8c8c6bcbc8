"""The MLflow tracker: embedded (SQLite under ``.qflow/tracker/mlflow``) or any tracking URI.

Runs go to the experiment ``<project>/<workflow>`` (or the configured ``experiment_name``)
through ``MlflowClient`` (no global state); metrics are sent with ``log_batch``. MLflow is
imported only when a run starts or is read.

MLflow is a deferred tracker: a workflow run from a launcher never imports it; the background
sync (``qflow.trackers.sync``) replays the finished run into it.

Besides what every tracker logs, a run gets what MLflow users look for: the workflow's result
(a metric ``result`` when it is a number), and the outputs of the steps named by the
``log_artifacts`` setting, loaded from the artifact store. A value MLflow has a flavour for (a
scikit-learn estimator) becomes a logged model of the run (``models:/<model_id>``); any other
value is saved with its QFlow factory (``qflow.load`` reads it back).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import numbers
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError
from qflow.runtime.events import RunState
from qflow.store.atomic import file_lock
from qflow.trackers.base import MetricPoint, RunData, Tracker

# ``module:Class`` of a value -> the MLflow flavour module that logs it as a model. A class is
# checked only when its module is already imported (the value was loaded), so nothing is
# imported to ask.
FLAVOURS = {"sklearn.base:BaseEstimator": "mlflow.sklearn"}
RESULT_JSON_LIMIT = 1_000_000  # characters: a larger non-numeric result is only a tag


def flavour_of(value: Any) -> str | None:
    """The MLflow flavour module (``mlflow.sklearn``) that knows ``value``'s type, if any."""
    for target, flavour in FLAVOURS.items():
        module_name, _, cls_name = target.partition(":")
        cls = getattr(sys.modules.get(module_name), cls_name, None)
        if isinstance(cls, type) and isinstance(value, cls):
            return flavour
    return None


def _save_model(module: Any, value: Any, local: Path, **model: Any) -> None:
    """``module.save_model`` with the flavour's default requirements (inferring them would
    load the model in a subprocess) and without MLflow's advice on type hints."""
    from mlflow.models import Model

    requirements = getattr(module, "get_default_pip_requirements", None)
    options = {"pip_requirements": requirements()} if requirements else {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\..*)?")
        module.save_model(value, str(local), mlflow_model=Model(**model), **options)


def _names(node: Any) -> set[str]:
    """What ``log_artifacts`` may call a step node: its id and its class's name (from the step
    itself, or from its title ``Fit(alpha=0.5)`` in a graph replayed from its description)."""
    obj = getattr(node, "obj", None)
    cls = type(obj).__name__ if obj is not None else str(getattr(node, "title", "")).split("(")[0]
    return {node.id, cls} if cls else {node.id}


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Without MLflow's own download bars (QFlow reads a small record; they only add noise)."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


class MlflowTracker(Tracker):
    """Records runs in MLflow; ``tracking_uri`` empty means the embedded SQLite database.

    Args:
        log_artifacts: step names (node ids such as ``Fit_2`` or ``qflow.name``s, or step
            classes) whose outputs are logged to the run when it succeeds.
    """

    name = "mlflow"
    deferred = True

    def __init__(self, folder: Path | str, *, tracking_uri: str | None = None,
                 log_artifacts: list[str] | str | None = None, **kwargs: Any) -> None:
        super().__init__(folder, **kwargs)
        self.embedded = not tracking_uri
        self.tracking_uri = tracking_uri or f"sqlite:///{(self.folder / 'mlflow.db').resolve()}"
        self.log_artifacts = [log_artifacts] if isinstance(log_artifacts, str) \
            else list(log_artifacts or [])
        self._client: Any = None
        self._run: str | None = None
        self._experiment: str | None = None

    @property
    def ui_command(self) -> str:
        """The ``mlflow ui`` command that opens these runs."""
        artifacts = f" --default-artifact-root {(self.folder / 'artifacts').resolve()}" \
            if self.embedded else ""
        return f"mlflow ui --backend-store-uri {self.tracking_uri}{artifacts}"

    def hints(self) -> list[str]:
        return [f"MLflow: {self.ui_command}"]

    @property
    def client(self) -> Any:
        """An ``MlflowClient`` on the tracking URI (creates the embedded database once)."""
        if self._client is None:
            try:
                from mlflow.tracking import MlflowClient
            except ImportError:
                raise ConfigError("The mlflow tracker needs the mlflow package.",
                                  hint="pip install mlflow, or `qflow configure -c tracker=file`.") \
                    from None
            for name in ("mlflow", "alembic"):
                logging.getLogger(name).setLevel(logging.WARNING)
            ready = self.folder / "mlflow.db.ready"
            if not self.embedded or ready.exists():
                self._client = MlflowClient(tracking_uri=self.tracking_uri)
            else:
                with self._creating():  # the first client creates the database's tables
                    self._client = MlflowClient(tracking_uri=self.tracking_uri)
                    ready.touch()
        return self._client

    def _creating(self) -> contextlib.AbstractContextManager[object]:
        """A lock between processes that create the embedded database or an experiment at once:
        without it, one migrates the schema while another reads half of it (hydraflow #245)."""
        if not self.embedded:
            return contextlib.nullcontext()
        return file_lock(self.folder / "mlflow.db.lock")

    def _experiment_id(self, name: str, create: bool) -> str | None:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        if not create:
            return None
        location = (self.folder / "artifacts").resolve().as_uri() if self.embedded else None
        with self._creating():
            found = self.client.get_experiment_by_name(name)  # another process may have won
            if found is not None:
                return found.experiment_id
            try:
                return self.client.create_experiment(name, artifact_location=location)
            except Exception:  # a remote server: created in between by someone else
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
                return found.experiment_id

    def start_run(self, run: RunState, tags: dict[str, str]) -> None:
        experiment = self._experiment_id(self.experiment_name(run), create=True)
        if self.parent:
            tags = {**tags, "mlflow.parentRunId": self.parent}
        created = self.client.create_run(experiment, run_name=run.run_id, tags=tags,
                                         start_time=int(run.started * 1000))
        self._run, self._experiment = created.info.run_id, experiment

    def validate(self, run: RunState) -> None:
        nodes = run.graph.nodes.values() if run.graph is not None else ()  # a study has none
        steps = {name for n in nodes if n.kind == "step" for name in _names(n)}
        if not steps:
            return
        unknown = [name for name in self.log_artifacts if name not in steps]
        if unknown:
            warnings.warn(f"The mlflow tracker's log_artifacts names {', '.join(unknown)}, which "
                          f"is not a step of {run.workflow} (steps: "
                          f"{', '.join(sorted(steps)) or 'none'}); nothing is logged for it.",
                          RuntimeWarning, stacklevel=2)

    def discard_run(self, run_id: str) -> None:
        from mlflow.entities import ViewType

        experiments = [e.experiment_id for e in self.client.search_experiments()]
        if not experiments:
            return
        for found in self.client.search_runs(experiments, run_view_type=ViewType.ACTIVE_ONLY,
                                             filter_string=f"tags.`qflow.run_id` = '{run_id}'"):
            self.client.delete_run(found.info.run_id)

    @property
    def native_run_id(self) -> str | None:
        return self._run

    @property
    def native_experiment_id(self) -> str | None:
        return self._experiment

    def log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self._run, params=items[i:i + 100])

    def log_metrics(self, points: list[MetricPoint]) -> None:
        from mlflow.entities import Metric

        items = [Metric(p.name, p.value, p.timestamp, p.step) for p in points]
        for i in range(0, len(items), 1000):
            self.client.log_batch(self._run, metrics=items[i:i + 1000])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self._run, tags=[RunTag(k, v) for k, v in tags.items()])

    def log_artifact(self, path: Path) -> None:
        self.client.log_artifact(self._run, str(path))

    # -- the result and step outputs -----------------------------------------------------------
    def run_finished(self, *, run: RunState, **kwargs: Any) -> None:
        if self._run is not None and run.status == "succeeded":
            self._log_result(run.result)
            for node_id in self._logged_nodes(run):
                try:
                    self._log_outputs(run, node_id)
                except Exception as exc:  # one value MLflow cannot take must not lose the run
                    warnings.warn(f"MLflow: the outputs of {node_id} were not logged: {exc!r}",
                                  RuntimeWarning, stacklevel=2)
        super().run_finished(run=run, **kwargs)

    def _log_result(self, result: Any) -> None:
        if isinstance(result, numbers.Real) and not isinstance(result, bool):
            from mlflow.entities import Metric

            now = int(self.clock() * 1000)
            self.client.log_batch(self._run, metrics=[Metric("result", float(result), now, 0)])
        elif flavour_of(result) is not None:
            self.log_value("result", result)
        elif result is not None:
            try:
                text = json.dumps(result, indent=1)
            except (TypeError, ValueError):
                return  # kept as the qflow.result tag
            if len(text) <= RESULT_JSON_LIMIT:
                self.client.log_text(self._run, text, "result.json")

    def _logged_nodes(self, run: RunState) -> list[str]:
        wanted = set(self.log_artifacts)
        if run.graph is None:
            return []
        return [n.id for n in run.graph.nodes.values()
                if n.kind == "step" and not wanted.isdisjoint(_names(n))]

    def _log_outputs(self, run: RunState, node_id: str) -> None:
        from qflow.store.location import StoreLocation, open_store

        record = run.nodes[node_id]
        store = open_store(StoreLocation.of(str(run.store)))
        if record.key is None or not store.has(record.key):
            warnings.warn(f"MLflow: {node_id} is not in the artifact store (caching is off), "
                          "so its outputs were not logged.", RuntimeWarning, stacklevel=2)
            return
        count = len(store.manifest(record.key)["outputs"])
        for i in range(count):
            self.log_value(node_id if count == 1 else f"{node_id}.{i}", store.load(record.key, i))

    def log_value(self, name: str, value: Any) -> None:
        """Attach ``value`` to the run as ``name``: a model of its MLflow flavour, else its files."""
        flavour = flavour_of(value)
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / name
            if flavour is None:
                from qflow.artifacts.saved import save

                save(value, local)
                self.client.log_artifacts(self._run, str(local), artifact_path=name)
            else:
                self._log_model(importlib.import_module(flavour), name, value, local)

    def _log_model(self, module: Any, name: str, value: Any, local: Path) -> None:
        if not hasattr(self.client, "create_logged_model"):  # MLflow 2: a model folder of the run
            _save_model(module, value, local, artifact_path=name, run_id=self._run)
            self.client.log_artifacts(self._run, str(local), artifact_path=name)
            return
        from mlflow.entities import LoggedModelOutput

        model = self.client.create_logged_model(self._experiment, name=name,
                                                source_run_id=self._run)
        try:
            _save_model(module, value, local, artifact_path=name, run_id=self._run,
                        model_id=model.model_id)
            self.client.log_model_artifacts(model.model_id, str(local))
        except Exception:
            self.client.finalize_logged_model(model.model_id, "FAILED")
            raise
        self.client.finalize_logged_model(model.model_id, "READY")
        self.client.log_outputs(self._run, [LoggedModelOutput(model.model_id, step=0)])

    def end_run(self, status: str, error: str | None) -> None:
        self.client.set_terminated(self._run, status, end_time=int(self.clock() * 1000))

    # -- reading ------------------------------------------------------------------------------
    def _experiment_of(self, experiment: str) -> Any:
        """The MLflow experiment named ``experiment``, or whose id it is."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(experiment)
        if found is None:
            try:
                found = self.client.get_experiment(experiment)
            except MlflowException:
                found = None
        if found is None:
            known = ", ".join(f"{e.name!r} (id {e.experiment_id})"
                              for e in self.client.search_experiments()) or "none"
            raise ConfigError(f"MLflow at {self.tracking_uri} has no experiment {experiment!r}, "
                              f"by name or id (experiments: {known}).",
                              hint="Give the experiment's name or id as `qflow run` printed it, "
                                   "or leave it out to search every experiment.")
        return found

    def _find(self, run_id: str, experiment_id: str | None) -> Any:
        """An MLflow run by MLflow's id, or by QFlow's run id (its run name), in the experiment
        ``experiment_id`` (its id or name) or any."""
        from mlflow.exceptions import MlflowException

        chosen = self._experiment_of(experiment_id) if experiment_id else None
        try:
            found = self.client.get_run(run_id)
            if chosen is None or found.info.experiment_id == chosen.experiment_id:
                return found
        except MlflowException:
            pass
        experiments = [chosen.experiment_id] if chosen else \
            [e.experiment_id for e in self.client.search_experiments()]
        found = self.client.search_runs(experiments, filter_string=f"tags.`qflow.run_id` = '{run_id}'",
                                        max_results=1)
        if not found:
            where = f" in experiment {chosen.name!r} (id {chosen.experiment_id})" if chosen else ""
            raise ConfigError(f"MLflow at {self.tracking_uri} has no run {run_id!r}{where}.")
        return found[0]

    def _data(self, mlrun: Any, with_history: bool) -> RunData:
        info, data = mlrun.info, mlrun.data
        out = RunData(run_id=data.tags.get("qflow.run_id", info.run_id), status=info.status,
                      params=dict(data.params), tags=dict(data.tags),
                      start_time=info.start_time / 1000 if info.start_time else None,
                      end_time=info.end_time / 1000 if info.end_time else None,
                      experiment_id=info.experiment_id)
        for name, value in data.metrics.items():
            points = self.client.get_metric_history(info.run_id, name) if with_history else []
            out.history[name] = [MetricPoint(name, m.value, m.step, m.timestamp) for m in points] \
                or [MetricPoint(name, value, 0, 0)]
        return out

    def read_run(self, run_id: str, experiment_id: str | None = None) -> RunData:
        mlrun = self._find(run_id, experiment_id)
        out = self._data(mlrun, with_history=True)
        with tempfile.TemporaryDirectory() as tmp, _no_progress_bars():
            try:
                local = self.client.download_artifacts(mlrun.info.run_id, "record.json", tmp)
                out.record = json.loads(Path(local).read_bytes())
            except Exception:  # a run logged without QFlow's record
                out.record = None
        return out

    def list_runs(self, workflow: str | None = None) -> list[RunData]:
        experiments = [e.experiment_id for e in self.client.search_experiments()]
        query = f"tags.`qflow.workflow` = '{workflow}'" if workflow else ""
        runs = self.client.search_runs(experiments, filter_string=query,
                                       order_by=["attributes.start_time DESC"])
        return [self._data(r, with_history=False) for r in runs]
