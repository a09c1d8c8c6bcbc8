"""The MLflow tracker: embedded (SQLite under ``.qflow/tracker/mlflow``) or any tracking URI.

Runs go to the experiment ``<project>/<workflow>`` (or the configured ``experiment_name``)
through ``MlflowClient`` (no global state); metrics are sent with ``log_batch``. MLflow is
imported only when a run starts or is read.
"""

from __future__ import annotations

import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError
from qflow.runtime.events import RunState
from qflow.trackers.base import MetricPoint, RunData, Tracker


class MlflowTracker(Tracker):
    """Records runs in MLflow; ``tracking_uri`` empty means the embedded SQLite database."""

    name = "mlflow"

    def __init__(self, folder: Path | str, *, tracking_uri: str | None = None, **kwargs: Any) -> None:
        super().__init__(folder, **kwargs)
        self.embedded = not tracking_uri
        self.tracking_uri = tracking_uri or f"sqlite:///{(self.folder / 'mlflow.db').resolve()}"
        self._client: Any = None
        self._run: str | None = None

    @property
    def ui_command(self) -> str:
        """The ``mlflow ui`` command that opens these runs."""
        artifacts = f" --default-artifact-root {(self.folder / 'artifacts').resolve()}" \
            if self.embedded else ""
        return f"mlflow ui --backend-store-uri {self.tracking_uri}{artifacts}"

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
            if self.embedded:
                self.folder.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _experiment_id(self, name: str, create: bool) -> str | None:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        if not create:
            return None
        location = (self.folder / "artifacts").resolve().as_uri() if self.embedded else None
        return self.client.create_experiment(name, artifact_location=location)

    def start_run(self, run: RunState, tags: dict[str, str]) -> None:
        experiment = self._experiment_id(self.experiment_name(run), create=True)
        if self.parent:
            tags = {**tags, "mlflow.parentRunId": self.parent}
        created = self.client.create_run(experiment, run_name=run.run_id, tags=tags,
                                         start_time=int(run.started * 1000))
        self._run = created.info.run_id

    @property
    def native_run_id(self) -> str | None:
        return self._run

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

    def end_run(self, status: str, error: str | None) -> None:
        self.client.set_terminated(self._run, status, end_time=int(time.time() * 1000))
        if self.announce:
            print(f"MLflow: {self.ui_command}", file=sys.stderr)

    # -- reading ------------------------------------------------------------------------------
    def _find(self, run_id: str, experiment_id: str | None) -> Any:
        """An MLflow run by MLflow's id, or by QFlow's run id (its run name)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException:
            pass
        experiments = [experiment_id] if experiment_id else \
            [e.experiment_id for e in self.client.search_experiments()]
        found = self.client.search_runs(experiments, filter_string=f"tags.`qflow.run_id` = '{run_id}'",
                                        max_results=1)
        if not found:
            raise ConfigError(f"MLflow at {self.tracking_uri} has no run {run_id!r}.")
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
        with tempfile.TemporaryDirectory() as tmp:
            try:
                local = self.client.download_artifacts(mlrun.info.run_id, "record.json", tmp)
                import json

                out.record = json.loads(Path(local).read_text())
            except Exception:  # a run logged without QFlow's record
                out.record = None
        return out

    def list_runs(self, workflow: str | None = None) -> list[RunData]:
        experiments = [e.experiment_id for e in self.client.search_experiments()]
        query = f"tags.`qflow.workflow` = '{workflow}'" if workflow else ""
        runs = self.client.search_runs(experiments, filter_string=query,
                                       order_by=["attributes.start_time DESC"])
        return [self._data(r, with_history=False) for r in runs]
