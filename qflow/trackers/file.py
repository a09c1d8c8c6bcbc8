"""The file tracker: each run as JSON lines, with no dependency and no server.

``<data>/tracker/file/<run_id>.jsonl`` gets one event per line: ``start`` (experiment, tags),
``params``, ``metrics`` (a batch), ``tags``, ``artifact`` (a copy is kept beside the file, in
``<run_id>/``), ``end`` (status, error). Reading a run replays its events.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from qflow.errors import ConfigError
from qflow.runtime.events import RunState
from qflow.trackers.base import MetricPoint, RunData, Tracker


class FileTracker(Tracker):
    """Writes runs as JSON lines under ``folder``."""

    name = "file"

    def __init__(self, folder: Path | str, **kwargs: Any) -> None:
        super().__init__(folder, **kwargs)
        self._file: Any = None
        self._run_id = ""

    def path(self, run_id: str) -> Path:
        """The JSON-lines file of run ``run_id``."""
        return self.folder / f"{run_id}.jsonl"

    def _write(self, event: str, **data: Any) -> None:
        self._file.write(json.dumps({"event": event, "time": time.time(), **data},
                                    default=repr) + "\n")
        self._file.flush()

    def start_run(self, run: RunState, tags: dict[str, str]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._run_id = run.run_id
        self._file = open(self.path(run.run_id), "a", encoding="utf-8")
        self._write("start", run_id=run.run_id, experiment=self.experiment_name(run), tags=tags)

    def log_params(self, params: dict[str, str]) -> None:
        self._write("params", params=params)

    def log_metrics(self, points: list[MetricPoint]) -> None:
        self._write("metrics", metrics=[[p.name, p.value, p.step, p.timestamp] for p in points])

    def set_tags(self, tags: dict[str, str]) -> None:
        self._write("tags", tags=tags)

    def log_artifact(self, path: Path) -> None:
        target = self.folder / self._run_id / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        self._write("artifact", name=path.name)

    def end_run(self, status: str, error: str | None) -> None:
        self._write("end", status=status, error=error)
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None

    @staticmethod
    def read(path: Path | str) -> list[dict[str, Any]]:
        """The events of one run file, in order (a torn last line from a crash is skipped)."""
        events = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return events

    def read_run(self, run_id: str, experiment_id: str | None = None) -> RunData:
        path = self.path(run_id)
        if not path.is_file():
            raise ConfigError(f"The file tracker has no run {run_id!r} (no {path}).")
        data = RunData(run_id=run_id, status="RUNNING")
        for event in self.read(path):
            kind = event["event"]
            if kind == "start":
                data.start_time = event["time"]
                data.experiment_id = event.get("experiment")
                data.tags.update(event.get("tags", {}))
            elif kind == "params":
                data.params.update(event["params"])
            elif kind == "tags":
                data.tags.update(event["tags"])
            elif kind == "metrics":
                for name, value, step, stamp in event["metrics"]:
                    data.history.setdefault(name, []).append(MetricPoint(name, value, step, stamp))
            elif kind == "artifact" and event["name"] == "record.json":
                data.record = json.loads((self.folder / run_id / "record.json").read_bytes())
            elif kind == "end":
                data.status, data.end_time = event["status"], event["time"]
        if experiment_id and data.experiment_id != experiment_id:
            raise ConfigError(f"The file tracker's run {run_id!r} is in experiment "
                              f"{data.experiment_id!r}, not {experiment_id!r}.",
                              hint="Leave the experiment out, or give the run's.")
        return data

    def list_runs(self, workflow: str | None = None) -> list[RunData]:
        runs = [self.read_run(p.stem) for p in sorted(self.folder.glob("*.jsonl"), reverse=True)]
        return [r for r in runs if workflow is None or r.tags.get("qflow.workflow") == workflow]
